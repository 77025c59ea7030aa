package ociruntime

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/berthcri/berth/oci/ctr"
)

// consoleAcceptTimeout bounds the wait for the runtime to connect to the console socket once it succeeded: it
// sends the terminal before it returns, so the connection is queued already.
const consoleAcceptTimeout = 5 * time.Second

// consoleSocket is the --console-socket the runtime sends the terminal's master side on: runc's contract is a path
// to a listening unix socket, while the helper's caller gave it one end of a socket pair.
type consoleSocket struct {
	dir  string
	path string
	ln   *net.UnixListener
}

func newConsoleSocket() (*consoleSocket, error) {
	// A short path of its own: sun_path holds 108 bytes, and state dirs nest deep.
	dir, err := os.MkdirTemp("", "berth-console-")
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	path := filepath.Join(dir, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("console socket: %w", err)
	}
	return &consoleSocket{dir: dir, path: path, ln: ln}, nil
}

// forward receives the terminal the runtime sent and sends it on to the caller's socket.
func (c *consoleSocket) forward(to *os.File) error {
	c.ln.SetDeadline(time.Now().Add(consoleAcceptTimeout))
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return fmt.Errorf("console socket: the runtime did not connect: %w", err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	defer f.Close()
	master, err := ctr.RecvFile(f, "terminal")
	if err != nil {
		return err
	}
	defer master.Close()
	return ctr.SendFile(to, master)
}

func (c *consoleSocket) close() {
	c.ln.Close()
	os.RemoveAll(c.dir)
}
