package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/cni"
	"github.com/berthcri/berth/cri"
	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/config"
	"github.com/berthcri/berth/internal/kernel"
	"github.com/berthcri/berth/internal/privdir"
	"github.com/berthcri/berth/internal/sdnotify"
	"github.com/berthcri/berth/internal/version"
	"github.com/berthcri/berth/oci/ctr"
	"github.com/berthcri/berth/oci/monitor"
	"github.com/berthcri/berth/oci/specgen"
	"github.com/berthcri/berth/sandbox"
)

// serve runs the daemon on cfg; load reads the configuration again, for a reload on SIGHUP.
func serve(cfg config.Config, load func() (config.Config, error)) error {
	tuneRuntime()
	// Signals are caught from the first moment: a SIGTERM during start-up is an orderly stop, not a kill. A SIGHUP
	// during start-up is a reload once berthd serves (waitForStop).
	sigs := make(chan os.Signal, 3) // room for one of each: a SIGHUP during start-up must not crowd out a SIGTERM
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	cfg.CgroupDriver = cgroupDriver(cfg.CgroupDriver)
	level := new(slog.LevelVar)
	log := newLogger(cfg.Log, level)
	slog.SetDefault(log)
	// Before any child process starts: FromEnv takes systemd's variables out of the environment.
	notifier, err := sdnotify.FromEnv()
	if err != nil {
		return err
	}

	// What berthd creates has no group or world write bits whatever umask it was started with; its dirs are made
	// private by privdir.
	unix.Umask(0o022)
	gid, err := usernsGID(cfg.UsernsGroup)
	if err != nil {
		log.Warn("user namespaces off: no group may traverse the state dir", "err", err)
	}
	if err := makeDirs(cfg, gid); err != nil {
		return err
	}
	unlock, err := lockStateDir(cfg.StateDir)
	if err != nil {
		return err
	}
	defer unlock()
	// The socket comes before anything else is set up: a daemon that must refuse to start (another one serves
	// there) touches nothing. Calls wait in the backlog until Serve.
	lis, err := listenSocket(cfg.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Listen)

	if err := kernel.Required(); err != nil {
		return err
	}
	logKernelFeatures(log)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	metrics := cri.NewMetrics()
	images, err := image.New(ctx, image.Options{RootDir: cfg.RootDir, Registry: cfg.Registry,
		Pinned: append(slices.Clone(cfg.PinnedImages), cfg.SandboxImage), Logger: log, OnPull: metrics.PullObserver(),
		SyncWritableLayers: cfg.SyncWritableLayers})
	if err != nil {
		return fmt.Errorf("image service: %w", err)
	}
	network, err := cni.New(cni.Options{ConfDir: cfg.CNI.ConfDir, BinDirs: cfg.CNI.BinDirs,
		StateDir: filepath.Join(cfg.RootDir, "cni"), SetupTimeout: cfg.CNI.SetupTimeout.Duration, Logger: log,
		ConfTemplate: cfg.CNI.ConfTemplate, Observe: metrics.CNIObserver()})
	if err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	defer network.Close()
	devices, stopCDI := cdiRegistry(cfg.CDI, log)
	defer stopCDI()
	runtimeSrv, err := newRuntime(ctx, cfg, gid, images, network, devices, metrics, log)
	if err != nil {
		return err
	}
	defer runtimeSrv.Close()
	streamAddr, stopStreams, err := runtimeSrv.ServeStreams(cri.StreamOptions{Address: cfg.Stream.Address,
		Port: cfg.Stream.Port, TLSCert: cfg.Stream.TLSCert, TLSKey: cfg.Stream.TLSKey})
	if err != nil {
		return err
	}
	defer stopStreams()
	driver := cgroupDriver(cfg.CgroupDriver)
	interceptor := cri.NewInterceptor(log, metrics)
	srv := grpc.NewServer(interceptor.ServerOptions()...)
	runtimeapi.RegisterRuntimeServiceServer(srv, runtimeSrv)
	runtimeapi.RegisterImageServiceServer(srv, cri.NewImageServer(images))

	if cfg.Metrics.Address != "" {
		stop, err := serveMetrics(cfg.Metrics, metrics, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	log.Info("berthd serving", "version", version.Version, "socket", cfg.Listen, "root", cfg.RootDir,
		"state", cfg.StateDir, "cgroupDriver", driver, "streaming", streamAddr)
	stopWatchdog, err := notifyReady(notifier, cfg.Listen, log)
	if err != nil {
		return err
	}
	defer stopWatchdog()

	r := &reloader{load: load, images: images, level: level, notifier: notifier, log: log, running: cfg}
	if err := waitForStop(sigs, serveErr, r.reload, log); err != nil {
		return fmt.Errorf("serve %s: %w", cfg.Listen, err)
	}
	if err := notifier.Notify(sdnotify.Stopping); err != nil {
		log.Warn("systemd not told berthd is stopping", "err", err)
	}
	log.Info("shutting down: finishing in-flight calls", "timeout", cfg.ShutdownTimeout.Duration)
	stopWatchdog()
	runtimeSrv.Close() // ends event streams, which GracefulStop would otherwise wait for
	gracefulStop(srv, cfg.ShutdownTimeout.Duration)
	return nil
}

// waitForStop returns nil on SIGTERM or SIGINT, or the error that ended the gRPC server; SIGHUP calls reload (one
// at a time: signals are handled in order). berthd logs to stderr, so there is no log file to reopen.
func waitForStop(sigs <-chan os.Signal, serveErr <-chan error, reload func(), log *slog.Logger) error {
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				reload()
				continue
			}
			log.Info("stop requested", "signal", sig.String())
			return nil
		case err := <-serveErr:
			return err
		}
	}
}

