package ociruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/atomicfile"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
)

// record is berth's record of a container, read by oci/ctr.Runtime.Load as ctr.State (which ignores Bundle).
type record struct {
	ID          string            `json:"id"`
	InitPid     int               `json:"init_process_pid"`
	InitStart   uint64            `json:"init_process_start"`
	Created     time.Time         `json:"created"`
	CgroupPaths map[string]string `json:"cgroup_paths,omitempty"`
	Bundle      string            `json:"bundle"` // for exec: the container's process is the base of an exec's
}

func (r *Runtime) recordDir(id string) string { return filepath.Join(r.Records, id) }

// Create runs "create": the container's init waits for Start. The record is written once the binary succeeded; a
// failure after that deletes the container again.
func (r *Runtime) Create(id, bundle string, spec *specs.Spec, hio ctr.HelperIO) (_ ctr.Result, retErr error) {
	var res ctr.Result
	if err := checkID(id); err != nil {
		return res, err
	}
	dir := r.recordDir(id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return res, errdefs.AlreadyExists("container", id)
		}
		return res, fmt.Errorf("container %s: record: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			// Also after a failed or timed-out create: the binary may have made its state, and init, by then.
			r.delete(id)
			os.RemoveAll(dir)
		}
	}()
	pidFile := filepath.Join(dir, "init.pid")
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	var console *consoleSocket
	if hio.ConsoleSocket != nil {
		var err error
		if console, err = newConsoleSocket(); err != nil {
			return res, fmt.Errorf("container %s: %w", id, err)
		}
		defer console.close()
		args = append(args, "--console-socket", console.path)
	}
	if err := r.run(context.Background(), call{args: append(args, id), stdin: hio.Stdin, stdout: hio.Stdout, stderr: hio.Stderr}); err != nil {
		return res, fmt.Errorf("container %s: %w", id, err)
	}
	if console != nil {
		if err := console.forward(hio.ConsoleSocket); err != nil {
			return res, fmt.Errorf("container %s: terminal: %w", id, err)
		}
	}
	pid, err := readPid(pidFile)
	if err != nil {
		return res, fmt.Errorf("container %s: %w", id, err)
	}
	rec := record{ID: id, InitPid: pid, InitStart: ctr.ProcessStart(pid), Created: time.Now().UTC(), Bundle: bundle}
	if rec.InitStart == 0 {
		return res, fmt.Errorf("container %s: init %d is gone after create", id, pid)
	}
	if rec.CgroupPaths, err = cgroupPaths(pid); err != nil {
		return res, fmt.Errorf("container %s: cgroups of init %d: %w", id, pid, err)
	}
	if err := writeRecord(dir, rec); err != nil {
		return res, fmt.Errorf("container %s: %w", id, err)
	}
	res.Pid, res.SharesPIDNamespace, res.CgroupPaths = pid, sharesPID(spec), rec.CgroupPaths
	return res, nil
}

// Start runs "start": the created container's process runs.
func (r *Runtime) Start(id string) error {
	if err := r.mustExist(id); err != nil {
		return err
	}
	if err := r.run(context.Background(), call{args: []string{"start", id}}); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return nil
}

// Destroy kills every process of the container, has the binary delete it and removes berth's record. A container
// already destroyed is not an error.
func (r *Runtime) Destroy(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if st, err := (&ctr.Runtime{Root: r.Records}).Load(id); err == nil && len(st.CgroupPaths) > 0 {
		// Without a PID namespace of its own, the container's other processes outlive init.
		if err := st.Signal(unix.SIGKILL, true); err != nil && !errdefs.IsFailedPrecondition(err) && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := r.delete(id); err != nil {
		return err
	}
	if err := os.RemoveAll(r.recordDir(id)); err != nil {
		return fmt.Errorf("container %s: remove record: %w", id, err)
	}
	return nil
}

// delete runs "delete --force" when the binary has state of the container.
func (r *Runtime) delete(id string) error {
	if !r.exists(id) {
		return nil
	}
	if err := r.run(context.Background(), call{args: []string{"delete", "--force", id}}); err != nil {
		if !r.exists(id) { // deleted by someone else meanwhile
			return nil
		}
		return fmt.Errorf("container %s: %w", id, err)
	}
	return nil
}

// Update runs "update --resources" with the OCI spec's linux.resources.
func (r *Runtime) Update(id string, res *specs.LinuxResources) error {
	if res == nil {
		return errdefs.InvalidArgument("resources", "nil")
	}
	if err := r.mustExist(id); err != nil {
		return err
	}
	f, err := writeTemp(r.recordDir(id), "resources-*.json", res)
	if err != nil {
		return fmt.Errorf("container %s: update: %w", id, err)
	}
	defer os.Remove(f)
	if err := r.run(context.Background(), call{args: []string{"update", "--resources", f, id}}); err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	return nil
}

// sharesPID says whether the spec gives the container no PID namespace of its own.
func sharesPID(spec *specs.Spec) bool {
	if spec.Linux == nil {
		return true
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			return ns.Path != ""
		}
	}
	return true
}

func readPid(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", file, b)
	}
	return pid, nil
}

// cgroupPaths maps each controller to init's cgroup directory, as libcontainer's state does ("" is the cgroup v2
// hierarchy). The helper reads /proc/<pid>/cgroup in the host's cgroup namespace: the paths are the host's.
func cgroupPaths(pid int) (map[string]string, error) {
	in, err := cgroups.ParseCgroupFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if cgroups.IsCgroup2UnifiedMode() {
		p, ok := in[""]
		if !ok {
			return nil, errors.New("no cgroup v2 entry")
		}
		out[""] = filepath.Join("/sys/fs/cgroup", p)
		return out, nil
	}
	for ctrl, p := range in {
		if ctrl == "" || strings.HasPrefix(ctrl, "name=") { // the hybrid v2 tree and named hierarchies: not read
			continue
		}
		mnt, err := cgroups.FindCgroupMountpoint("", ctrl)
		if err != nil {
			continue // a controller the host has not mounted
		}
		out[ctrl] = filepath.Join(mnt, p)
	}
	return out, nil
}

// writeRecord writes state.json atomically: a reader sees the whole record or none.
func writeRecord(dir string, rec record) error {
	b, err := json.Marshal(rec)
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(dir, ctr.StateFile), b, 0o600)
	}
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// writeTemp writes v as JSON to a new file in dir, synced, and returns its path: a file argument of one call
// (exec's process, update's resources), not a replacement of another file.
func writeTemp(dir, pattern string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
