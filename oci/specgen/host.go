package specgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/kernel"
	"github.com/berthcri/berth/oci/apparmor"
)

// Host is what Spec needs to know about the machine. SystemHost reads the real one once at start-up; tests
// use fakes.
type Host struct {
	// BoundingCaps is the runtime's capability bounding set ("CAP_CHOWN", …): what "all capabilities" means.
	// A capability outside it cannot be given to a container.
	BoundingCaps []string
	// OOMScoreAdjMin is the lowest oom_score_adj a container gets; lower requests are raised to it.
	OOMScoreAdjMin int
	// CgroupV2 is set on a unified (v2) cgroup host.
	CgroupV2 bool
	// SwapAccounting is set when memory+swap can be limited; then a memory limit also caps swap.
	SwapAccounting bool
	// Hugetlb is set when the hugetlb controller exists; without it hugepage limits are dropped.
	Hugetlb bool
	// RecursiveReadOnly is set when the kernel makes recursive read-only mounts (mount_setattr, Linux 5.12).
	RecursiveReadOnly bool
	// AppArmor is set when AppArmor is enabled; AppArmorDefaultProfile is the profile RuntimeDefault and no
	// profile mean ("" leaves the process unconfined), which the caller keeps loaded (oci/apparmor).
	AppArmor               bool
	AppArmorDefaultProfile string
	// FS answers questions about host paths (required).
	FS HostFS
}

// HostFS looks at host paths for Spec.
type HostFS interface {
	// EvalSymlinks returns path with every symlink resolved; an error if it does not exist.
	EvalSymlinks(path string) (string, error)
	// MountPoint describes the mount path lives on.
	MountPoint(path string) (MountPoint, error)
	// Devices returns the device node at hostPath (symlinks followed) or, for a directory, every device node
	// below it, with Path set to where it appears in the container: containerPath (plus the path below hostPath
	// for a directory); containerPath "" keeps the host path.
	Devices(hostPath, containerPath string) ([]specs.LinuxDevice, error)
	// ReadFile reads a file a request named (a Localhost seccomp profile): a regular file (symlinks followed) of
	// at most MaxProfileSize bytes, else an error wrapping ErrNotRegular or ErrTooLarge; it never blocks on a FIFO.
	ReadFile(path string) ([]byte, error)
	// AppArmorLoaded reports whether the kernel has the AppArmor profile called name loaded.
	AppArmorLoaded(name string) (bool, error)
}

// MountPoint is a mount of the host's mount table.
type MountPoint struct {
	// Path is where it is mounted.
	Path string
	// Shared and Slave tell its propagation (neither: private).
	Shared, Slave bool
}

// SystemHost reads the facts of this machine. OOMScoreAdjMin is -1000 when the process may lower its
// oom_score_adj (CAP_SYS_RESOURCE) and its own current score otherwise; raise it for a configured floor.
func SystemHost() (Host, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Host{}, fmt.Errorf("read capabilities: %w", err)
	}
	bounding, err := statusCaps(status, "CapBnd")
	if err != nil {
		return Host{}, err
	}
	effective, err := statusCaps(status, "CapEff")
	if err != nil {
		return Host{}, err
	}
	h := Host{BoundingCaps: capNames(bounding), OOMScoreAdjMin: -1000, FS: systemFS{},
		RecursiveReadOnly: kernel.MountSetattr() == nil}
	if effective&(1<<capSysResource) == 0 {
		b, err := os.ReadFile("/proc/self/oom_score_adj")
		if err != nil {
			return Host{}, fmt.Errorf("read own oom_score_adj: %w", err)
		}
		if h.OOMScoreAdjMin, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return Host{}, fmt.Errorf("parse own oom_score_adj %q: %w", b, err)
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		h.CgroupV2 = true
		controllers, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		h.Hugetlb = bytes.Contains(controllers, []byte("hugetlb"))
		// memory.swap.max does not exist in the root cgroup: look at our own.
		if self, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			if p, ok := bytes.CutPrefix(bytes.TrimSpace(self), []byte("0::")); ok {
				h.SwapAccounting = exists(filepath.Join("/sys/fs/cgroup", string(p), "memory.swap.max"))
			}
		}
	} else {
		h.Hugetlb = exists("/sys/fs/cgroup/hugetlb")
		h.SwapAccounting = exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	}
	h.AppArmor = apparmor.Enabled()
	return h, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// statusCaps parses a capability mask line ("CapBnd:\t000001fffeffffff") of /proc/<pid>/status.
