package monitor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// attacher is one attach session. Output is queued per attacher and dropped when its queue is full: a
// slow client must not stall the container, which only ever waits on its log file.
type attacher struct {
	stdout, stderr bool
	out            chan outFrame
	gone           chan struct{} // the client's connection ended
	dropped        int           // frames lost to a full queue; guarded by container.mu
}

type outFrame struct {
	typ  byte
	data []byte
}

const attachQueue = 64

func (c *container) broadcast(frame byte, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.attachers) == 0 {
		return
	}
	data := bytes.Clone(p)
	for a := range c.attachers {
		if frame == frameStdout && !a.stdout || frame == frameStderr && !a.stderr {
			continue
		}
		select {
		case a.out <- outFrame{frame, data}:
		default:
			a.dropped++
		}
	}
}

func (c *container) addAttacher(a *attacher) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.status {
	case "":
		return errdefs.FailedPrecondition("container %s is being created", c.id)
	case StatusExited:
		return errdefs.FailedPrecondition("container %s has exited", c.id)
	}
	c.attachers[a] = struct{}{}
	return nil
}

func (c *container) removeAttacher(a *attacher) {
	c.mu.Lock()
	delete(c.attachers, a)
	c.mu.Unlock()
}

// attach serves an attach session on conn until the client leaves or the container exits.
func (s *server) attach(conn *net.UnixConn, br *bufio.Reader, req *request) {
	var opts attachOpts
	if req.Attach != nil {
		opts = *req.Attach
	}
	a := &attacher{stdout: opts.Stdout, stderr: opts.Stderr, out: make(chan outFrame, attachQueue), gone: make(chan struct{})}
	c, err := s.get(req.ID)
	if err == nil {
		err = c.addAttacher(a)
	}
	if err != nil {
		writeLine(conn, errResponse(err))
		return
	}
	defer c.removeAttacher(a)
	if writeLine(conn, response{}) != nil {
		return
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.sendOutput(conn, a)
	}()
	c.readInput(br, opts.Stdin)
	close(a.gone)
	<-written
	c.mu.Lock()
	dropped := a.dropped
	c.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("attach: output dropped for a slow client", "id", c.id, "frames", dropped)
	}
}

// sendOutput writes the attacher's output, then the exit frame once the container exited.
func (c *container) sendOutput(conn *net.UnixConn, a *attacher) {
	for {
		select {
		case f := <-a.out:
			if writeFrame(conn, f.typ, f.data) != nil {
				return
			}
		case <-a.gone:
			return
		case <-c.exited:
			for drained := false; !drained; {
				select {
				case f := <-a.out:
					if writeFrame(conn, f.typ, f.data) != nil {
						return
					}
				default:
					drained = true
				}
			}
			c.mu.Lock()
			code := c.exit.ExitCode
			c.mu.Unlock()
			var b [4]byte
			binary.BigEndian.PutUint32(b[:], uint32(int32(code)))
			writeFrame(conn, frameExit, b[:])
			conn.CloseWrite()
			return
		}
	}
}

// readInput applies the client's frames until the connection ends. With stdin_once, the container's
// stdin closes when this attacher's stdin ends or it leaves.
func (c *container) readInput(br *bufio.Reader, stdin bool) {
	buf := make([]byte, maxFrame)
	stdinOpen := stdin
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			break
		}
		switch typ {
		case frameStdin:
			if stdinOpen {
				c.writeStdin(p)
			}
		case frameStdinClose:
			if stdinOpen && c.req.StdinOnce {
				c.closeStdin()
			}
			stdinOpen = false
		case frameResize:
			if len(p) == 4 {
				c.resize(binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]))
			}
		}
	}
	if stdinOpen && c.req.StdinOnce {
		c.closeStdin()
	}
}

func (c *container) writeStdin(p []byte) {
	c.stdinMu.Lock()
	defer c.stdinMu.Unlock()
	if c.stdin != nil && !c.stdinClosed {
		c.stdin.Write(p)
	}
}

// closeStdin ends the container's stdin: the pipe is closed, or a terminal gets its EOF character.
func (c *container) closeStdin() {
	c.stdinMu.Lock()
	defer c.stdinMu.Unlock()
	if c.stdin == nil || c.stdinClosed {
		return
	}
	c.stdinClosed = true
	if c.req.TTY {
		c.stdin.Write([]byte{4}) // ^D, VEOF
		return
	}
	c.stdin.Close()
}

func (c *container) resize(width, height uint16) {
	if !c.req.TTY || len(c.outs) == 0 {
		return
	}
	ctr.SetWinsize(c.outs[0], ctr.TerminalSize{Width: width, Height: height})
}
