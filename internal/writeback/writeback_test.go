package writeback

import (
	"os"
	"slices"
	"testing"
)

func TestPacer(t *testing.T) {
	type span struct{ off, n int64 }
	const c = Chunk
	for _, tc := range []struct {
		name   string
		writes []int
		want   []span
	}{
		{"small file: left to the final sync", []int{4096, 100}, nil},
		{"just under a chunk", []int{c - 1}, nil},
		{"one chunk", []int{c}, []span{{0, c}}},
		{"chunk and a tail", []int{c / 2, c / 2, 10}, []span{{0, c}, {c, 10}}},
		{"big writes", []int{3*c + 5}, []span{{0, 3*c + 5}}},
		{"many buffers", slices.Repeat([]int{c / 4}, 9), []span{{0, c}, {c, c}, {2 * c, c / 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []span
			syncFileRange = func(fd int, off, n int64, flags int) error {
				if fd != 7 {
					t.Errorf("fd %d, want 7", fd)
				}
				got = append(got, span{off, n})
				return nil
			}
			t.Cleanup(func() { syncFileRange = realSyncFileRange })
			p := New(7)
			for _, n := range tc.writes {
				p.Wrote(n)
			}
			p.Done()
			if !slices.Equal(got, tc.want) {
				t.Errorf("writeback started for %v, want %v", got, tc.want)
			}
		})
	}
}

var realSyncFileRange = syncFileRange

// On a real file the syscall is accepted; on a pipe it fails, which the Pacer ignores.
func TestPacerRealFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "w")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	p := New(int(f.Fd()))
	for range 9 {
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		p.Wrote(len(buf))
	}
	p.Done()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	pp := New(int(w.Fd()))
	pp.Wrote(Chunk)
	pp.Done()
}
