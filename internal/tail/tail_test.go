package tail

import (
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"testing/iotest"
)

func TestBuffer(t *testing.T) {
	cases := map[string]struct {
		max     int
		writes  []string
		want    string
		dropped int64
		str     string
	}{
		"nothing":                 {max: 4, want: "", str: ""},
		"under the bound":         {max: 8, writes: []string{"ab", "cd"}, want: "abcd", str: "abcd"},
		"exactly the bound":       {max: 4, writes: []string{"ab", "cd"}, want: "abcd", str: "abcd"},
		"small writes past it":    {max: 4, writes: []string{"ab", "cd", "ef"}, want: "cdef", dropped: 2, str: "[2 bytes before] …cdef"},
		"one write past it":       {max: 3, writes: []string{"abcdef"}, want: "def", dropped: 3, str: "[3 bytes before] …def"},
		"big write after small":   {max: 3, writes: []string{"ab", "cdefg"}, want: "efg", dropped: 4, str: "[4 bytes before] …efg"},
		"one byte into full":      {max: 3, writes: []string{"abc", "d"}, want: "bcd", dropped: 1, str: "[1 bytes before] …bcd"},
		"white space trimmed":     {max: 16, writes: []string{"\n  error: x \n"}, want: "\n  error: x \n", str: "error: x"},
		"zero bound keeps a byte": {max: 0, writes: []string{"ab"}, want: "b", dropped: 1, str: "[1 bytes before] …b"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b := New(tc.max)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := string(b.Bytes()); got != tc.want {
				t.Errorf("Bytes = %q, want %q", got, tc.want)
			}
			if b.Dropped() != tc.dropped {
				t.Errorf("Dropped = %d, want %d", b.Dropped(), tc.dropped)
			}
			if got := b.String(); got != tc.str {
				t.Errorf("String = %q, want %q", got, tc.str)
			}
		})
	}
}

// Read drains to EOF whatever the bound, so that a writer never blocks on a full pipe, and returns the reader's
// error.
func TestRead(t *testing.T) {
	b, err := Read(iotest.OneByteReader(strings.NewReader(strings.Repeat("x", 10000)+"the end")), 7)
	if err != nil || string(b.Bytes()) != "the end" || b.Dropped() != 10000 {
		t.Errorf("Read = %q (dropped %d), %v", b.Bytes(), b.Dropped(), err)
	}
	boom := errors.New("boom")
	if _, err := Read(io.MultiReader(strings.NewReader("a"), iotest.ErrReader(boom)), 7); !errors.Is(err, boom) {
		t.Errorf("Read error = %v, want the reader's", err)
	}
}

// As a command's combined output: a command writing far more than the bound to both streams runs to its end.
func TestCommandOutput(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo noise; echo noise >&2; i=$((i+1)); done; echo failed: why >&2; exit 3")
	out := New(64)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Run = %v, want exit status 3", err)
	}
	if s := out.String(); !strings.HasSuffix(s, "noise\nfailed: why") || !strings.HasPrefix(s, "[") {
		t.Errorf("kept %q, want the end, marked as cut", s)
	}
}
