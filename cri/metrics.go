package cri

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
)

// Metrics counts every CRI call: a latency histogram and an error counter per RPC.
type Metrics struct {
	registry *prometheus.Registry
	latency  *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

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
	}
	m.registry.MustRegister(m.latency, m.errors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observe(method string, took time.Duration, code codes.Code) {
	m.latency.WithLabelValues(method).Observe(took.Seconds())
	if code != codes.OK {
		m.errors.WithLabelValues(method, code.String()).Inc()
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
