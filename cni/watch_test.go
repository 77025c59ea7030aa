package cni

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcherTransitions(t *testing.T) {
	const bridge = `{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"},{"type":"portmap"}]}`
	// Each step changes the dirs, then the status must read want: "" for ready with wantFile, else the reason.
	type step struct {
		change   func(conf, bin string) error
		want     string
		wantFile string
	}
	write := func(dir, name, data string, mode os.FileMode) func(conf, bin string) error {
		return func(conf, bin string) error {
			return os.WriteFile(filepath.Join(map[string]string{"conf": conf, "bin": bin}[dir], name), []byte(data), mode)
		}
	}
	remove := func(dir, name string) func(conf, bin string) error {
		return func(conf, bin string) error {
			return os.Remove(filepath.Join(map[string]string{"conf": conf, "bin": bin}[dir], name))
		}
	}
	cases := map[string][]step{
		"config appears, then goes": {
			{want: "no network config found in <conf>"},
			{change: write("bin", "bridge", "", 0o755), want: "no network config found in <conf>"},
			{change: write("bin", "portmap", "", 0o755), want: "no network config found in <conf>"},
			{change: write("conf", "10-b.conflist", bridge, 0o644), wantFile: "10-b.conflist"},
			{change: remove("conf", "10-b.conflist"), want: "no network config found in <conf>"},
		},
		"plugin missing, then installed": {
			{change: write("conf", "10-b.conflist", bridge, 0o644), want: "10-b.conflist: plugin 'bridge' not found in <bin>"},
			{change: write("bin", "bridge", "", 0o755), want: "10-b.conflist: plugin 'portmap' not found in <bin>"},
			{change: write("bin", "portmap", "", 0o644), want: "plugin 'portmap' not found"}, // not executable
			{change: func(_, bin string) error { return os.Chmod(filepath.Join(bin, "portmap"), 0o755) }, wantFile: "10-b.conflist"},
			{change: remove("bin", "bridge"), want: "10-b.conflist: plugin 'bridge' not found in <bin>"},
		},
		"invalid config, then a valid one sorts first": {
			{change: write("conf", "20-bad.conflist", "{", 0o644), want: "20-bad.conflist: "},
			{change: write("bin", "bridge", "", 0o755), want: "20-bad.conflist: "},
			{change: write("bin", "portmap", "", 0o755), want: "20-bad.conflist: "},
			{change: write("conf", "10-b.conflist", bridge, 0o644), wantFile: "10-b.conflist"},
			{change: write("conf", "05-a.conf", `{"cniVersion":"1.0.0","name":"a","type":"bridge"}`, 0o644), wantFile: "05-a.conf"},
		},
	}
	for name, steps := range cases {
		t.Run(name, func(t *testing.T) {
			conf, bin := t.TempDir(), t.TempDir()
			w, err := newWatcher(conf, []string{bin}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer w.close()
			for i, s := range steps {
				if s.change != nil {
					if err := s.change(conf, bin); err != nil {
						t.Fatal(err)
					}
				}
				w.reload()
				c, err := w.current()
				want := strings.NewReplacer("<conf>", conf, "<bin>", bin).Replace(s.want)
				switch {
				case s.want != "" && (err == nil || c != nil || !strings.Contains(err.Error(), want)):
					t.Fatalf("step %d: status = %v, want %q", i, err, want)
				case s.want == "" && (err != nil || filepath.Base(c.File) != s.wantFile):
					t.Fatalf("step %d: status = %v (%+v), want ready with %s", i, err, c, s.wantFile)
				}
			}
		})
	}
}

// TestWatcherFollowsChanges checks that changes reach the status without a rescan.
func TestWatcherFollowsChanges(t *testing.T) {
	conf, bin := t.TempDir(), t.TempDir()
	w, err := newWatcher(conf, []string{bin}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	ready := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(rescanInterval / 2)
		for {
			_, err := w.current()
			if (err == nil) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ready = %v, want %v (%v)", err == nil, want, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ready(false)
	os.WriteFile(filepath.Join(conf, "10-b.conflist"), []byte(`{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}`), 0o644)
	os.WriteFile(filepath.Join(bin, "bridge"), nil, 0o755)
	ready(true)
	os.Remove(filepath.Join(bin, "bridge"))
	ready(false)
}
