// Package cri serves the Container Runtime Interface: validation, CRI ⇄ internal mapping, the interceptor, and the
// orchestration of pods and containers over sandbox/, image/ and oci/. It touches no namespace, mount or cgroup
// itself: those belong to the packages it calls.
package cri

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/keylock"
	"github.com/berthcri/berth/internal/store"
	"github.com/berthcri/berth/oci/specgen"
)

// RuntimeOptions is what the runtime service needs from the daemon.
type RuntimeOptions struct {
	// CgroupDriver is the resolved driver in use: "cgroupfs" or "systemd".
	CgroupDriver string
	// NetworkStatus returns nil when the pod network is ready, else an error saying exactly what is missing.
	NetworkStatus func() error
	// NetworkGC deletes the pod network attachments of every pod but those live (cni.Network.GC); recovery calls
	// it once the records are reconciled. nil: nothing to collect.
	NetworkGC func(ctx context.Context, live []string) error
	// Config is the effective configuration (secrets redacted), shown by a verbose Status.
	Config any
	// RuntimeHandlers are the configured RuntimeClass handlers besides "" and "runc".
	RuntimeHandlers []RuntimeHandler

	RootDir    string // records live in <root>/pods and <root>/containers, writable layers in <root>/containers/<id>
	Images     Images
	Sandboxes  Sandboxes
	Containers Containers   // state, signals and stats from libcontainer's state; exec and updates in helpers
	Host       specgen.Host // facts about this machine for spec generation (OOM floor already applied)
	// AppArmor keeps Host.AppArmorDefaultProfile loaded (oci/apparmor.Default); nil when there is none.
	AppArmor AppArmorDefault
	// AppArmorNote says, for Status, why a host with AppArmor has no default profile ("" when it has one).
	AppArmorNote string
	// CDI resolves the containers' CDI devices; nil when [cdi] enabled = false.
	CDI    CDIDevices
	Logger *slog.Logger
	// Metrics records pod and container starts, exits, monitors and dropped events; nil records nothing.
	Metrics *Metrics
	// PodCIDRChanged is given the kubelet's pod CIDRs (UpdateRuntimeConfig) when they change; nil when nothing uses
	// them (no cni.conf_template).
	PodCIDRChanged func(ctx context.Context, cidrs []string) error
}

// AppArmorDefault is the keeper of the default AppArmor profile.
type AppArmorDefault interface {
	// Ensure loads the profile when the kernel lacks it or has another text of it.
	Ensure(ctx context.Context) error
}

// RuntimeServer implements the CRI RuntimeService.
type RuntimeServer struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	opts RuntimeOptions
	log  *slog.Logger

	pods       *store.Store[podRecord]
	containers *store.Store[containerRecord]
	podNames   *names
	ctrNames   *names
	exits      *exitWatcher
	events     *eventBus     // GetContainerEvents subscribers (events.go)
	cpu        cpuSampler    // usage_nano_cores (stats_cpu.go)
	layers     *layerUsage   // writable layer sizes (stats_layer.go)
	streams    *streamServer // set by ServeStreams before the CRI is served
	// watchCtx bounds the waits on pod monitors and pause processes (monitors.go); Close ends it.
	watchCtx  context.Context
	stopWatch context.CancelFunc

	mu       sync.Mutex
	podCIDR  string                // from UpdateRuntimeConfig, as the kubelet wrote it
	cidrMu   sync.Mutex            // serialises UpdateRuntimeConfig (runtime_config.go)
	sandbox  map[string]PodRuntime // live pod runtimes by pod id
	podLocks keylock.Map           // RunPodSandbox, Stop/RemovePodSandbox exclusive, CreateContainer shared; taken first
	ctrLocks keylock.Map           // serialises calls on one container
	nri      nriRelay              // NRI plugins (nri.go)
}

// NewRuntimeServer opens the records and reconciles them with what runs on the host (recover.go).
func NewRuntimeServer(opts RuntimeOptions) (*RuntimeServer, error) {
	s := &RuntimeServer{opts: opts, log: opts.Logger, podNames: newNames("pod sandbox"), ctrNames: newNames("container"),
		sandbox: map[string]PodRuntime{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.events, s.layers = newEventBus(s.log, opts.Metrics.eventDropped), newLayerUsage(s.log)
	s.watchCtx, s.stopWatch = context.WithCancel(context.Background())
	if opts.RootDir == "" {
		return s, nil // runtime-info only (tests of Version/Status)
	}
	var err error
	if s.pods, err = store.Open[podRecord](filepath.Join(opts.RootDir, "pods"), "pod", podRecordVersion); err != nil {
		return nil, fmt.Errorf("open pod records: %w", err)
	}
	if s.containers, err = store.Open[containerRecord](filepath.Join(opts.RootDir, "containers"), "container", containerRecordVersion); err != nil {
		return nil, fmt.Errorf("open container records: %w", err)
	}
	if s.exits, err = newExitWatcher(s.onExit, s.log); err != nil {
		return nil, err
	}
	return s, nil
}

// Close ends event streams and stops watching for exits. Running workloads are not touched.
func (s *RuntimeServer) Close() error {
	s.stopWatch()
	s.stopNRI()
	s.events.close()
	if s.exits != nil {
		return s.exits.close()
	}
	return nil
}
