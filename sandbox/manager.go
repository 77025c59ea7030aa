// Package sandbox runs pods on the host: the pod runtime dir, the pod's namespaces pinned by bind mounts,
// its cgroup, hostname, hosts, resolv.conf and /dev/shm, namespaced sysctls, the network hook and the pod
// monitor. It knows nothing of the CRI; cri/ maps the CRI's types to Config and keeps the records.
//
// A pod is made in stages (see stages). Each stage has an undo that is idempotent and works whatever the
// stage got done, also after a crash: a failed Create undoes its stages in reverse; Remove undoes all of
// them on a pod in any state; Recover finds pods a crash left half-made so the caller can Remove them.
//
// Recovery assumes: the state dir holds only what this package wrote; pod.json is written before anything
// that needs cleaning up, and "ready" after everything; nothing else creates or removes pods meanwhile.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/privdir"
)

// Options configure a Manager.
type Options struct {
	StateDir       string // pods live in <StateDir>/pods/<id>
	CgroupDriver   string // "cgroupfs" (the default) or "systemd"
	MinOOMScoreAdj int    // floor for the monitor's oom_score_adj
	Monitors       Monitors
	Network        Network       // nil: pods only get loopback
	Logger         *slog.Logger  // nil: slog.Default()
	CleanupTimeout time.Duration // bound of rollback, Stop and Remove; 0: one minute
	// UsernsGID is the group that may traverse the pods dir (0710) on the way to user-namespaced pods; 0 keeps it
	// 0700 and user namespaces off.
	UsernsGID int
}

// Manager creates, stops, removes and recovers pods.
type Manager struct {
	podsDir        string
	cgroupsDir     string // marks of the cgroup parents berth made, see createPodCgroup
	sharedCgroupMu sync.Mutex
	systemd        bool
	oomScoreAdj    int
	monitors       Monitors
	network        Network
	log            *slog.Logger
	cleanupTimeout time.Duration
	usernsGID      int // privdir.Private for none
	// afterStage, when set (by tests), runs after each stage of Create and fails it by returning an error.
	afterStage func(stage string) error
}

// monitorOOMScoreAdj is what the kubelet gives a pod's infra container: killed after the workloads.
const monitorOOMScoreAdj = -998