// logKernelFeatures logs the kernel and which of the probed features it lacks, with what berth does without them
// (README.md, "Kernels").
func logKernelFeatures(log *slog.Logger) {
	var missing []string
	for _, f := range kernel.Features() {
		if f.Err != nil {
			missing = append(missing, fmt.Sprintf("%s (Linux %s): %v", f.Name, f.Since, f.Err))
		}
	}
	log.Info("kernel", "release", kernel.Release(), "cgroup", cgroupVersion(), "missingFeatures", missing)
}

// cgroupVersion names the cgroup hierarchy berth works with: "v2" on a pure cgroup2 host, else "v1".
func cgroupVersion() string {
	if cgroups.IsCgroup2UnifiedMode() {
		return "v2"
	}
	return "v1"
}

// newRuntime builds the runtime service over sandbox/ and oci/ and reconciles it with the host.
// usernsGID is the group that may traverse the shared state dirs, 0 for none.
func newRuntime(ctx context.Context, cfg config.Config, usernsGID int, images *image.Service, network *cni.Network,
	devices cri.CDIDevices, metrics *cri.Metrics, log *slog.Logger) (*cri.RuntimeServer, error) {
	driver := cgroupDriver(cfg.CgroupDriver)
	host, err := specgen.SystemHost()
	if err != nil {
		return nil, err
	}
	host.OOMScoreAdjMin = max(host.OOMScoreAdjMin, cfg.MinOOMScoreAdj)
	appArmor, appArmorNote := defaultAppArmor(ctx, &host, cfg.StateDir, log)
	runcRoot := filepath.Join(cfg.StateDir, "runc")
	helper, err := monitor.DefaultBinary()
	if err != nil {
		return nil, err
	}
	cfgJSON, err := cfg.Redacted().JSON()
	if err != nil {
		return nil, err
	}
	if err := privdir.Make(runcRoot, privdir.Private); err != nil {
		return nil, fmt.Errorf("runc root: %w", err)
	}
	handlers, err := runtimeHandlers(ctx, cfg, driver == "systemd", log)
	if err != nil {
		return nil, err
	}
	handlerContainers, handlerStatus := handlerRuntimes(handlers, driver == "systemd", helper)
	sandboxes, err := sandbox.New(sandbox.Options{StateDir: cfg.StateDir, CgroupDriver: driver, UsernsGID: usernsGID,
		MinOOMScoreAdj: host.OOMScoreAdjMin, Monitors: monitors{runcRoot: runcRoot, usernsGID: usernsGID, handlers: handlers},
		Network: network, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("sandbox manager: %w", err)
	}
	rt, err := cri.NewRuntimeServer(cri.RuntimeOptions{
		CgroupDriver:  driver,
		NetworkStatus: network.Ready,
		NetworkGC:     network.GC,
		Config:        json.RawMessage(cfgJSON),
		RootDir:       cfg.RootDir,
		Images:        cri.HostImages(images),
		Sandboxes:     cri.HostSandboxes(sandboxes, cfg.RootDir),
		Containers:    cri.HostContainers(&ctr.Runtime{Root: runcRoot, Systemd: driver == "systemd", Helper: helper}, handlerContainers...),
		Host:          host,
		AppArmor:      appArmor,
		AppArmorNote:  appArmorNote,
		CDI:           devices,
		Logger:        log,
		Metrics:       metrics,
		// Renders cni.conf_template, when there is one, for the kubelet's pod CIDR.
		PodCIDRChanged:  network.SetPodCIDRs,
		RuntimeHandlers: handlerStatus,
	})
	if err != nil {
		return nil, err
	}
	if err := rt.Recover(ctx); err != nil {
		rt.Close()
		return nil, err
	}
	if err := startNRI(rt, cfg.NRI, log); err != nil {
		rt.Close()
		return nil, err
	}
	return rt, nil
}

// gracefulStop stops taking calls and waits for in-flight ones, at most timeout. Workloads are never touched.
func gracefulStop(srv *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		srv.Stop()
	}
}

// newLogger logs at level, set from c and changed by a reload.
func newLogger(c config.LogConfig, level *slog.LevelVar) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.Level)) // validated at load
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// lockStateDir takes an exclusive lock so that two daemons never share one state dir.
func lockStateDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "berthd.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another berthd (pid %s) is running on state dir %s (lock %s held)",
				strings.TrimSpace(string(owner)), dir, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// listenSocket listens on the CRI socket, mode 0660 from the first moment (privdir.Listen), replacing a stale socket
// file only when nothing answers on it.
func listenSocket(path string) (net.Listener, error) {
	if _, err := os.Lstat(path); err == nil {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil, fmt.Errorf("socket %s: another process is serving on it", path)
		}
	}
	return privdir.Listen(path, 0o660)
}

// systemdRunDir exists, as a directory, while systemd is the init system (sd_booted(3)); a variable for tests.
var systemdRunDir = "/run/systemd/system"

// cgroupDriver resolves "auto": systemd where systemd booted the host (sd_booted(3), as runc's IsRunningSystemd
// checks), whatever PID 1 is called; cgroupfs elsewhere.
func cgroupDriver(configured string) string {
	if configured != "auto" {
		return configured
	}
	if fi, err := os.Lstat(systemdRunDir); err == nil && fi.IsDir() {
		return "systemd"
	}
	return "cgroupfs"
}

func serveMetrics(c config.MetricsConfig, m *cri.Metrics, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	if c.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	lis, err := net.Listen("tcp", c.Address)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", c.Address, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics serving", "address", lis.Addr().String(), "pprof", c.Pprof)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}
