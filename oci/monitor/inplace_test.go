package monitor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// Under libcontainer with cgroupfs, start and remove run no helper; a container with a poststop hook is still
// destroyed by the helper, which runs the hook. Remove leaves no cgroup, child cgroups included, and no state.
func TestStartRemoveWithoutHelper(t *testing.T) {
	e := newEnv(t)
	helpers := logHelpers(t)
	c := e.start("p1", false)
	ctx := ctxT(t, 30*time.Second)
	marker := filepath.Join(e.dir, "poststop-ran")
	b1 := e.bundle("p1", "c1", []string{"sh", "-c", "exit 0"})
	b2 := e.bundle("p1", "c2", []string{"sleep", "1021"}, func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{Poststop: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "touch " + marker}}}}
	})
	for _, r := range []CreateRequest{{ID: "c1", Bundle: b1}, {ID: "c2", Bundle: b2}} {
		if err := c.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if ex := waitExit(t, b1, 10*time.Second); ex.ExitCode != 0 {
		t.Errorf("exit = %+v, want 0", ex)
	}
	// A child cgroup, as a container's own cgroup namespace may make.
	dirs := cgroupDirs(e.cgroup + "/p1/c1")
	if len(dirs) == 0 {
		t.Fatal("no cgroup of c1")
	}
	for _, d := range dirs {
		if err := os.Mkdir(filepath.Join(d, "child"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"c1", "c2"} {
		if err := c.Remove(ctx, id); err != nil {
			t.Fatalf("remove %s: %v", id, err)
		}
		if d := cgroupDirs(e.cgroup + "/p1/" + id); len(d) > 0 {
			t.Errorf("cgroup left after remove: %v", d)
		}
		if _, err := os.Stat(filepath.Join(e.runcRoot, id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("libcontainer state left after remove: %v", err)
		}
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("poststop hook did not run: %v", err)
	}
	if got, want := helpers(), []string{"create/c1", "create/c2", "destroy/c2"}; !slices.Equal(got, want) {
		t.Errorf("helpers run = %v, want %v", got, want)
	}
}

// releaseInit against a shell that plays init: the fifo's outcomes are libcontainer's, and its errors carry no
// sentinel, as the helper's did (libcontainer's "container process is already dead" maps to none).
func TestReleaseInit(t *testing.T) {
	tests := map[string]struct {
		script  string // $0 is the fifo
		timeout time.Duration
		want    string // "" for success
	}{
		"written, then exec":     {script: `printf 0 > "$0"; exec sleep 10`},
		"written, then exited":   {script: `printf 0 > "$0"`},
		"closed with no byte":    {script: `: > "$0"; exec sleep 10`, want: "cannot start an already running container"},
		"init died":              {script: `exit 1`, want: "container process is already dead"},
		"init never writes":      {script: `exec sleep 10`, timeout: 300 * time.Millisecond, want: "did not release"},
		"written slowly, closed": {script: `exec 3> "$0"; sleep 0.2; printf 0 >&3; sleep 0.2; exec 3>&-; exec sleep 10`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, execFifoName)
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			pidfd := -1
			cmd := exec.Command("/bin/sh", "-c", tc.script, fifo)
			cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				cmd.Process.Kill()
				cmd.Wait()
				unix.Close(pidfd)
			}()
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			err := releaseInit(dir, pidfd, timeout)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(fifo); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("fifo left after start: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("releaseInit: %v, want %q", err, tc.want)
			}
			if k := errdefs.Kind(err); k != "" {
				t.Errorf("error kind %q, want none (as libcontainer's)", k)
			}
			if tc.timeout != 0 && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("timeout error %v does not wrap DeadlineExceeded", err)
			}
		})
	}
	if err := releaseInit(t.TempDir(), -1, time.Second); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("releaseInit without a fifo: %v, want ErrNotExist", err)
	}
}
