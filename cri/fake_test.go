package cri

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/oci/specgen"
	"github.com/berthcri/berth/sandbox"
)

// fakeHost is an in-memory host beneath cri/: the image store, the pods, their monitors and the containers. No
// process runs and nothing is mounted; the only files are the pod and bundle dirs cri/ itself writes into, and the
// exit files a "killed" container leaves for the exit watcher, as the real monitor does. Everything succeeds
// unless fail(op, err) was called: then op returns err until fail(op, nil).
type fakeHost struct {
	root string

	mu      sync.Mutex
	fails   map[string]error
	images  map[string]*fakeImage // by id
	pods    map[string]*fakePod   // live pods by id
	ctrs    map[string]*fakeCtr   // containers a monitor created, by id
	mounts  map[string]bool       // mounted targets
	nextPid int
	gates   map[string]chan struct{} // ops that wait, see hold
	gcLive  [][]string               // the live pods of each network GC
}

type fakeImage struct {
	img     image.Image
	users   []string
	removed bool // removed while in use: hidden, freed by the last release
}

type fakeCtr struct {
	pod     string
	bundle  string
	status  monitor.Status
	pid     int
	created time.Time
	started time.Time
}

// Operations that fail(op, err) can fail.
const (
	opPull          = "images.Pull"
	opAcquire       = "images.Acquire"
	opMount         = "images.MountRootfsMapped"
	opMountRO       = "images.MountReadOnly"
	opUnmount       = "images.Unmount"
	opPodCreate     = "sandboxes.Create"
	opPodStop       = "pod.Stop"
	opPodRemove     = "pod.Remove"
	opMonitorCreate = "monitor.Create"
	opMonitorStart  = "monitor.Start"
	opMonitorRemove = "monitor.Remove"
	opExec          = "containers.Exec"
	opUpdate        = "containers.Update"
	opDestroy       = "containers.Destroy"
	// Not in faultOps (fuzz seeds keep their meaning).
	opPodCreateHalf = "sandboxes.Create, rollback" // the pod's stages and its rollback fail: the half-made pod is returned
	opNetworkGC     = "network.GC"
	opImageStatus   = "images.Status"
	opImageRemove   = "images.Remove"
	opFsInfo        = "images.FsInfo"
	opReopenLog     = "monitor.ReopenLog"
)

// faultOps are the steps a fuzz input may fail, by bit: append only, so that the seeds keep their meaning.
var faultOps = []string{opAcquire, opMount, opMountRO, opUnmount, opPodCreate, opPodStop, opPodRemove,
	opMonitorCreate, opMonitorStart, opMonitorRemove, opExec, opUpdate, opDestroy}

// inject makes the steps of faultOps whose bits are set in mask fail with an Unavailable error, and only those.
func (h *fakeHost) inject(mask uint16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.fails)
	for i, op := range faultOps {
		if mask&(1<<i) != 0 {
			h.fails[op] = fmt.Errorf("injected fault in %s: %w", op, errdefs.ErrUnavailable)
		}
	}
}

func newFakeHost(t testing.TB) *fakeHost {
	return &fakeHost{root: t.TempDir(), fails: map[string]error{}, images: map[string]*fakeImage{},
		pods: map[string]*fakePod{}, ctrs: map[string]*fakeCtr{}, mounts: map[string]bool{}, nextPid: 1000,
		gates: map[string]chan struct{}{}}
}

// hold makes op (sandboxes.Create, monitor.Create) wait until the returned release is called: a slow call.
func (h *fakeHost) hold(op string) (release func()) {
	gate := make(chan struct{})
	h.mu.Lock()
	h.gates[op] = gate
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.gates, op)
			h.mu.Unlock()
			close(gate)
		})
	}
}