// New returns a Manager and prepares <StateDir>/pods.
func New(o Options) (*Manager, error) {
	if o.StateDir == "" {
		return nil, errdefs.InvalidArgument("state_dir", "must be set")
	}
	if o.Monitors == nil {
		return nil, errdefs.InvalidArgument("sandbox options", "no monitor starter")
	}
	m := &Manager{
		podsDir:        filepath.Join(o.StateDir, "pods"),
		cgroupsDir:     filepath.Join(o.StateDir, "cgroups"),
		oomScoreAdj:    max(monitorOOMScoreAdj, o.MinOOMScoreAdj),
		monitors:       o.Monitors,
		network:        o.Network,
		log:            o.Logger,
		cleanupTimeout: o.CleanupTimeout,
		usernsGID:      privdir.Private,
	}
	if o.UsernsGID > 0 {
		m.usernsGID = o.UsernsGID
	}
	switch o.CgroupDriver {
	case "", "cgroupfs":
	case "systemd":
		m.systemd = true
	default:
		return nil, errdefs.InvalidArgument("cgroup_driver", "%q: want cgroupfs or systemd", o.CgroupDriver)
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.cleanupTimeout == 0 {
		m.cleanupTimeout = time.Minute
	}
	if err := privdir.Make(m.podsDir, m.usernsGID); err != nil {
		return nil, err
	}
	if err := privdir.Make(m.cgroupsDir, privdir.Private); err != nil {
		return nil, err
	}
	if err := makeShared(m.podsDir); err != nil {
		return nil, err
	}
	return m, nil
}

// stage is one step of making a pod. undo must be idempotent and must work whether do ran fully, partly or
// not at all, in this process or an earlier one; nil when the pod dir's removal undoes it.
type stage struct {
	name string
	do   func(ctx context.Context, p *Pod) error
	undo func(ctx context.Context, p *Pod) error
}

func (m *Manager) stages(hostname string) []stage {
	return []stage{
		{"record", func(_ context.Context, p *Pod) error { return p.writeRecord() },
			func(_ context.Context, p *Pod) error { return removeTree(p.dir) }},
		{"namespaces", func(_ context.Context, p *Pod) error {
			if p.cfg.UserNS != nil {
				return pinPauseNamespaces(p)
			}
			return createNamespaces(p.path(nsDir), kindsOf(p))
		},
			func(_ context.Context, p *Pod) error { return removeNamespaces(p.path(nsDir)) }},
		{"configure namespaces", func(_ context.Context, p *Pod) error {
			return configureNamespaces(p.nsPaths(), hostname, p.cfg.Sysctls)
		}, nil},
		{"cgroup", func(_ context.Context, p *Pod) error { return m.createPodCgroup(p) }, m.removePodCgroup},
		// The network's setup (the CNI ADD, most of a pod's start) runs while the monitor and its pause
		// process start: neither needs the other. "network ready" waits for it; the hosts file needs its IPs.
		{"network", m.startNetwork, m.teardownNetwork},
		{"shm", func(_ context.Context, p *Pod) error {
			if p.ShmPath() == "" {
				return nil
			}
			return mountShm(p.ShmPath())
		}, func(_ context.Context, p *Pod) error { return unmountAll(p.path(shmDir)) }},
		{"monitor", m.startMonitor, m.stopMonitor},
		{"network ready", func(_ context.Context, p *Pod) error { return p.awaitNetwork() }, nil},
		{"files", func(_ context.Context, p *Pod) error { return writeFiles(p, hostname) }, nil},
		{"ready", func(_ context.Context, p *Pod) error { return os.WriteFile(p.path(readyFile), nil, 0o644) }, nil},
	}
}

func kindsOf(p *Pod) []nsKind {
	var kinds []nsKind
	for _, k := range nsKinds {
		if p.cfg.ownsNamespace(k) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// Create makes a pod and returns once it is ready. On failure every stage done is undone, under a context
// of its own (the request's may have expired). If that fails too, Create returns the half-made pod with the
// error, for the caller to Remove later (a restart's Recover finds it as well).
func (m *Manager) Create(ctx context.Context, cfg Config) (*Pod, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hostname := cfg.Hostname
	if hostname == "" {
		var err error
		if hostname, err = os.Hostname(); err != nil {
			return nil, err
		}
	}
	cgroup, err := podCgroup(m.systemd, cfg.CgroupParent, cfg.ID)
	if err != nil {
		return nil, err
	}
	if cfg.LogDir != "" {
		if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
			return nil, fmt.Errorf("pod log dir: %w", err)
		}
	}
	p := &Pod{cfg: cfg, dir: filepath.Join(m.podsDir, cfg.ID), cgroup: cgroup, systemd: m.systemd}
	if err := privdir.Mkdir(p.dir, p.dirGID()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, errdefs.AlreadyExists("pod dir", p.dir)
		}
		return nil, err
	}
	start := time.Now()
	stages := m.podStages(p, hostname)
	for i, s := range stages {
		err := m.runStage(ctx, s, p)
		if err != nil {
			err = fmt.Errorf("create pod %s: %s: %w", cfg.ID, s.name, err)
			if rbErr := m.undo(ctx, p, stages[:i+1]); rbErr != nil {
				m.log.Error("pod rollback failed, Remove must finish it", "pod", cfg.ID, "err", rbErr)
				return p, errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
			}
			return nil, err
		}
	}
	m.log.Debug("pod created", "pod", cfg.ID, "took", time.Since(start))
	return p, nil
}

// runStage does stage s of p. A panic in it is an error wrapping errdefs.ErrInternal, so that Create undoes the
// stages done like after any failed stage, instead of the panic unwinding past them.
func (m *Manager) runStage(ctx context.Context, s stage, p *Pod) (err error) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in a pod stage", "pod", p.cfg.ID, "stage", s.name, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%v: %w", r, errdefs.ErrInternal)
		}
	}()
	start := time.Now()
	if err := s.do(ctx, p); err != nil {
		return err
	}
	// per-stage times, for finding where a pod's start goes (hack/bench/profile.sh)
	m.log.Debug("pod stage done", "pod", p.cfg.ID, "stage", s.name, "took", time.Since(start))
	if m.afterStage != nil {
		return m.afterStage(s.name)
	}
	return nil
}

