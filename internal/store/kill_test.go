package store

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// writerDirEnv makes the test binary run writeForever instead of the tests: TestKilledWriter re-executes itself
// as that helper process and SIGKILLs it mid-write.
const writerDirEnv = "BERTH_STORE_TEST_WRITER_DIR"

var writerIDs = []string{"r0", "r1", "r2"}

type bigRec struct {
	Seq     int    `json:"seq"`
	Payload string `json:"payload"`
}

// payload derives the whole content from seq so that a torn or mixed record is detectable; its size changes
// with seq so that a new value is sometimes shorter and sometimes longer than the old one.
func payload(seq int) string {
	return strings.Repeat(string(rune('a'+seq%26)), (1+seq%7)*32<<10)
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(writerDirEnv); dir != "" {
		if err := writeForever(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

// writeForever updates every record in turn until it is killed, printing "ready" once writes are under way.
func writeForever(dir string) error {
	s, err := Open[bigRec](dir, "big", 1)
	if err != nil {
		return err
	}
	for _, id := range writerIDs {
		if _, ok := s.Get(id); !ok {
			if err := s.Create(id, bigRec{Payload: payload(0)}); err != nil {
				return err
			}
		}
	}
	fmt.Println("ready")
	for {
		for _, id := range writerIDs {
			_, err := s.Update(id, func(r *bigRec) error {
				r.Seq++
				r.Payload = payload(r.Seq)
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
}

func TestKilledWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary several times")
	}
	dir := t.TempDir()
	lastSeq := map[string]int{}
	// Most kills land while the writer encodes JSON; go on past 8 rounds until some land inside a file write.
	interrupted := 0
	for round := 0; round < 8 || (interrupted < 2 && round < 16); round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerDirEnv+"="+dir)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: writer did not start: %q, %v", round, line, err)
		}
		time.Sleep(rand.N(300 * time.Millisecond))
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		torn := countTemp(t, dir)
		interrupted += torn
		s, err := Open[bigRec](dir, "big", 1)
		if err != nil {
			t.Fatalf("round %d: Open after SIGKILL: %v", round, err)
		}
		for _, id := range writerIDs {
			r, ok := s.Get(id)
			switch {
			case !ok:
				t.Fatalf("round %d: record %s missing", round, id)
			case r.Payload != payload(r.Seq):
				t.Fatalf("round %d: record %s seq %d has a payload of another value (%d bytes)", round, id, r.Seq, len(r.Payload))
			case r.Seq < lastSeq[id]:
				t.Fatalf("round %d: record %s went back from seq %d to %d", round, id, lastSeq[id], r.Seq)
			}
			lastSeq[id] = r.Seq
		}
		t.Logf("round %d: %d interrupted write(s) found, seqs %v", round, torn, lastSeq)
		if n := countTemp(t, dir); n != 0 {
			t.Fatalf("round %d: %d temp file(s) survived Open", round, n)
		}
	}
}

func countTemp(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			n++
		}
	}
	return n
}
