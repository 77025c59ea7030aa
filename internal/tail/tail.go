// Package tail keeps the end of a stream in bounded memory: the output of a helper command or plugin, drained to
// EOF so that the writer never blocks on a full pipe, whose last lines say why it failed. berthd, berth-monitor and
// the installer use it, so it depends on the standard library only.
package tail

import (
	"bytes"
	"fmt"
	"io"
)

// MessageSize is a bound for output that ends up in an error message or a log line: enough for the last lines of a
// failing command.
const MessageSize = 4 << 10

// Buffer is an io.Writer that keeps the last bytes written to it, as many as New was given; it never fails. Like a
// bytes.Buffer it is not safe for concurrent writers: give exec.Cmd the same *Buffer as Stdout and Stderr and it
// writes one at a time.
type Buffer struct {
	max     int
	b       []byte
	dropped int64
}

// New returns a Buffer keeping the last n bytes (at least 1).
func New(n int) *Buffer { return &Buffer{max: max(n, 1)} }

// Write keeps the end of what was written so far.
func (t *Buffer) Write(p []byte) (int, error) {
	n := len(p)
	if n >= t.max {
		t.dropped += int64(len(t.b) + n - t.max)
		t.b = append(t.b[:0], p[n-t.max:]...)
		return n, nil
	}
	if over := len(t.b) + n - t.max; over > 0 {
		t.dropped += int64(over)
		t.b = t.b[:copy(t.b, t.b[over:])]
	}
	t.b = append(t.b, p...)
	return n, nil
}

// Bytes is what was kept; it aliases the buffer until the next Write.
func (t *Buffer) Bytes() []byte { return t.b }

// Dropped is how many bytes were written before the kept ones.
func (t *Buffer) Dropped() int64 { return t.dropped }

// String is what was kept, without surrounding white space, saying how much came before it: for error messages.
func (t *Buffer) String() string {
	s := string(bytes.TrimSpace(t.b))
	if t.dropped > 0 {
		return fmt.Sprintf("[%d bytes before] …%s", t.dropped, s)
	}
	return s
}

// Read drains r to EOF and returns its last n bytes.
func Read(r io.Reader, n int) (*Buffer, error) {
	t := New(n)
	_, err := io.Copy(t, r)
	return t, err
}
