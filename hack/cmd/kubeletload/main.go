// Command kubeletload measures what a node's pods cost a CRI runtime (hack/bench/node.sh): it runs -pods pods of one
// idle container each through the CRI API, 10 at a time, then measures one of
//
//   - density: the PSS of the runtime's whole per-pod overhead (the daemon's growth since before the first pod, plus
//     every process under a per-pod root — berth's monitors, containerd's shims — and their children, pause included,
//     except the containers' own processes), per pod, and the daemon's RSS at -pods;
//   - steady load, for -window: calls the CRI as the kubelet does on an idle node (ListPodSandbox and ListContainers
//     every second; ListContainerStats and ListPodSandboxStats every 10 s; PodSandboxStatus and ContainerStatus of
//     every pod every 10 s), and reports the CPU time (utime+stime) the daemon, and the daemon with its per-pod
//     processes, spent in the window, and each call's p99.
//
// It prints "<row> <value>" lines (hack/bench/lib.sh print_rows), then removes the pods.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "", "CRI socket path")
	pods := flag.Int("pods", 100, "pods to run")
	window := flag.Duration("window", 0, "steady-load window; 0: measure density instead")
	image := flag.String("image", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "container image")
	daemonPID := flag.Int("pid", 0, "the runtime daemon's PID")
	perPod := flag.String("per-pod", "", "regexp matching the command line (arguments joined by spaces) of the runtime's per-pod root processes")
	containerComm := flag.String("container-comm", "sleep", "comm of the containers' own processes (not overhead)")
	logDir := flag.String("log-dir", os.TempDir(), "parent of the pods' log directories")
	flag.Parse()
	if *endpoint == "" || *daemonPID == 0 || *perPod == "" {
		fmt.Fprintln(os.Stderr, "kubeletload: -endpoint, -pid and -per-pod are required")
		os.Exit(2)
	}
	re, err := regexp.Compile(*perPod)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeletload: -per-pod: %v\n", err)
		os.Exit(2)
	}
	b := &bench{pods: *pods, image: *image, daemon: *daemonPID, perPod: re, ctrComm: *containerComm, logDir: *logDir,
		cgroupRoot: fmt.Sprintf("/berth-bench-%d", os.Getpid())}
	if err := b.run(context.Background(), *endpoint, *window); err != nil {
		fmt.Fprintf(os.Stderr, "kubeletload: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	pods    int
	image   string
	daemon  int
	perPod  *regexp.Regexp
	ctrComm string
	logDir  string
	// cgroupRoot is the pods' parent cgroup, /berth-bench-PID: the kubelet always names one (containerd's
	// ListPodSandboxStats fails a pod without), and removes it, as this program does at the end.
	cgroupRoot string
	rt         runtimeapi.RuntimeServiceClient
	im         runtimeapi.ImageServiceClient
	podIDs     []string
	ctrIDs     []string
}

func (b *bench) run(ctx context.Context, endpoint string, window time.Duration) error {
	conn, err := grpc.NewClient("unix://"+endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect %s: %w", endpoint, err)
	}
	defer conn.Close()
	b.rt, b.im = runtimeapi.NewRuntimeServiceClient(conn), runtimeapi.NewImageServiceClient(conn)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	_, err = b.im.PullImage(pctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: b.image}})
	cancel()
	if err != nil {
		return fmt.Errorf("pull %s: %w", b.image, err)
	}
	time.Sleep(2 * time.Second)
	before, err := pss(b.daemon)
	if err != nil {
		return err
	}
	defer b.cleanup()
	if err := b.start(ctx); err != nil {
		return err
	}
	if window > 0 {
		return b.load(ctx, window)
	}
	time.Sleep(5 * time.Second) // let the per-pod processes settle to idle
	return b.density(before)
}