// undo runs the undos of stages in reverse order under a cleanup context. It stops at the first failure so
// that what later undos need (the netns for a network teardown) stays for the retry.
func (m *Manager) undo(ctx context.Context, p *Pod, stages []stage) error {
	ctx, cancel := m.cleanupContext(ctx)
	defer cancel()
	for i := len(stages) - 1; i >= 0; i-- {
		if stages[i].undo == nil {
			continue
		}
		start := time.Now()
		if err := stages[i].undo(ctx, p); err != nil {
			return fmt.Errorf("undo %s: %w", stages[i].name, err)
		}
		m.log.Debug("pod stage undone", "pod", p.ID(), "stage", stages[i].name, "took", time.Since(start))
	}
	return nil
}

func (m *Manager) cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), m.cleanupTimeout)
}

// Stop releases the pod's network (its containers are stopped already). The pod dir and the monitor stay.
// Idempotent; after a failure the next Stop (or Remove) tries again.
func (m *Manager) Stop(ctx context.Context, p *Pod) error {
	ctx, cancel := m.cleanupContext(ctx)
	defer cancel()
	start := time.Now()
	if err := m.teardownNetwork(ctx, p); err != nil {
		return err
	}
	m.log.Debug("pod network released", "pod", p.ID(), "took", time.Since(start))
	return nil
}

// Remove shuts the monitor down (killing what is left in its cgroup), releases the network, removes the pod
// cgroup if berth made it, unmounts the namespaces and shm and removes the pod dir. It works on pods in any
// state, half-made ones included, and is idempotent.
func (m *Manager) Remove(ctx context.Context, p *Pod) error {
	if err := m.undo(ctx, p, m.podStages(p, "")); err != nil {
		return fmt.Errorf("remove pod %s: %w", p.ID(), err)
	}
	return nil
}

// RecoveredPod is a pod found in the state dir by Recover.
type RecoveredPod struct {
	// Pod is never nil. When its record is unreadable only its ID and Dir are right; Remove still cleans it.
	Pod *Pod
	// Err is nil when the pod was fully made and its monitor answered; else why not (half-made, record
	// unreadable, monitor gone). Such pods are for the caller to Remove or report as not ready.
	Err error
}

// Recover scans the state dir after a restart: it loads every pod and reconnects its monitor.
func (m *Manager) Recover(ctx context.Context) ([]RecoveredPod, error) {
	entries, err := os.ReadDir(m.podsDir)
	if err != nil {
		return nil, err
	}
	var pods []RecoveredPod
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(m.podsDir, e.Name())
		p, err := loadPod(dir)
		switch {
		case err != nil:
			p = &Pod{cfg: Config{ID: e.Name()}, dir: dir, systemd: m.systemd}
			err = fmt.Errorf("pod %s: %w", e.Name(), err)
		case !exists(p.path(readyFile)):
			err = fmt.Errorf("pod %s: creation did not finish", p.ID())
		default:
			if p.monitor, err = m.monitors.Connect(dir); err != nil {
				err = fmt.Errorf("pod %s: monitor: %w", p.ID(), err)
			} else if err = pinPIDNamespace(p); err != nil {
				err = fmt.Errorf("pod %s: %w", p.ID(), err)
			}
		}
		// An older berth made pod dirs 0711.
		if terr := privdir.Make(dir, p.dirGID()); terr != nil {
			m.log.Warn("pod dir left as it was", "pod", p.ID(), "err", terr)
		}
		pods = append(pods, RecoveredPod{Pod: p, Err: err})
	}
	return pods, nil
}

