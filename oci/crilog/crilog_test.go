package crilog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type record struct {
	stream Stream
	tag    byte
	text   string
}

// parse checks every line of a log file against the CRI format, as the kubelet parses it.
func parse(t testing.TB, data []byte) []record {
	t.Helper()
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("log does not end with a newline: %q", data)
	}
	if len(data) == 0 {
		return nil
	}
	var recs []record
	for line := range bytes.SplitSeq(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		fields := bytes.SplitN(line, []byte(" "), 4)
		if len(fields) != 4 {
			t.Fatalf("line %q: want 4 fields", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, string(fields[0])); err != nil {
			t.Fatalf("line %q: timestamp: %v", line, err)
		}
		s := Stream(fields[1])
		if s != Stdout && s != Stderr {
			t.Fatalf("line %q: stream %q", line, s)
		}
		if len(fields[2]) != 1 || (fields[2][0] != tagPartial && fields[2][0] != tagFull) {
			t.Fatalf("line %q: tag %q", line, fields[2])
		}
		if len(fields[3]) > MaxLineSize {
			t.Fatalf("line of %d bytes: longer than %d", len(fields[3]), MaxLineSize)
		}
		recs = append(recs, record{stream: s, tag: fields[2][0], text: string(fields[3])})
	}
	return recs
}

