package cri

import (
	"context"
	"io"
	"net"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/sandbox"
)

// The interfaces below are what cri/ calls on the packages beneath it, and no more: cmd/berthd passes the real
// ones (host.go), unit tests in-memory fakes (fake_test.go).

// ImageStore is what the image service serves: image/'s Service.
type ImageStore interface {
	Pull(ctx context.Context, ref string, auth *image.Auth) (image.Image, error)
	Status(ref string) (image.Image, error)
	List() []image.Image
	Remove(ref string) error
	FsInfo(ctx context.Context) (image.FsUsage, error)
	LowerDirs(img image.Image) []string
}

// Images is what containers need of the image store: a hold on their images, and their root filesystems and image
// volumes mounted and unmounted.
type Images interface {
	Status(ref string) (image.Image, error)
	Acquire(ref, user string) (image.Image, error)
	Release(id, user string) error
	MountRootfsMapped(img image.Image, upper, work, target string, idmap *image.IDMap) error
	MountReadOnly(img image.Image, subPath, target string, idmap *image.IDMap) error
	// Unmount undoes either mount at target; nil when nothing is mounted there.
	Unmount(target string) error
	// KeepUsers drops every image user known rejects (at start-up: users without a container record) and returns
	// those dropped.
	KeepUsers(known func(user string) bool) ([]string, error)
}

// Sandboxes creates and recovers pod runtimes.
type Sandboxes interface {
	// Create makes a pod. On error the pod is nil when it was rolled back, else what is left to Remove.
	Create(ctx context.Context, cfg sandbox.Config) (PodRuntime, error)
	// Recover finds the pods in the state dir after a restart.
	Recover(ctx context.Context) ([]RecoveredPod, error)
	// UserNamespaces says why pods cannot have their own user namespace on this host; nil when they can.
	UserNamespaces() error
}

// RecoveredPod is a pod found by Sandboxes.Recover: Pod is never nil, Err says why it is not usable.
type RecoveredPod struct {
	Pod PodRuntime
	Err error
}

// PodRuntime is a pod's runtime: its paths for the containers' specs, its monitor and counters, and its teardown.
type PodRuntime interface {
	ID() string
	Config() sandbox.Config
	Dir() string
	// Monitor is nil when the pod's monitor cannot be reached.
	Monitor() Monitor
	Network() *sandbox.NetworkStatus
	NetNSPath() string
	IPCNSPath() string
	UTSNSPath() string
	PIDNSPath() string
	UserNSPath() string
	HostnamePath() string
	HostsPath() string
	ResolvPath() string
	ShmPath() string
	CgroupParent() string
	Systemd() bool
	CgroupStats() (*ctr.Stats, error)
	NetworkStats() ([]sandbox.InterfaceStats, error)
	DialPort(ctx context.Context, port int32) (net.Conn, error)
	// CheckPause is an error wrapping errdefs.ErrFailedPrecondition when the pod's pause process has died: its PID
	// namespace takes no new process.
	CheckPause() error
	// Stop ends the pod's processes and releases its network; Remove also deletes what is left of it. Both are
	// idempotent.
	Stop(ctx context.Context) error
	Remove(ctx context.Context) error
}

// Monitor is a pod's running monitor, which owns its containers.
type Monitor interface {
	PausePid() int
	Create(ctx context.Context, r monitor.CreateRequest) error
	Start(ctx context.Context, id string) error
	State(ctx context.Context) ([]monitor.ContainerState, error)
	Remove(ctx context.Context, id string) error
	ReopenLog(ctx context.Context, id string) error
	Attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, resize <-chan monitor.Size) error
	// Wait and WaitPause return nil when the monitor or its pause process has exited, an error when ctx ends or
	// the monitor handle is closed first; Stopping says the pod is being stopped on purpose.
	Wait(ctx context.Context) error
	WaitPause(ctx context.Context) error
	Stopping() bool
}

// Containers acts on containers without their monitor: state and signals, exec, resource updates, clean-up.
type Containers interface {
	// Load returns a container's state; an error wrapping errdefs.ErrNotFound when it has none.
	Load(id string) (Container, error)
	Exec(ctx context.Context, id string, p ctr.ExecProcess) (ctr.ExitStatus, error)
	Update(id string, res *specs.LinuxResources) error
	// Destroy removes what libcontainer keeps of a container whose monitor is gone (cgroup, state).
	Destroy(ctx context.Context, id string) error
}

// Container is a loaded container state.
type Container interface {
	// Pid is the container's init in the host PID namespace, 0 when it is not running.
	Pid() int
	Signal(sig syscall.Signal, all bool) error
	Stats() (*ctr.Stats, error)
	Processes() ([]int, error)
}