// pinPIDNamespace pins the PID namespace of a pod that a berthd older than its pinning made.
func pinPIDNamespace(p *Pod) error {
	if p.cfg.Namespaces.PID != NamespacePod || exists(p.PIDNSPath()) {
		return nil
	}
	return pinPauseNamespace(p, nsPID)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// startNetwork records the attempt and starts the network's setup; p.awaitNetwork waits for its end.
func (m *Manager) startNetwork(ctx context.Context, p *Pod) error {
	if m.network == nil || p.NetNSPath() == "" {
		return nil
	}
	if err := os.WriteFile(p.path(networkFile), nil, 0o644); err != nil {
		return err
	}
	done := make(chan struct{})
	p.networkDone = done
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				m.log.Error("panic in the network setup", "pod", p.ID(), "panic", r, "stack", string(debug.Stack()))
				p.networkErr = fmt.Errorf("network setup: %v: %w", r, errdefs.ErrInternal)
			}
		}()
		status, err := m.network.Setup(ctx, p)
		if err != nil {
			p.networkErr = fmt.Errorf("network setup: %w", err)
			return
		}
		p.network = status
	}()
	return nil
}

// awaitNetwork waits for the setup startNetwork started, if any, and returns its error.
func (p *Pod) awaitNetwork() error {
	if p.networkDone == nil {
		return nil
	}
	<-p.networkDone
	return p.networkErr
}

func (m *Manager) teardownNetwork(ctx context.Context, p *Pod) error {
	// A setup still running (Create failed in a stage after the network's) ends before its teardown. It is
	// bounded by the request's context, which Setup's plugin execs are killed with.
	_ = p.awaitNetwork()
	if !exists(p.path(networkFile)) {
		return nil
	}
	if m.network == nil {
		return fmt.Errorf("pod %s had its network set up, but no network is configured to tear it down", p.ID())
	}
	if err := m.network.Teardown(ctx, p); err != nil {
		return fmt.Errorf("network teardown: %w", err)
	}
	return os.Remove(p.path(networkFile))
}

func (m *Manager) startMonitor(ctx context.Context, p *Pod) error {
	mon, err := m.monitors.Start(ctx, MonitorOptions{
		PodID:       p.ID(),
		Dir:         p.dir,
		CgroupPath:  p.cgroup,
		Systemd:     p.systemd,
		NeedPause:   p.cfg.Namespaces.PID == NamespacePod || p.cfg.UserNS != nil,
		UserNS:      p.cfg.UserNS,
		Unshare:     p.pauseUnshare(),
		OOMScoreAdj: m.oomScoreAdj,
		Handler:     p.cfg.RuntimeHandler,
	})
	if err != nil {
		return err
	}
	p.monitor = mon
	if p.cfg.Namespaces.PID == NamespacePod {
		return pinPauseNamespace(p, nsPID)
	}
	return nil
}

// monitorGrace is how long a monitor that acknowledged Shutdown gets to exit before it is killed.
const monitorGrace = 2 * time.Second

// stopMonitor shuts the monitor down, kills whatever is left in its leaf cgroup (all of it when the monitor
// could not be reached) and removes that cgroup.
func (m *Manager) stopMonitor(ctx context.Context, p *Pod) error {
	mon := p.monitor
	if mon == nil {
		var err error
		if mon, err = m.monitors.Connect(p.dir); err != nil {
			m.log.Debug("pod monitor unreachable, killing its cgroup", "pod", p.ID(), "err", err)
		}
	}
	if mon != nil {
		defer mon.Close() // what watches the monitor learns that it is done with
	}
	grace := time.Duration(0)
	if mon != nil {
		if err := mon.Shutdown(ctx); err != nil {
			m.log.Warn("pod monitor shutdown failed, killing its cgroup", "pod", p.ID(), "err", err)
		} else {
			grace = monitorGrace
		}
	}
	if p.cgroup == "" { // a pod whose record was lost: no name to find its cgroup by
		return nil
	}
	cg, err := newCgroupManager(p.systemd, p.monitorCgroup())
	if err != nil {
		return err
	}
	if err := killCgroup(ctx, cg, grace); err != nil {
		return fmt.Errorf("monitor cgroup: %w", err)
	}
	if err := cg.Destroy(); err != nil {
		return fmt.Errorf("remove monitor cgroup: %w", err)
	}
	return nil
}