// pass waits at op's gate, if held; h.mu is not held.
func (h *fakeHost) pass(op string) {
	h.mu.Lock()
	gate := h.gates[op]
	h.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

// networkGC is the network's GC: it remembers which pods were live.
func (h *fakeHost) networkGC(_ context.Context, live []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gcLive = append(h.gcLive, slices.Clone(live))
	return h.failing(opNetworkGC)
}

func (h *fakeHost) fail(op string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		delete(h.fails, op)
		return
	}
	h.fails[op] = err
}

// failing is the error set for op; h.mu is held. A fakePanic set with fail panics instead, as a bug beneath cri/
// would.
func (h *fakeHost) failing(op string) error {
	if p, ok := h.fails[op].(fakePanic); ok {
		panic(string(p))
	}
	return h.fails[op]
}

// fakePanic, given to fail, makes the step panic with its text.
type fakePanic string

func (p fakePanic) Error() string { return string(p) }

// newTestRuntimeServer is a runtime service over a fresh fake host, its records in a temp dir, and its streaming
// server on loopback (Exec, Attach and PortForward hand out URLs).
func newTestRuntimeServer(t testing.TB) (*RuntimeServer, *fakeHost) {
	t.Helper()
	h := newFakeHost(t)
	return startTestRuntimeServer(t, h), h
}

