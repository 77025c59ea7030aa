package cri

import (
	"context"
	"errors"
	"net/http"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
)

// Metrics holds every berth metric on one registry (README.md, "Metrics"). Labels are few and bounded: a method, a
// code, a result, a reason from a fixed set, a network and its plugin type; never a pod, container or image, whose
// numbers grow without bound. image/ and cni/ do not import prometheus: they report through the funcs PullObserver
// and CNIObserver return. A nil *Metrics records nothing (tests).
type Metrics struct {
	registry *prometheus.Registry
	latency  *prometheus.HistogramVec
	errors   *prometheus.CounterVec

	pulls         *prometheus.CounterVec // by result
	pullErrors    *prometheus.CounterVec // by reason
	pullBytes     prometheus.Counter
	pullDuration  prometheus.Histogram
	podStart      prometheus.Histogram
	ctrStart      prometheus.Histogram
	cniDuration   *prometheus.HistogramVec // by op, network, plugin
	cniErrors     *prometheus.CounterVec   // by op, network, plugin
	oomKills      prometheus.Counter
	monitors      prometheus.Gauge
	exitLag       prometheus.Histogram
	eventsDropped prometheus.Counter
}

// Pull failure reasons, the values of berth_image_pull_errors_total's reason label.
const (
	pullNotFound     = "not_found"
	pullUnauthorized = "unauthorized"
	pullTimeout      = "timeout"
	pullNetwork      = "network"
	pullInvalid      = "invalid"
	pullDisk         = "disk"
	pullOther        = "other"
)

// startBuckets spans a pod or container start: tens of milliseconds on an idle node to the minutes of a slow CNI
// plugin or a loaded disk.
var startBuckets = []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}

// NewMetrics returns berth's metrics on a registry of their own, with the Go and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "cri", Name: "request_duration_seconds",
			Help:    "Latency of CRI calls by method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"method"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "cri", Name: "request_errors_total",
			Help: "CRI calls that returned an error, by method and gRPC code.",
		}, []string{"method", "code"}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "image", Name: "pulls_total",
			Help: "Image pulls by result (success, failure).",
		}, []string{"result"}),
		pullErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "image", Name: "pull_errors_total",
			Help: "Failed image pulls by reason: not_found, unauthorized, timeout, network, invalid, disk, other.",
		}, []string{"reason"}),
		pullBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "image", Name: "pull_bytes_total",
			Help: "Compressed bytes fetched from registries by image pulls; content already stored is not fetched.",
		}),
		pullDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "image", Name: "pull_duration_seconds",
			Help:    "Duration of image pulls, failed ones included.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "pod", Name: "start_duration_seconds",
			Help:    "Time RunPodSandbox took to make a pod ready (namespaces, cgroup, monitor, network).",
			Buckets: startBuckets,
		}),
		ctrStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "container", Name: "start_duration_seconds",
			Help:    "Time from a container's CreateContainer to its StartContainer reporting it running.",
			Buckets: startBuckets,
		}),
		cniDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "cni", Name: "operation_duration_seconds",
			Help:    "Duration of CNI ADD and DEL by network name and main plugin type, failed ones included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
		}, []string{"op", "network", "plugin"}),
		cniErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "cni", Name: "operation_errors_total",
			Help: "Failed CNI ADD and DEL by network name and main plugin type.",
		}, []string{"op", "network", "plugin"}),
		oomKills: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "container", Name: "oom_kills_total",
			Help: "Containers whose exit the monitor recorded as OOM-killed.",
		}),
		monitors: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "berth", Subsystem: "monitor", Name: "live",
			Help: "Pod monitors berthd is connected to and watching.",
		}),
		exitLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "berth", Subsystem: "container", Name: "exit_watch_lag_seconds",
			Help: "Time from a container's exit as its monitor saw it to berthd recording it " +
				"(a berthd restart in between counts).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300},
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "berth", Subsystem: "events", Name: "dropped_total",
			Help: "Container events not delivered to a GetContainerEvents subscriber whose buffer was full.",
		}),
	}
	m.registry.MustRegister(m.latency, m.errors, m.pulls, m.pullErrors, m.pullBytes, m.pullDuration, m.podStart,
		m.ctrStart, m.cniDuration, m.cniErrors, m.oomKills, m.monitors, m.exitLag, m.eventsDropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Series that exist before their first event, so that a dashboard's rate() starts from zero.
	m.pulls.WithLabelValues("success")
	m.pulls.WithLabelValues("failure")
	for _, r := range []string{pullNotFound, pullUnauthorized, pullTimeout, pullNetwork, pullInvalid, pullDisk, pullOther} {
		m.pullErrors.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) observe(method string, took time.Duration, code codes.Code) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(method).Observe(took.Seconds())
	if code != codes.OK {
		m.errors.WithLabelValues(method, code.String()).Inc()
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// PullObserver is the image service's hook (image.Options.OnPull): one call at the end of each pull with its
// duration, the bytes it fetched and its error.
func (m *Metrics) PullObserver() func(took time.Duration, fetched int64, err error) {
	return func(took time.Duration, fetched int64, err error) {
		if m == nil {
			return
		}
		m.pullDuration.Observe(took.Seconds())
		m.pullBytes.Add(float64(fetched))
		if err == nil {
			m.pulls.WithLabelValues("success").Inc()
			return
		}
		m.pulls.WithLabelValues("failure").Inc()
		m.pullErrors.WithLabelValues(pullReason(err)).Inc()
	}
}

// pullReason puts a pull's error in one of the few reasons, from the sentinels and errnos it wraps. A deadline comes
// first (a pull that stalled wraps context.DeadlineExceeded beside ErrUnavailable); an errno of the image disk comes
// before the sentinels its message was wrapped in.
func pullReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return pullTimeout
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT), errors.Is(err, syscall.EIO),
		errors.Is(err, syscall.EROFS):
		return pullDisk
	case errdefs.IsNotFound(err):
		return pullNotFound
	case errors.Is(err, errdefs.ErrUnauthenticated):
		return pullUnauthorized
	case errdefs.IsInvalidArgument(err), errdefs.IsFailedPrecondition(err), errors.Is(err, image.ErrTooBig):
		return pullInvalid
	case errdefs.IsUnavailable(err), errors.Is(err, errdefs.ErrResourceExhausted): // the latter: a registry's 429
		return pullNetwork
	}
	return pullOther
}

