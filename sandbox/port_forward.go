package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/berthcri/berth/internal/errdefs"
)

// DialPort connects to TCP port on the pod's loopback from inside the pod's network namespace (the host's
// with host network), so a port-forward reaches what the pod's own processes reach on localhost. The
// socket is made on a thread that joined the namespace and stays in it; the connection is then used from
// any thread. IPv4 is tried first, then IPv6: a server may listen on either.
func (p *Pod) DialPort(ctx context.Context, port int32) (net.Conn, error) {
	if port < 1 || port > 65535 {
		return nil, errdefs.InvalidArgument("port", "%d is outside 1..65535", port)
	}
	var conn net.Conn
	dial := func() error {
		var d net.Dialer
		var errs []error
		for _, host := range []string{"127.0.0.1", "::1"} {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
			if err == nil {
				conn = c
				return nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return errors.Join(errs...)
	}
	var err error
	if path := p.NetNSPath(); path == "" {
		err = dial()
	} else {
		err = inNamespaces(map[nsKind]string{nsNet: path}, dial)
	}
	if err != nil {
		return nil, fmt.Errorf("pod %s: connect to port %d: %w", p.ID(), port, err)
	}
	return conn, nil
}
