//go:build integration

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostUserEnv makes the test binary the unprivileged host user of TestHostUserReachesNothing (hostUserProbe).
const hostUserEnv = "BERTH_TEST_HOST_USER_PROBE"

// hostUserID is the unprivileged host user: nobody, in no group of berth's.
const hostUserID = 65534

// planted is what a container's root leaves in its rootfs for host users: a setuid-root copy of busybox, a file and,
// outside a user namespace (where mknod is refused), a device node open to all (/dev/zero's numbers: /dev/mem's
// would also need CAP_SYS_RAWIO to open, a host disk's would be the real attack).
const (
	planted     = "cp /bin/busybox /suid && chmod 4755 /suid && echo secret >/secret && "
	plantedNode = "mknod -m 666 /dev0 c 1 5 && "
)

// TestHostUserReachesNothing runs an unprivileged host user against a live berthd with running containers (one in a
// pod with its own user namespace, when the host advertises them) that planted a setuid-root binary, a device node
// and a file (CVE-2021-41091 class): the user must not list, read, execute or connect to anything under root_dir and
// state_dir, nor the CRI socket.
func TestHostUserReachesNothing(t *testing.T) {
	d := newPodDaemon(t)
	// Only berth's own dirs may keep the user out: the test's temp dirs above them are open to others, as /var/lib
	// and /run are.
	for _, dir := range []string{d.dir, filepath.Dir(d.dir)} {
		if err := os.Chmod(dir, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	rt, _ := d.startWithTestImage(t)
	pc := podConfig(d.dir, "hostuser")
	pod := runTestPod(t, rt, pc)
	startPlanter(t, rt, pod, pc, "hostuser", plantedNode)
	st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.RuntimeHandlers[0].GetFeatures().GetUserNamespaces() {
		m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
		upc := podConfig(d.dir, "hostuser-userns")
		upc.Linux.SecurityContext.NamespaceOptions = &runtimeapi.NamespaceOption{
			UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}}
		upod := runTestPod(t, rt, upc)
		uc := startPlanter(t, rt, upod, upc, "hostuser-userns", "")
		checkNoUsernsGroup(t, rt, uc, filepath.Join(d.dir, "state", "pods", upod, "pause.pid"))
	} else {
		t.Logf("user namespaces not advertised: no user-namespaced pod (%s)", st.GetInfo())
	}

	paths := berthPaths(t, filepath.Join(d.dir, "root"), filepath.Join(d.dir, "state"))
	paths = append(paths, d.socket)
	if len(paths) < 100 {
		t.Fatalf("only %d paths under root_dir and state_dir: the walk missed the containers", len(paths))
	}
	probe := exec.Command(openCopy(t, os.Args[0]), "-test.run=^TestHostUserProbe$")
	probe.Dir = "/"
	probe.Env = append(os.Environ(), hostUserEnv+"=1")
	probe.Stdin = strings.NewReader(strings.Join(paths, "\n") + "\n")
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: hostUserID, Gid: hostUserID, Groups: []uint32{}}}
	out, err := probe.CombinedOutput()
	if err != nil {
		t.Fatalf("host user %d reached berth's files (%d paths tried): %v\n%s", hostUserID, len(paths), err, out)
	}
	t.Logf("host user %d reached none of %d paths", hostUserID, len(paths))
}

// openCopy copies the test binary where the unprivileged user can run it: go test's build dir is private.
func openCopy(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "probe")
	if err := os.WriteFile(dst, must(os.ReadFile(bin)), 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// startPlanter starts a container in pod that plants the setuid binary, the file and node (plantedNode or ""), and
// waits for them. It returns the container's id.
func startPlanter(t *testing.T, rt runtimeapi.RuntimeServiceClient, pod string, pc *runtimeapi.PodSandboxConfig, name, node string) string {
	t.Helper()
	cc := containerConfig(name, "sh", "-c", planted+node+"sleep 3600")
	cc.Linux = &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions: pc.Linux.SecurityContext.NamespaceOptions}}
	c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cc, SandboxConfig: pc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		t.Fatal(err)
	}
	check := "test -u /suid && cat /secret"
	if node != "" {
		check = "test -c /dev0 && " + check
	}
	eventually(t, name+" planted its files", func() string {
		res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: c.ContainerId,
			Cmd: []string{"sh", "-c", check}, Timeout: 10})
		if err != nil || res.ExitCode != 0 {
			return fmt.Sprintf("err %v, exit %d, %s", err, res.GetExitCode(), res.GetStderr())
		}
		return ""
	})
	return c.ContainerId
}

