package monitor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestFrames(t *testing.T) {
	frames := []struct {
		typ byte
		p   []byte
	}{
		{frameStdout, []byte("hello")},
		{frameStdin, nil},
		{frameResize, []byte{0, 80, 0, 24}},
		{frameStderr, bytes.Repeat([]byte{'x'}, maxFrame)},
		{frameExit, []byte{0, 0, 0, 3}},
	}
	var stream bytes.Buffer
	for _, f := range frames {
		if err := writeFrame(&stream, f.typ, f.p); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, maxFrame)
	for i, want := range frames {
		typ, p, err := readFrame(&stream, buf)
		if err != nil || typ != want.typ || !bytes.Equal(p, want.p) {
			t.Fatalf("frame %d = %d %q %v, want %d %q", i, typ, p, err, want.typ, want.p)
		}
	}
	if _, _, err := readFrame(&stream, buf); err != io.EOF {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

func TestFrameLimits(t *testing.T) {
	if err := writeFrame(io.Discard, frameStdout, make([]byte, maxFrame+1)); err == nil {
		t.Error("wrote an oversized frame")
	}
	tests := map[string][]byte{
		"oversized":         {frameStdout, 0, 1, 0, 0},
		"truncated header":  {frameStdout, 0},
		"truncated payload": {frameStdout, 0, 0, 0, 4, 'a'},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := readFrame(bytes.NewReader(in), make([]byte, maxFrame)); err == nil || err == io.EOF {
				t.Errorf("readFrame = %v, want an error", err)
			}
		})
	}
}

func TestLines(t *testing.T) {
	var b bytes.Buffer
	in := request{Op: opCreate, ID: "c1", Create: &CreateRequest{ID: "c1", Bundle: "/b", TTY: true}}
	if err := writeLine(&b, in); err != nil {
		t.Fatal(err)
	}
	b.WriteString("trailing frame bytes")
	br := bufio.NewReaderSize(&b, 16) // lines longer than the buffer are read whole
	var out request
	if err := readLine(br, &out); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out.Create) != fmt.Sprint(in.Create) || out.Op != in.Op {
		t.Errorf("read %+v, want %+v", out, in)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "trailing frame bytes" {
		t.Errorf("bytes after the line: %q", rest)
	}
	long := bufio.NewReader(strings.NewReader(strings.Repeat("x", maxLine+10) + "\n"))
	if err := readLine(long, &out); err == nil {
		t.Error("read a line over the limit")
	}
}

func TestErrorKinds(t *testing.T) {
	for _, sentinel := range []error{errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrUnavailable, errdefs.ErrResourceExhausted} {
		resp := errResponse(fmt.Errorf("container c1: %w", sentinel))
		err := responseErr(opStart, &resp)
		if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), "container c1") {
			t.Errorf("%v came back as %v", sentinel, err)
		}
	}
	resp := errResponse(errors.New("plain"))
	if err := responseErr(opStart, &resp); err == nil || err.Error() != "monitor start: plain" {
		t.Errorf("plain error came back as %v", err)
	}
	if err := responseErr(opStart, &response{}); err != nil {
		t.Errorf("success came back as %v", err)
	}
}