// CNIObserver is the pod network's hook (cni.Options.Observe): one call per ADD or DEL.
func (m *Metrics) CNIObserver() func(op, network, plugin string, took time.Duration, err error) {
	return func(op, network, plugin string, took time.Duration, err error) {
		if m == nil {
			return
		}
		m.cniDuration.WithLabelValues(op, network, plugin).Observe(took.Seconds())
		errs := m.cniErrors.WithLabelValues(op, network, plugin) // at zero from the first call on, for rate()
		if err != nil {
			errs.Inc()
		}
	}
}

func (m *Metrics) podStarted(took time.Duration) {
	if m != nil {
		m.podStart.Observe(took.Seconds())
	}
}

// containerStarted observes a start, from the record's creation time (Unix nanoseconds).
func (m *Metrics) containerStarted(createdAt int64) {
	if m != nil && createdAt > 0 {
		m.ctrStart.Observe(time.Since(time.Unix(0, createdAt)).Seconds())
	}
}

// exitRecorded is told of each container's move to exited: oom from its exit record, finished when the exit was
// seen. An exit berthd records itself (a dead monitor, a kill whose exit no monitor recorded) is seen as it is
// recorded: its lag is about zero.
func (m *Metrics) exitRecorded(oom bool, finished time.Time) {
	if m == nil {
		return
	}
	if oom {
		m.oomKills.Inc()
	}
	if !finished.IsZero() {
		m.exitLag.Observe(max(0, time.Since(finished).Seconds()))
	}
}

func (m *Metrics) monitorWatched(delta float64) {
	if m != nil {
		m.monitors.Add(delta)
	}
}

func (m *Metrics) eventDropped() {
	if m != nil {
		m.eventsDropped.Inc()
	}
}