// start runs the pods, 10 at a time as the kubelet's parallel pod workers do on a busy node.
func (b *bench) start(ctx context.Context) error {
	b.podIDs, b.ctrIDs = make([]string, b.pods), make([]string, b.pods)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(10)
	for i := range b.pods {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(gctx, 2*time.Minute)
			defer cancel()
			name := fmt.Sprintf("load-%d", i)
			pc := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: name},
				LogDirectory: filepath.Join(b.logDir, name),
				Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: b.cgroupRoot + "/pod" + name, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Pid: runtimeapi.NamespaceMode_CONTAINER}}},
			}
			p, err := b.rt.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: pc})
			if err != nil {
				return fmt.Errorf("pod %s: %w", name, err)
			}
			b.podIDs[i] = p.PodSandboxId
			c, err := b.rt.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.PodSandboxId, SandboxConfig: pc,
				Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "idle"},
					Image: &runtimeapi.ImageSpec{Image: b.image}, Command: []string{"sleep", "36000"}, LogPath: "idle.log"}})
			if err != nil {
				return fmt.Errorf("container of %s: %w", name, err)
			}
			b.ctrIDs[i] = c.ContainerId
			if _, err := b.rt.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
				return fmt.Errorf("start container of %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(10)
	for _, id := range b.podIDs {
		if id == "" {
			continue
		}
		g.Go(func() error {
			if _, err := b.rt.StopPodSandbox(gctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				slog.Warn("stop pod", "pod", id, "err", err)
			}
			if _, err := b.rt.RemovePodSandbox(gctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				slog.Warn("remove pod", "pod", id, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	removeCgroups(b.cgroupRoot)
}

// removeCgroups removes the cgroup dir root, below it first, in every cgroup v1 hierarchy (or the v2 one).
func removeCgroups(root string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + root)
	if d := "/sys/fs/cgroup" + root; isDir(d) {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		var all []string
		_ = filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				all = append(all, path)
			}
			return nil
		})
		for _, p := range slices.Backward(all) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) { // cpu and cpuacct may be one dir
				slog.Warn("remove cgroup", "path", p, "err", err)
			}
		}
	}
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// density prints the per-pod overhead: the daemon's PSS growth since before the first pod plus the PSS of the
// per-pod processes, divided by the pods; and the daemon's RSS now.
func (b *bench) density(daemonBefore int) error {
	after, err := pss(b.daemon)
	if err != nil {
		return err
	}
	procs := b.overhead()
	total := 0
	for _, p := range procs {
		v, err := pss(p)
		if err != nil {
			continue // exited since the scan
		}
		total += v
	}
	rss, err := statusField(b.daemon, "VmRSS:")
	if err != nil {
		return err
	}
	n := b.pods
	fmt.Printf("density-per-pod-pss-kib %d\n", (after-daemonBefore+total)/n)
	fmt.Printf("density-per-pod-processes-pss-kib %d\n", total/n)
	fmt.Printf("density-daemon-growth-per-pod-kib %d\n", (after-daemonBefore)/n)
	fmt.Printf("density-daemon-rss-kib %d\n", rss)
	fmt.Printf("density-per-pod-processes %.1f\n", float64(len(procs))/float64(n))
	return nil
}