// startTestRuntimeServer starts a runtime service over h and its records, and recovers: called again on the same
// host, it is a berthd restart.
func startTestRuntimeServer(t testing.TB, h *fakeHost) *RuntimeServer {
	t.Helper()
	s, err := NewRuntimeServer(RuntimeOptions{
		CgroupDriver:  "cgroupfs",
		NetworkStatus: func() error { return nil },
		RootDir:       filepath.Join(h.root, "root"),
		Images:        fakeImages{h},
		Sandboxes:     fakeSandboxes{h},
		Containers:    fakeContainers{h},
		Host: specgen.Host{BoundingCaps: []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"},
			OOMScoreAdjMin: -1000, FS: fakeHostFS{}},
		NetworkGC: h.networkGC,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, stop, err := s.ServeStreams(StreamOptions{Address: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return s
}

// newTestImageServer is an image service over a fresh fake image store.
func newTestImageServer(t testing.TB) (*ImageServer, *fakeHost) {
	h := newFakeHost(t)
	return NewImageServer(fakeImages{h}), h
}

// fakeImages is the image store: Images and ImageStore.
type fakeImages struct{ h *fakeHost }

// fakeImageID is the id the fake gives the image ref pulls: a digest of the ref.
func fakeImageID(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (f fakeImages) Pull(_ context.Context, ref string, _ *image.Auth) (image.Image, error) {
	h := f.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing(opPull); err != nil {
		return image.Image{}, err
	}
	if ref == "" || strings.ContainsAny(ref, " \t\n") {
		return image.Image{}, errdefs.InvalidArgument("image", "bad reference %q", ref)
	}
	id := fakeImageID(ref)
	if fi, ok := h.images[id]; ok && !fi.removed {
		return fi.img, nil
	}
	img := image.Image{ID: id, RepoTags: []string{ref}, Size: 1 << 20,
		Config: ocispec.Image{Config: ocispec.ImageConfig{Cmd: []string{"sleep", "inf"}, Env: []string{"PATH=/bin"}}}}
	h.images[id] = &fakeImage{img: img}
	return img, nil
}

// find resolves a ref by id, id without "sha256:", or tag; h.mu is held.
func (f fakeImages) find(ref string) (*fakeImage, error) {
	for _, id := range []string{ref, "sha256:" + ref} {
		if fi, ok := f.h.images[id]; ok && !fi.removed {
			return fi, nil
		}
	}
	for _, fi := range f.h.images {
		if !fi.removed && slices.Contains(fi.img.RepoTags, ref) {
			return fi, nil
		}
	}
	return nil, errdefs.NotFound("image", ref)
}

func (f fakeImages) Status(ref string) (image.Image, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opImageStatus); err != nil {
		return image.Image{}, err
	}
	fi, err := f.find(ref)
	if err != nil {
		return image.Image{}, err
	}
	return fi.img, nil
}

func (f fakeImages) List() []image.Image {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	var out []image.Image
	for _, fi := range f.h.images {
		if !fi.removed {
			out = append(out, fi.img)
		}
	}
	slices.SortFunc(out, func(a, b image.Image) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (f fakeImages) Remove(ref string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opImageRemove); err != nil {
		return err
	}
	fi, err := f.find(ref)
	if err != nil {
		return err
	}
	if len(fi.users) > 0 {
		fi.removed = true
		return nil
	}
	delete(f.h.images, fi.img.ID)
	return nil
}

func (f fakeImages) FsInfo(context.Context) (image.FsUsage, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opFsInfo); err != nil {
		return image.FsUsage{}, err
	}
	return image.FsUsage{Mountpoint: f.h.root, Timestamp: time.Now()}, nil
}

func (fakeImages) LowerDirs(image.Image) []string { return nil }

func (f fakeImages) Acquire(ref, user string) (image.Image, error) {
	h := f.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing(opAcquire); err != nil {
		return image.Image{}, err
	}
	if user == "" {
		return image.Image{}, errdefs.InvalidArgument("user", "empty")
	}
	fi, err := f.find(ref)
	if err != nil {
		return image.Image{}, err
	}
	if !slices.Contains(fi.users, user) {
		fi.users = append(fi.users, user)
	}
	return fi.img, nil
}

func (f fakeImages) Release(id, user string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	fi, ok := f.h.images[id]
	if !ok {
		return nil
	}
	fi.users = slices.DeleteFunc(fi.users, func(u string) bool { return u == user })
	if fi.removed && len(fi.users) == 0 {
		delete(f.h.images, id)
	}
	return nil
}

func (f fakeImages) KeepUsers(known func(user string) bool) ([]string, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	var dropped []string
	for id, fi := range f.h.images {
		fi.users = slices.DeleteFunc(fi.users, func(u string) bool {
			if known(u) {
				return false
			}
			dropped = append(dropped, u)
			return true
		})
		if fi.removed && len(fi.users) == 0 {
			delete(f.h.images, id)
		}
	}
	return dropped, nil
}

func (f fakeImages) MountRootfsMapped(_ image.Image, upper, work, target string, _ *image.IDMap) error {
	return f.mount(opMount, target, upper, work)
}

func (f fakeImages) MountReadOnly(_ image.Image, _, target string, _ *image.IDMap) error {
	return f.mount(opMountRO, target)
}

// mount makes the dirs a mount would and remembers target as mounted.
func (f fakeImages) mount(op, target string, dirs ...string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(op); err != nil {
		return err
	}
	for _, d := range append(dirs, target) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	f.h.mounts[target] = true
	return nil
}

func (f fakeImages) Unmount(target string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opUnmount); err != nil {
		return err
	}
	delete(f.h.mounts, target)
	return nil
}

// fakeSandboxes makes fakePods under <root>/state/pods.
type fakeSandboxes struct{ h *fakeHost }

func (f fakeSandboxes) Create(_ context.Context, cfg sandbox.Config) (PodRuntime, error) {
	h := f.h
	h.pass(opPodCreate)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing(opPodCreate); err != nil {
		return nil, err
	}
	half := h.failing(opPodCreateHalf)
	p := &fakePod{h: h, cfg: cfg, dir: filepath.Join(h.root, "state", "pods", cfg.ID)}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	p.mon = &fakeMonitor{h: h, pod: cfg.ID, closed: make(chan struct{})}
	if cfg.Namespaces.PID == sandbox.NamespacePod {
		h.nextPid++
		p.mon.pausePid = h.nextPid
	}
	h.pods[cfg.ID] = p
	if half != nil {
		return p, half
	}
	return p, nil
}

func (f fakeSandboxes) Recover(context.Context) ([]RecoveredPod, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	var out []RecoveredPod
	for _, p := range f.h.pods {
		out = append(out, RecoveredPod{Pod: p})
	}
	return out, nil
}

func (fakeSandboxes) UserNamespaces() error { return nil }

type fakePod struct {
	h       *fakeHost
	cfg     sandbox.Config
	dir     string
	mon     *fakeMonitor
	stopped bool
}

func (p *fakePod) ID() string             { return p.cfg.ID }
func (p *fakePod) Config() sandbox.Config { return p.cfg }
func (p *fakePod) Dir() string            { return p.dir }
func (p *fakePod) Monitor() Monitor       { return p.mon }
func (p *fakePod) Network() *sandbox.NetworkStatus {
	return &sandbox.NetworkStatus{IPs: []netip.Addr{netip.MustParseAddr("10.88.0.2")}}
}

// The namespace paths follow sandbox.Pod's: "" for the host's.
func (p *fakePod) NetNSPath() string {
	return p.nsPath(p.cfg.Namespaces.Network != sandbox.NamespaceNode, "net")
}
func (p *fakePod) IPCNSPath() string {
	return p.nsPath(p.cfg.Namespaces.IPC != sandbox.NamespaceNode, "ipc")
}
func (p *fakePod) UTSNSPath() string {
	return p.nsPath(p.cfg.Namespaces.Network != sandbox.NamespaceNode, "uts")
}
func (p *fakePod) UserNSPath() string {
	return p.nsPath(p.cfg.UserNS != nil, "user")
}

func (p *fakePod) PIDNSPath() string {
	if p.mon.PausePid() == 0 {
		return ""
	}
	return fmt.Sprintf("/proc/%d/ns/pid", p.mon.PausePid())
}

func (p *fakePod) nsPath(own bool, name string) string {
	if !own {
		return ""
	}
	return filepath.Join(p.dir, "ns", name)
}

func (p *fakePod) HostnamePath() string { return filepath.Join(p.dir, "hostname") }
func (p *fakePod) HostsPath() string    { return filepath.Join(p.dir, "hosts") }
func (p *fakePod) ResolvPath() string   { return filepath.Join(p.dir, "resolv.conf") }
func (p *fakePod) ShmPath() string {
	return p.nsPath(p.cfg.Namespaces.IPC != sandbox.NamespaceNode, "../shm")
}
func (p *fakePod) CgroupParent() string { return "/berth/" + p.cfg.ID }
func (p *fakePod) Systemd() bool        { return false }

func (p *fakePod) CgroupStats() (*ctr.Stats, error) { return &ctr.Stats{Timestamp: time.Now()}, nil }

func (p *fakePod) NetworkStats() ([]sandbox.InterfaceStats, error) {
	return []sandbox.InterfaceStats{{Name: "lo"}, {Name: "eth0", RxBytes: 100, TxBytes: 200}}, nil
}

func (p *fakePod) DialPort(context.Context, int32) (net.Conn, error) {
	return nil, fmt.Errorf("fake pods serve no ports: %w", errdefs.ErrUnavailable)
}

// CheckPause: a fake pod's pause never dies.
func (p *fakePod) CheckPause() error { return nil }

func (p *fakePod) Stop(context.Context) error {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	if err := p.h.failing(opPodStop); err != nil {
		return err
	}
	p.stopped = true
	return nil
}

func (p *fakePod) Remove(context.Context) error {
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	if err := p.h.failing(opPodRemove); err != nil {
		return err
	}
	for id, c := range p.h.ctrs {
		if c.pod == p.cfg.ID {
			delete(p.h.ctrs, id)
		}
	}
	delete(p.h.pods, p.cfg.ID)
	p.mon.close.Do(func() { close(p.mon.closed) })
	return os.RemoveAll(p.dir)
}

// fakeMonitor creates and starts containers as records in the host.
type fakeMonitor struct {
	h        *fakeHost
	pod      string
	pausePid int           // set when the pod shares a PID namespace
	closed   chan struct{} // closed when the pod is removed, as sandbox closes a real monitor's handle
	close    sync.Once
}

func (m *fakeMonitor) PausePid() int { return m.pausePid }

// Wait and WaitPause: a fake monitor and its pause never die, so a wait ends only with ctx or the pod's removal.
func (m *fakeMonitor) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-m.closed:
		return os.ErrClosed
	}
}
func (m *fakeMonitor) WaitPause(ctx context.Context) error { return m.Wait(ctx) }
func (m *fakeMonitor) Stopping() bool                      { return false }

func (m *fakeMonitor) Create(_ context.Context, r monitor.CreateRequest) error {
	h := m.h
	h.pass(opMonitorCreate)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.failing(opMonitorCreate); err != nil {
		return err
	}
	if _, ok := h.ctrs[r.ID]; ok {
		return errdefs.AlreadyExists("container", r.ID)
	}
	if _, err := os.Stat(filepath.Join(r.Bundle, "config.json")); err != nil {
		return errdefs.InvalidArgument("bundle", "%v", err)
	}
	h.nextPid++
	h.ctrs[r.ID] = &fakeCtr{pod: m.pod, bundle: r.Bundle, status: monitor.StatusCreated, pid: h.nextPid, created: time.Now()}
	return nil
}

// ctr is the pod's container id; h.mu is held.
func (m *fakeMonitor) ctr(id string) (*fakeCtr, error) {
	c, ok := m.h.ctrs[id]
	if !ok || c.pod != m.pod {
		return nil, errdefs.NotFound("container", id)
	}
	return c, nil
}

func (m *fakeMonitor) Start(_ context.Context, id string) error {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	if err := m.h.failing(opMonitorStart); err != nil {
		return err
	}
	c, err := m.ctr(id)
	if err != nil {
		return err
	}
	if c.status != monitor.StatusCreated {
		return errdefs.FailedPrecondition("container %s is %s", id, c.status)
	}
	c.status, c.started = monitor.StatusRunning, time.Now()
	return nil
}

func (m *fakeMonitor) State(context.Context) ([]monitor.ContainerState, error) {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	var out []monitor.ContainerState
	for id, c := range m.h.ctrs {
		if c.pod == m.pod {
			out = append(out, monitor.ContainerState{ID: id, Status: c.status, Pid: c.pid, CreatedAt: c.created, StartedAt: c.started})
		}
	}
	return out, nil
}

func (m *fakeMonitor) Remove(_ context.Context, id string) error {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	if err := m.h.failing(opMonitorRemove); err != nil {
		return err
	}
	if _, err := m.ctr(id); err != nil {
		return err
	}
	delete(m.h.ctrs, id)
	return nil
}

func (m *fakeMonitor) ReopenLog(_ context.Context, id string) error {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	if err := m.h.failing(opReopenLog); err != nil {
		return err
	}
	_, err := m.ctr(id)
	return err
}

func (m *fakeMonitor) Attach(_ context.Context, id string, _ io.Reader, _, _ io.Writer, _ <-chan monitor.Size) error {
	m.h.mu.Lock()
	_, err := m.ctr(id)
	m.h.mu.Unlock()
	return err
}

// fakeContainers acts on the containers the fake monitors created.
type fakeContainers struct{ h *fakeHost }

func (f fakeContainers) Load(id string) (Container, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if _, ok := f.h.ctrs[id]; !ok {
		return nil, errdefs.NotFound("container", id)
	}
	return fakeContainer{h: f.h, id: id}, nil
}

// running is the container id when it runs; h.mu is held.
func (f fakeContainers) running(id string) (*fakeCtr, error) {
	c, ok := f.h.ctrs[id]
	if !ok {
		return nil, errdefs.NotFound("container", id)
	}
	if c.status != monitor.StatusRunning {
		return nil, errdefs.FailedPrecondition("container %s is %s", id, c.status)
	}
	return c, nil
}

func (f fakeContainers) Exec(_ context.Context, id string, p ctr.ExecProcess) (ctr.ExitStatus, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opExec); err != nil {
		return ctr.ExitStatus{}, err
	}
	if len(p.Args) == 0 {
		return ctr.ExitStatus{}, errdefs.InvalidArgument("args", "empty")
	}
	if _, err := f.running(id); err != nil {
		return ctr.ExitStatus{}, err
	}
	return ctr.ExitStatus{}, nil
}