func statusCaps(status []byte, field string) (uint64, error) {
	for line := range bytes.Lines(status) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			mask, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %q: %w", field, bytes.TrimSpace(v), err)
			}
			return mask, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// systemFS is HostFS on the real machine.
type systemFS struct{}

func (systemFS) EvalSymlinks(path string) (string, error) { return filepath.EvalSymlinks(path) }

// ReadFile follows symlinks: a profile installed from a ConfigMap is one (..data/).
func (systemFS) ReadFile(path string) ([]byte, error) {
	return ReadRegularFile(path, MaxProfileSize, false)
}

func (systemFS) AppArmorLoaded(name string) (bool, error) { return apparmor.Loaded(name) }

func (systemFS) MountPoint(path string) (MountPoint, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return MountPoint{}, err
	}
	defer f.Close()
	return findMountPoint(f, path)
}

// findMountPoint returns the last-mounted mount of mountinfo whose mount point holds path.
func findMountPoint(mountinfo io.Reader, path string) (MountPoint, error) {
	var best MountPoint
	found := false
	s := bufio.NewScanner(mountinfo)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		fields := strings.Fields(s.Text())
		if len(fields) < 7 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if !within(path, mp) || (found && len(mp) < len(best.Path)) {
			continue
		}
		best, found = MountPoint{Path: mp}, true
		for _, opt := range fields[6:] {
			if opt == "-" {
				break
			}
			best.Shared = best.Shared || strings.HasPrefix(opt, "shared:")
			best.Slave = best.Slave || strings.HasPrefix(opt, "master:")
		}
	}
	if err := s.Err(); err != nil {
		return MountPoint{}, fmt.Errorf("read mountinfo: %w", err)
	}
	if !found {
		return MountPoint{}, fmt.Errorf("no mount holds %q", path)
	}
	return best, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// errNotDevice is returned for a path that is not a device node.
var errNotDevice = errors.New("not a device node")

func (systemFS) Devices(hostPath, containerPath string) ([]specs.LinuxDevice, error) {
	resolved, err := filepath.EvalSymlinks(hostPath)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		d, err := deviceFromPath(resolved)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hostPath, err)
		}
		if containerPath != "" {
			d.Path = containerPath
		}
		return []specs.LinuxDevice{d}, nil
	}
	return dirDevices(resolved, containerPath)
}

// dirDevices lists the device nodes below dir like containerd does for host devices: symlinks and the
// pseudo-filesystem directories of /dev are skipped.
func dirDevices(dir, containerPath string) ([]specs.LinuxDevice, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []specs.LinuxDevice
	for _, e := range entries {
		cp := ""
		if containerPath != "" {
			cp = filepath.Join(containerPath, e.Name())
		}
		switch {
		case e.IsDir():
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				continue
			}
			sub, err := dirDevices(filepath.Join(dir, e.Name()), cp)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case e.Name() == "console":
			// The console is the container's own terminal, if any.
		default:
			d, err := deviceFromPath(filepath.Join(dir, e.Name()))
			if errors.Is(err, errNotDevice) || errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if cp != "" {
				d.Path = cp
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func deviceFromPath(path string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return specs.LinuxDevice{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		typ = "b"
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFIFO:
		typ = "p"
	default:
		return specs.LinuxDevice{}, errNotDevice
	}
	mode := fs.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     path,
		Type:     typ,
		Major:    int64(unix.Major(st.Rdev)),
		Minor:    int64(unix.Minor(st.Rdev)),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, nil
}