// overhead lists the per-pod processes: those whose command line matches perPod, and their descendants except the
// containers' own processes.
func (b *bench) overhead() []int {
	children := map[int][]int{}
	var roots []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && pid != b.daemon && b.perPod.Match(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})) {
			roots = append(roots, pid)
		}
		if st, err := stat(pid); err == nil {
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	var out []int
	var walk func(int)
	walk = func(pid int) {
		if st, err := stat(pid); err != nil || st.comm == b.ctrComm || slices.Contains(out, pid) {
			return
		}
		out = append(out, pid)
		for _, c := range children[pid] {
			walk(c)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return out
}

// load runs the kubelet's calls for window and prints the CPU time spent and each call's p99.
func (b *bench) load(ctx context.Context, window time.Duration) error {
	var mu sync.Mutex
	lat := map[string][]time.Duration{}
	var errs []error
	call := func(name string, f func(context.Context) error) {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		t0 := time.Now()
		err := f(cctx)
		d := time.Since(t0)
		mu.Lock()
		defer mu.Unlock()
		lat[name] = append(lat[name], d)
		if err != nil && len(errs) < 10 {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	var wg sync.WaitGroup
	every := func(period time.Duration, f func()) {
		wg.Go(func() {
			t := time.NewTicker(period)
			defer t.Stop()
			deadline := time.After(window)
			for {
				f()
				select {
				case <-t.C:
				case <-deadline:
					return
				}
			}
		})
	}
	cpu0, all0 := b.cpu()
	t0 := time.Now()
	every(time.Second, func() {
		call("ListPodSandbox", func(c context.Context) error {
			_, err := b.rt.ListPodSandbox(c, &runtimeapi.ListPodSandboxRequest{})
			return err
		})
		call("ListContainers", func(c context.Context) error {
			_, err := b.rt.ListContainers(c, &runtimeapi.ListContainersRequest{})
			return err
		})
	})
	every(10*time.Second, func() {
		call("ListContainerStats", func(c context.Context) error {
			_, err := b.rt.ListContainerStats(c, &runtimeapi.ListContainerStatsRequest{})
			return err
		})
		call("ListPodSandboxStats", func(c context.Context) error {
			_, err := b.rt.ListPodSandboxStats(c, &runtimeapi.ListPodSandboxStatsRequest{})
			return err
		})
	})
	every(10*time.Second, func() {
		for i := range b.podIDs {
			call("PodSandboxStatus", func(c context.Context) error {
				_, err := b.rt.PodSandboxStatus(c, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: b.podIDs[i]})
				return err
			})
			call("ContainerStatus", func(c context.Context) error {
				_, err := b.rt.ContainerStatus(c, &runtimeapi.ContainerStatusRequest{ContainerId: b.ctrIDs[i]})
				return err
			})
		}
	})
	wg.Wait()
	elapsed := time.Since(t0)
	cpu1, all1 := b.cpu()
	if len(errs) > 0 {
		return fmt.Errorf("calls failed: %w", errors.Join(errs...))
	}
	tick := float64(100) // USER_HZ: 100 on every Linux ABI Go supports here
	fmt.Printf("load-window-s %.0f\n", elapsed.Seconds())
	fmt.Printf("load-daemon-cpu-ms %.0f\n", float64(cpu1-cpu0)*1000/tick)
	fmt.Printf("load-with-per-pod-and-helpers-cpu-ms %.0f\n", float64(all1-all0)*1000/tick)
	names := make([]string, 0, len(lat))
	for n := range lat {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d := lat[n]
		slices.Sort(d)
		fmt.Printf("p99-%s-ms %.2f\n", n, float64(d[(len(d)*99-1)/100].Microseconds())/1000)
	}
	return nil
}

// cpu returns the daemon's utime+stime in clock ticks, and the same summed with its per-pod processes (those alive
// at both ends of the window: pods do not come and go during it) and with the helpers all of them ran and reaped.
func (b *bench) cpu() (daemon, all int64) {
	if st, err := stat(b.daemon); err == nil {
		daemon = st.cpu
		all = st.cpu + st.children
	}
	for _, p := range b.overhead() {
		if st, err := stat(p); err == nil {
			all += st.cpu + st.children
		}
	}
	return daemon, all
}

type procStat struct {
	comm string
	ppid int
	cpu  int64 // utime+stime, clock ticks
	// cutime+cstime: the waited-for children's (runc and CNI helpers, which exit within the window)
	children int64
}

func stat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	st, err := parseStat(string(raw))
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return st, nil
}

// parseStat parses a /proc/PID/stat line (proc_pid_stat(5)).
func parseStat(s string) (procStat, error) {
	// comm is in parentheses and may hold spaces: the fields after it start past the last ')'.
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("no (comm)")
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("%d fields after comm", len(f))
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cut, _ := strconv.ParseInt(f[13], 10, 64)
	cst, _ := strconv.ParseInt(f[14], 10, 64)
	return procStat{comm: s[open+1 : end], ppid: ppid, cpu: ut + st, children: cut + cst}, nil
}

func pss(pid int) (int, error) {
	return field(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
}

func statusField(pid int, key string) (int, error) {
	return field(fmt.Sprintf("/proc/%d/status", pid), key)
}

// field returns the kB value of the line starting with key.
func field(path, key string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