func (f fakeContainers) Update(id string, _ *specs.LinuxResources) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opUpdate); err != nil {
		return err
	}
	_, err := f.running(id)
	return err
}

func (f fakeContainers) Destroy(_ context.Context, id string) error {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if err := f.h.failing(opDestroy); err != nil {
		return err
	}
	delete(f.h.ctrs, id)
	return nil
}

// fakeContainer is a loaded container: a signal ends it and leaves its exit file, as the monitor would.
type fakeContainer struct {
	h  *fakeHost
	id string
}

func (c fakeContainer) Pid() int {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	if fc, ok := c.h.ctrs[c.id]; ok && fc.status != monitor.StatusExited {
		return fc.pid
	}
	return 0
}

func (c fakeContainer) Signal(sig syscall.Signal, _ bool) error {
	c.h.mu.Lock()
	defer c.h.mu.Unlock()
	fc, ok := c.h.ctrs[c.id]
	if !ok || fc.status == monitor.StatusExited {
		return errdefs.NotFound("running container", c.id)
	}
	fc.status, fc.pid = monitor.StatusExited, 0
	e := monitor.Exit{ExitCode: 128 + int(sig), Signal: unix.SignalName(sig),
		StartedAt: fc.started, FinishedAt: time.Now()}
	return writeExitFile(fc.bundle, e)
}

