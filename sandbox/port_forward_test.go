package sandbox

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
)

// echoOnce accepts one connection on l and echoes what it reads, prefixed with name.
func echoOnce(l net.Listener, name string) {
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		c.Write(append([]byte(name+":"), b...))
	}()
}

func TestDialPort(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t)
	own, err := m.Create(context.Background(), Config{ID: testID()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), own) })
	hostNet, err := m.Create(context.Background(), Config{ID: testID(), Namespaces: NamespaceOptions{Network: NamespaceNode}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Remove(context.Background(), hostNet) })

	// One listener inside the pod's network namespace, one on the host, on the same port number.
	var podL net.Listener
	err = inNamespaces(map[nsKind]string{nsNet: own.NetNSPath()}, func() (err error) {
		podL, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer podL.Close()
	port := podL.Addr().(*net.TCPAddr).Port
	hostL, err := net.Listen("tcp", podL.Addr().String())
	if err != nil {
		t.Skipf("port %d taken on the host: %v", port, err)
	}
	defer hostL.Close()
	echoOnce(podL, "pod")
	echoOnce(hostL, "host")

	cases := map[string]struct {
		pod  *Pod
		want string
	}{
		"own network namespace": {own, "pod:ping"},
		"host network":          {hostNet, "host:ping"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := tc.pod.DialPort(context.Background(), int32(port))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write([]byte("ping"))
			c.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(c)
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}

	podL.Close()
	if _, err := own.DialPort(context.Background(), int32(port)); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial a port nobody listens on any more: %v, want connection refused", err)
	}
	if _, err := own.DialPort(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "port: 0 is outside") {
		t.Errorf("dial port 0: %v", err)
	}
}
