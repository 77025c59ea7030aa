package specgen

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCapNames(t *testing.T) {
	got := capNames(0x000001fffeffffff)
	if len(got) != 40 || slices.Contains(got, "CAP_SYS_RESOURCE") || got[0] != "CAP_CHOWN" || got[39] != "CAP_CHECKPOINT_RESTORE" {
		t.Fatalf("capNames = %v", got)
	}
	// Capabilities newer than the table are left out rather than named wrongly.
	if got := capNames(1<<63 | 1); !slices.Equal(got, []string{"CAP_CHOWN"}) {
		t.Fatalf("capNames(unknown bit) = %v", got)
	}
}

func TestStatusCaps(t *testing.T) {
	status := []byte("Name:\tberthd\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n")
	if m, err := statusCaps(status, "CapBnd"); err != nil || m != 0x1fffeffffff {
		t.Fatalf("CapBnd = %x, %v", m, err)
	}
	if _, err := statusCaps(status, "CapEff"); err == nil {
		t.Fatal("missing CapEff parsed")
	}
}

func TestFindMountPoint(t *testing.T) {
	const mountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /mnt rw,relatime - tmpfs tmpfs rw
31 30 0:26 / /mnt/shared rw shared:7 master:3 - tmpfs tmpfs rw
32 30 0:27 / /mnt/slave rw master:4 - tmpfs tmpfs rw
33 30 0:28 / /mnt/with\040space rw shared:9 - tmpfs tmpfs rw
`
	f := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(f, []byte(mountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]MountPoint{
		"/etc/hosts":           {Path: "/", Shared: true},
		"/mnt/x":               {Path: "/mnt"},
		"/mnt/shared/vol":      {Path: "/mnt/shared", Shared: true, Slave: true},
		"/mnt/slave":           {Path: "/mnt/slave", Slave: true},
		"/mnt/slavery":         {Path: "/mnt"},
		"/mnt/with space/file": {Path: "/mnt/with space", Shared: true},
	} {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := findMountPoint(r, path)
		r.Close()
		if err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", path, got, err, want)
		}
	}
}

func TestSystemFSDevices(t *testing.T) {
	fs := systemFS{}
	devs, err := fs.Devices("/dev/null", "/dev/mynull")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/dev/mynull" || devs[0].Type != "c" || devs[0].Major != 1 || devs[0].Minor != 3 {
		t.Fatalf("/dev/null = %+v", devs)
	}

	// A directory: its device nodes, not its files or symlinks.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "sub-fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	devs, err = fs.Devices(dir, "/dev/x")
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 1 || devs[0].Path != "/dev/x/sub-fifo" || devs[0].Type != "p" {
		t.Fatalf("devices of a directory = %+v", devs)
	}
	if _, err := fs.Devices(filepath.Join(dir, "file"), "/dev/f"); err == nil {
		t.Fatal("a regular file passed as a device")
	}
}

func TestSystemHost(t *testing.T) {
	h, err := SystemHost()
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	mask, err := statusCaps(status, "CapBnd")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.BoundingCaps, capNames(mask)) {
		t.Errorf("BoundingCaps = %v, want %v", h.BoundingCaps, capNames(mask))
	}
	if h.OOMScoreAdjMin < -1000 || h.OOMScoreAdjMin > 1000 {
		t.Errorf("OOMScoreAdjMin = %d", h.OOMScoreAdjMin)
	}
	if _, err := h.FS.MountPoint("/proc/self"); err != nil {
		t.Errorf("MountPoint: %v", err)
	}
	t.Logf("host: %d caps, oom floor %d, cgroup v2 %v, swap %v, hugetlb %v, apparmor %v, missing caps: %s",
		len(h.BoundingCaps), h.OOMScoreAdjMin, h.CgroupV2, h.SwapAccounting, h.Hugetlb, h.AppArmor,
		strings.Join(slices.DeleteFunc(slices.Clone(allCaps), func(c string) bool { return slices.Contains(h.BoundingCaps, c) }), ","))
}
