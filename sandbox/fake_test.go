package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeMonitors starts a "monitor" that is a sleep process in the monitor's leaf cgroup, plus a second one in a new
// PID namespace as the pause process when asked. Shutdown kills them, unless shutdownErr is set.
type fakeMonitors struct {
	t           *testing.T
	mu          sync.Mutex
	live        map[string]*fakeMonitor // by pod dir
	all         []*fakeMonitor
	startErr    error
	shutdownErr error
	opts        []MonitorOptions
	onStart     func() // called by Start, when set
}

type fakeMonitor struct {
	fm    *fakeMonitors
	dir   string
	cmds  []*exec.Cmd
	done  []chan struct{}
	pause int
}

func newFakeMonitors(t *testing.T) *fakeMonitors {
	f := &fakeMonitors{t: t, live: map[string]*fakeMonitor{}}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, m := range f.all {
			m.kill()
		}
	})
	return f
}

func (f *fakeMonitors) Start(_ context.Context, o MonitorOptions) (Monitor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts = append(f.opts, o)
	if f.onStart != nil {
		f.onStart()
	}
	if f.startErr != nil {
		return nil, f.startErr
	}
	cg, err := newCgroupManager(o.Systemd, childCgroup(o.Systemd, o.CgroupPath, monitorScopePrefix, o.PodID))
	if err != nil {
		return nil, err
	}
	m := &fakeMonitor{fm: f, dir: o.Dir}
	f.all = append(f.all, m)
	if err := m.spawn(&syscall.SysProcAttr{}, cg.Apply); err != nil {
		return nil, err
	}
	if o.NeedPause {
		attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
		if u := o.UserNS; u != nil {
			// Like the pause process of oci/monitor: a new user namespace owning the pod's namespaces.
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			for _, name := range o.Unshare {
				attr.Cloneflags |= uintptr(nsKind(name).cloneFlag())
			}
			attr.UidMappings, attr.GidMappings = sysMappings(u.UIDs), sysMappings(u.GIDs)
			attr.GidMappingsEnableSetgroups = true
		}
		if err := m.spawn(attr, cg.Apply); err != nil {
			return nil, err
		}
		m.pause = m.cmds[1].Process.Pid
	}
	f.live[o.Dir] = m
	return m, nil
}

func (m *fakeMonitor) spawn(attr *syscall.SysProcAttr, join func(pid int) error) error {
	cmd := exec.Command("sleep", "1000")
	attr.Setsid = true
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	m.cmds = append(m.cmds, cmd)
	m.done = append(m.done, done)
	return join(cmd.Process.Pid)
}

func (f *fakeMonitors) Connect(dir string) (Monitor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.live[dir]; ok {
		return m, nil
	}
	return nil, errors.New("fake monitor: connection refused")
}

func (m *fakeMonitor) PausePid() int { return m.pause }

func (m *fakeMonitor) PauseNamespace(kind string) (*os.File, error) {
	return os.Open(fmt.Sprintf("/proc/%d/ns/%s", m.pause, kind))
}

func (m *fakeMonitor) CheckPause() error { return nil }

func (m *fakeMonitor) Close() error { return nil }

func (m *fakeMonitor) Shutdown(context.Context) error {
	m.fm.mu.Lock()
	defer m.fm.mu.Unlock()
	if m.fm.shutdownErr != nil {
		return m.fm.shutdownErr
	}
	m.kill()
	return nil
}

// kill ends the monitor's processes and waits for them; the caller holds fm.mu.
func (m *fakeMonitor) kill() {
	for i, c := range m.cmds {
		c.Process.Kill()
		<-m.done[i]
	}
	delete(m.fm.live, m.dir)
}

// exited says whether all processes of the monitor are gone (killed by anyone).
func (m *fakeMonitor) exited() bool {
	for _, d := range m.done {
		select {
		case <-d:
		case <-time.After(5 * time.Second):
			return false
		}
	}
	return true
}

// die simulates a monitor crash: its processes are gone, Connect fails.
func (f *fakeMonitors) die(dir string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[dir].kill()
}

func (f *fakeMonitors) byDir(dir string) *fakeMonitor {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.all {
		if m.dir == dir {
			return m
		}
	}
	return nil
}

// fakeNetwork checks that the attempt is recorded before Setup and counts teardowns.
type fakeNetwork struct {
	t         *testing.T
	mu        sync.Mutex
	setupErr  error
	setups    int
	teardowns int
	failDown  error
	// gate, when set, holds Setup until it is closed or a second has passed.
	gate chan struct{}
}

var fakeIP = netip.MustParseAddr("10.99.0.7")

func (n *fakeNetwork) Setup(_ context.Context, p *Pod) (*NetworkStatus, error) {
	if n.gate != nil {
		select {
		case <-n.gate:
		case <-time.After(time.Second):
			return nil, errors.New("setup gate not opened")
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.setups++
	if _, err := os.Stat(p.path(networkFile)); err != nil {
		n.t.Errorf("Setup called before the attempt was recorded: %v", err)
	}
	if _, err := os.Stat(p.NetNSPath()); err != nil {
		n.t.Errorf("Setup without a netns: %v", err)
	}
	if n.setupErr != nil {
		return nil, n.setupErr
	}
	return &NetworkStatus{IPs: []netip.Addr{fakeIP}}, nil
}

func (n *fakeNetwork) Teardown(_ context.Context, p *Pod) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, err := os.Stat(p.NetNSPath()); err != nil {
		n.t.Errorf("Teardown without a netns: %v", err)
	}
	if n.failDown != nil {
		return n.failDown
	}
	n.teardowns++
	return nil
}

func (n *fakeNetwork) counts() (setups, teardowns int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.setups, n.teardowns
}