// writeExitFile writes exit.json by rename, as the monitor does, so the watcher never reads half of it.
func writeExitFile(bundle string, e monitor.Exit) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(bundle, ".exit.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(bundle, monitor.ExitFileName))
}

func (c fakeContainer) Stats() (*ctr.Stats, error) { return &ctr.Stats{Timestamp: time.Now()}, nil }

func (c fakeContainer) Processes() ([]int, error) { return nil, nil }

// fakeHostFS is the host's paths as spec generation sees them: every absolute path exists and is itself, on "/"
// (private), except below /missing; /dev/null and /dev/fuse are its devices; /profiles/<name> are seccomp profiles
// that allow everything.
type fakeHostFS struct{}

func (fakeHostFS) EvalSymlinks(p string) (string, error) {
	if !filepath.IsAbs(p) || strings.HasPrefix(p, "/missing") {
		return "", &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return filepath.Clean(p), nil
}

// AppArmorLoaded: the kernel has the profiles named loaded-*.
func (fakeHostFS) AppArmorLoaded(name string) (bool, error) {
	return strings.HasPrefix(name, "loaded-"), nil
}

func (fakeHostFS) MountPoint(string) (specgen.MountPoint, error) {
	return specgen.MountPoint{Path: "/"}, nil
}

var fakeDevices = []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, {Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229}}

func (fakeHostFS) Devices(hostPath, containerPath string) ([]specs.LinuxDevice, error) {
	if hostPath == "/dev" {
		return slices.Clone(fakeDevices), nil
	}
	for _, d := range fakeDevices {
		if d.Path == hostPath {
			if containerPath != "" {
				d.Path = containerPath
			}
			return []specs.LinuxDevice{d}, nil
		}
	}
	return nil, &fs.PathError{Op: "stat", Path: hostPath, Err: fs.ErrNotExist}
}

func (fakeHostFS) ReadFile(p string) ([]byte, error) {
	if filepath.Dir(p) == "/profiles" {
		return []byte(`{"defaultAction": "SCMP_ACT_ALLOW"}`), nil
	}
	return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
}
