package archive

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"time"
)

// benchLayer is a ~50 MB layer shaped like a typical image: a few big files (binaries, libraries) and thousands
// of small ones in a directory tree, half random and half repetitive bytes so that compression is realistic.
func benchLayer(b *testing.B) []byte {
	rng := rand.New(rand.NewChaCha8([32]byte{}))
	content := func(n int) string {
		buf := make([]byte, n)
		for i := range buf[:n/2] {
			buf[i] = byte(rng.Uint32())
		}
		for i := n / 2; i < n; i++ {
			buf[i] = "berth unpacks layers "[i%21]
		}
		return string(buf)
	}
	var ents []ent
	for i := range 8 {
		ents = append(ents, reg(fmt.Sprintf("usr/lib/big%d.so", i), content(5<<20)))
	}
	for d := range 50 {
		ents = append(ents, dir(fmt.Sprintf("usr/share/d%d/", d)))
		for f := range 50 {
			name := fmt.Sprintf("usr/share/d%d/f%d", d, f)
			ents = append(ents, reg(name, content(1024+rng.IntN(6<<10))))
			if f%10 == 0 {
				ents = append(ents, symlink(name+".link", fmt.Sprintf("f%d", f)), hardlink(name+".hard", name))
			}
		}
	}
	return mkTar(b, ents...)
}

func BenchmarkApply(b *testing.B) {
	tarball := benchLayer(b)
	for _, c := range []struct {
		name string
		blob []byte
	}{{"plain", tarball}, {"gzip", gzipBytes(b, tarball)}, {"zstd", zstdBytes(b, tarball)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(tarball))) // MB/s of uncompressed layer
			parent := b.TempDir()
			var cpu time.Duration // user+sys of Apply alone: steadier than wall time on a shared machine
			for i := 0; b.Loop(); i++ {
				dir := fmt.Sprintf("%s/%d", parent, i)
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				before := cpuTime(b)
				rc, err := Decompress(bytes.NewReader(c.blob))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := Apply(context.Background(), dir, rc, Options{}); err != nil {
					b.Fatal(err)
				}
				rc.Close()
				cpu += cpuTime(b) - before
				b.StopTimer()
				if err := os.RemoveAll(dir); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