// text joins the records of one stream back into the container's output.
func text(recs []record, s Stream) string {
	var b strings.Builder
	for _, r := range recs {
		if r.stream != s {
			continue
		}
		b.WriteString(r.text)
		if r.tag == tagFull {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func openTemp(t testing.TB) (*File, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	f, err := Open(dir, "0.log")
	if err != nil {
		t.Fatal(err)
	}
	return f, path
}

func TestWriter(t *testing.T) {
	long := strings.Repeat("x", MaxLineSize)
	tests := map[string]struct {
		writes []string
		want   []record
	}{
		"one line":              {[]string{"hi\n"}, []record{{Stdout, 'F', "hi"}}},
		"empty line":            {[]string{"\n"}, []record{{Stdout, 'F', ""}}},
		"two lines":             {[]string{"a\nb\n"}, []record{{Stdout, 'F', "a"}, {Stdout, 'F', "b"}}},
		"line across calls":     {[]string{"he", "llo", "\n"}, []record{{Stdout, 'F', "hello"}}},
		"no final newline":      {[]string{"a\nrest"}, []record{{Stdout, 'F', "a"}, {Stdout, 'P', "rest"}}},
		"carriage return kept":  {[]string{"a\r\n"}, []record{{Stdout, 'F', "a\r"}}},
		"exactly max":           {[]string{long + "\n"}, []record{{Stdout, 'F', long}}},
		"exactly max in pieces": {[]string{long[:100], long[100:], "\n"}, []record{{Stdout, 'F', long}}},
		"max plus one":          {[]string{long + "y\n"}, []record{{Stdout, 'P', long}, {Stdout, 'F', "y"}}},
		"two max pieces":        {[]string{long + long + "\n"}, []record{{Stdout, 'P', long}, {Stdout, 'F', long}}},
		"long without newline":  {[]string{long + "zz"}, []record{{Stdout, 'P', long}, {Stdout, 'P', "zz"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, path := openTemp(t)
			w := f.NewWriter(Stdout)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.Close()
			f.Close()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got := parse(t, data)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// A Writer keeps no large buffer once a burst of output is written, unless a long line is still open.
func TestWriterReleasesBuffers(t *testing.T) {
	many := strings.Repeat("a line of output\n", 4*flushSize/17)
	tests := map[string]struct {
		write       string
		wantPending int
	}{
		"burst of lines":        {many, 0},
		"burst, then open line": {many + strings.Repeat("x", 2*keepSize), 2 * keepSize},
		"long line":             {strings.Repeat("x", MaxLineSize) + "\n", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f, _ := openTemp(t)
			defer f.Close()
			w := f.NewWriter(Stdout)
			w.Write([]byte(tc.write))
			if cap(w.out) > keepSize || len(w.pending) != tc.wantPending || tc.wantPending == 0 && cap(w.pending) > keepSize {
				t.Errorf("after the write: out cap %d, pending len %d cap %d; want out cap <= %d, pending len %d",
					cap(w.out), len(w.pending), cap(w.pending), keepSize, tc.wantPending)
			}
		})
	}
}

func TestStreamsShareFile(t *testing.T) {
	f, path := openTemp(t)
	out, errw := f.NewWriter(Stdout), f.NewWriter(Stderr)
	out.Write([]byte("o1\no"))
	errw.Write([]byte("e1\n"))
	out.Write([]byte("2\n"))
	f.Close()
	data, _ := os.ReadFile(path)
	want := []record{{Stdout, 'F', "o1"}, {Stderr, 'F', "e1"}, {Stdout, 'F', "o2"}}
	if got := parse(t, data); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestReopen(t *testing.T) {
	f, path := openTemp(t)
	w := f.NewWriter(Stdout)
	w.Write([]byte("before\n"))
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("rotated\n")) // still the old file until Reopen
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("after\n"))
	f.Close()
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if got := text(parse(t, old), Stdout); got != "before\nrotated\n" {
		t.Errorf("rotated file holds %q", got)
	}
	if got := text(parse(t, cur), Stdout); got != "after\n" {
		t.Errorf("new file holds %q", got)
	}
}

func TestDropsWhenUnwritable(t *testing.T) {
	f, _ := openTemp(t)
	w := f.NewWriter(Stderr)
	f.Close()
	if n, err := w.Write([]byte("a\nb\nc")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v; want 5, nil", n, err)
	}
	w.Close()
	if got := f.Dropped(); got != 3 {
		t.Errorf("Dropped = %d, want 3", got)
	}
	if err := f.Reopen(); err == nil {
		t.Error("Reopen of a closed file succeeded")
	}
}

func TestFailedReopenKeepsFile(t *testing.T) {
	f, path := openTemp(t)
	w := f.NewWriter(Stdout)
	os.Rename(path, path+".1")
	os.Mkdir(path, 0o700)
	if err := f.Reopen(); err == nil {
		t.Error("Reopen onto a directory succeeded")
	}
	w.Write([]byte("still logged\n"))
	f.Close()
	if got, _ := os.ReadFile(path + ".1"); !strings.HasSuffix(string(got), " stdout F still logged\n") || f.Dropped() != 0 {
		t.Errorf("old file holds %q, %d dropped", got, f.Dropped())
	}
}

// TestOpenStaysInLogDir: the root monitor opens the log file beneath the pod's log directory only, never through a
// symlink (last component or any directory on the way), never through "..", never a FIFO (without hanging).
func TestOpenStaysInLogDir(t *testing.T) {
	for name, tc := range map[string]struct {
		setup func(t *testing.T, dir, outside string)
		path  string
		ok    bool
	}{
		"plain":    {func(*testing.T, string, string) {}, "0.log", true},
		"subdir":   {func(t *testing.T, dir, _ string) { must(t, os.Mkdir(filepath.Join(dir, "c"), 0o755)) }, "c/0.log", true},
		"dotdot":   {func(*testing.T, string, string) {}, "../victim", false},
		"absolute": {func(_ *testing.T, _, outside string) {}, "/etc/passwd", false},
		"symlink-file": {func(t *testing.T, dir, outside string) {
			must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "0.log")))
		}, "0.log", false},
		"dangling-symlink": {func(t *testing.T, dir, outside string) {
			must(t, os.Symlink(filepath.Join(outside, "new"), filepath.Join(dir, "0.log")))
		}, "0.log", false},
		"symlink-dir": {func(t *testing.T, dir, outside string) { must(t, os.Symlink(outside, filepath.Join(dir, "c"))) }, "c/victim", false},
		"fifo":        {func(t *testing.T, dir, _ string) { must(t, unix.Mkfifo(filepath.Join(dir, "0.log"), 0o600)) }, "0.log", false},
		"directory":   {func(t *testing.T, dir, _ string) { must(t, os.Mkdir(filepath.Join(dir, "0.log"), 0o700)) }, "0.log", false},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			dir, outside := filepath.Join(root, "logs"), filepath.Join(root, "host")
			must(t, os.Mkdir(dir, 0o755))
			must(t, os.Mkdir(outside, 0o755))
			victim := filepath.Join(outside, "victim")
			must(t, os.WriteFile(victim, []byte("host file\n"), 0o644))
			tc.setup(t, dir, outside)
			done := make(chan error, 1)
			go func() {
				f, err := Open(dir, tc.path)
				if err == nil {
					w := f.NewWriter(Stdout)
					w.Write([]byte("container output\n"))
					w.Close()
					f.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Open hangs")
			}
			if tc.ok != (err == nil) {
				t.Fatalf("Open(%s) = %v, want ok=%v", tc.path, err, tc.ok)
			}
			if !tc.ok && !errors.Is(err, ErrUnsafePath) {
				t.Errorf("error %v does not wrap ErrUnsafePath", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "host file\n" {
				t.Errorf("host file outside the log dir written: %q", b)
			}
			if _, err := os.Lstat(filepath.Join(outside, "new")); err == nil {
				t.Error("file created outside the log dir")
			}
		})
	}
}

// TestReopenRefusesSymlink: a log file replaced by a symlink between rotations is not followed; the old file stays.
func TestReopenRefusesSymlink(t *testing.T) {
	f, path := openTemp(t)
	victim := filepath.Join(t.TempDir(), "victim")
	must(t, os.WriteFile(victim, nil, 0o644))
	must(t, os.Rename(path, path+".1"))
	must(t, os.Symlink(victim, path))
	if err := f.Reopen(); !errors.Is(err, ErrUnsafePath) {
		t.Fatalf("Reopen through a symlink: %v", err)
	}
	w := f.NewWriter(Stdout)
	w.Write([]byte("kept\n"))
	w.Close()
	f.Close()
	if b, _ := os.ReadFile(victim); len(b) != 0 {
		t.Errorf("symlink target written: %q", b)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzWriter(f *testing.F) {
	f.Add([]byte("hello\nworld"), []byte{3, 1}, false)
	f.Add([]byte(strings.Repeat("a", MaxLineSize+5)+"\n\n"), []byte{200, 255, 0}, true)
	f.Add([]byte("\r\n\x00\xff"), []byte{}, true)
	f.Fuzz(func(t *testing.T, data, cuts []byte, bothStreams bool) {
		lf, path := openTemp(t)
		ws := []*Writer{lf.NewWriter(Stdout), lf.NewWriter(Stderr)}
		var in [2][]byte
		// Feed data in chunks whose sizes come from cuts (scaled so long lines are reachable),
		// alternating streams when asked.
		for i, p := 0, data; len(p) > 0; i++ {
			n := len(p)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)])*97)
			}
			s := 0
			if bothStreams {
				s = i % 2
			}
			ws[s].Write(p[:n])
			in[s] = append(in[s], p[:n]...)
			p = p[n:]
		}
		for _, w := range ws {
			w.Close()
		}
		lf.Close()
		out, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		recs := parse(t, out)
		for i, s := range []Stream{Stdout, Stderr} {
			if got := text(recs, s); got != string(in[i]) {
				t.Fatalf("%s: logged text %q, wrote %q", s, got, in[i])
			}
		}
	})
}

func BenchmarkWriter(b *testing.B) {
	lf, _ := openTemp(b)
	defer lf.Close()
	w := lf.NewWriter(Stdout)
	chunk := bytes.Repeat([]byte("a log line of some typical length, with a number 12345\n"), 64)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		w.Write(chunk)
	}
}