// checkNoUsernsGroup checks that the userns group, which a user-namespaced pod's pause process and runc's container
// init carry to reach the pod's dirs, is gone before anything of the pod runs: from the container's processes (where
// the group, unmapped, would show as the overflow gid 65534) and from the pause process (seen from the host).
func checkNoUsernsGroup(t *testing.T, rt runtimeapi.RuntimeServiceClient, ctr, pausePidFile string) {
	t.Helper()
	res, err := rt.ExecSync(ctx(t), &runtimeapi.ExecSyncRequest{ContainerId: ctr,
		Cmd: []string{"grep", "-h", "^Groups:", "/proc/1/status", "/proc/self/status"}, Timeout: 10})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("read the container's groups: %v, exit %d, %s", err, res.GetExitCode(), res.GetStderr())
	}
	for line := range strings.Lines(string(res.Stdout)) {
		if slices.Contains(strings.Fields(line)[1:], "65534") {
			t.Errorf("a container process keeps an unmapped group: %s", line)
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%s/status", strings.TrimSpace(string(must(os.ReadFile(pausePidFile))))))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if groups, ok := strings.CutPrefix(line, "Groups:"); ok && strings.TrimSpace(groups) != "" {
			t.Errorf("the pause process keeps supplementary groups: %s", line)
		}
	}
}

// berthPaths lists, as root, every path under dirs (not following symlinks) and the mount points below them.
func berthPaths(t *testing.T, dirs ...string) []string {
	t.Helper()
	seen := map[string]bool{}
	var paths []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil && !errors.Is(err, fs.ErrNotExist) { // a file removed during the walk is fine
				return err
			}
			add(p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(mounts)) {
		if f := strings.Fields(line); len(f) > 4 {
			for _, dir := range dirs {
				if strings.HasPrefix(f[4], dir+"/") {
					add(f[4])
				}
			}
		}
	}
	return paths
}

// TestHostUserProbe is the unprivileged side of TestHostUserReachesNothing, run only as its child: it tries each
// path of its stdin and fails naming every one it reached.
func TestHostUserProbe(t *testing.T) {
	if os.Getenv(hostUserEnv) == "" {
		t.Skip("run by TestHostUserReachesNothing as an unprivileged user")
	}
	if os.Geteuid() != hostUserID {
		t.Fatalf("probe runs as euid %d, want %d", os.Geteuid(), hostUserID)
	}
	var reached []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if what := reach(sc.Text()); what != "" {
			reached = append(reached, sc.Text()+": "+what)
		}
	}
	if len(reached) > 0 {
		t.Errorf("reached %d paths:\n%s", len(reached), strings.Join(reached, "\n"))
	}
}

// reach tries what a host user would do with p: list a dir, read a file or device, execute an executable, connect to
// a socket; it says what worked, "" when nothing did.
func reach(p string) string {
	fi, err := os.Lstat(p)
	if err != nil {
		return ""
	}
	var did []string
	switch mode := fi.Mode(); {
	case mode.IsDir():
		if f, err := os.Open(p); err == nil {
			if names, err := f.Readdirnames(-1); err == nil {
				did = append(did, fmt.Sprintf("listed (%d entries)", len(names)))
			}
			f.Close()
		}
	case mode&fs.ModeSocket != 0:
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			did = append(did, "connected")
			c.Close()
		}
	case mode&fs.ModeSymlink != 0:
		return "" // its target is a path of its own, or outside berth's dirs
	default:
		// O_NONBLOCK: a FIFO or device opens without waiting for a writer.
		if f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			did = append(did, fmt.Sprintf("opened %v", mode))
			f.Close()
		}
		if mode.IsRegular() && mode&0o111 != 0 {
			if out, ok := execute(p); ok {
				did = append(did, "executed: "+out)
			}
		}
	}
	return strings.Join(did, ", ")
}

// execute runs p as busybox's id (argv[0] picks the applet; other programs ignore it), killed after two seconds.
func execute(p string) (string, bool) {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, p)
	cmd.Args = []string{"id"}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", false
	}
	cmd.Wait()
	return strings.TrimSpace(out.String()), true
}
