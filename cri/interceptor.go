package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type loggerKey struct{}

// Logger returns the request's logger (with its request id), or the default logger outside a request.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// logger is the request's logger, or the server's outside a request (recovery, watchers).
func (s *RuntimeServer) logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return s.log
}

// Interceptor is berth's single gRPC interceptor: request id, one log line per call, panic recovery, metrics
// and the mapping of errors to gRPC codes.
type Interceptor struct {
	log     *slog.Logger
	metrics *Metrics
}

func NewInterceptor(log *slog.Logger, m *Metrics) *Interceptor {
	return &Interceptor{log: log, metrics: m}
}

// ServerOptions returns the gRPC options that install the interceptor for unary and streaming calls.
func (i *Interceptor) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(i.unary), grpc.ChainStreamInterceptor(i.stream)}
}

func (i *Interceptor) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	method := path.Base(info.FullMethod)
	log := i.log.With("rpc", method, "req", requestID())
	if attrs := requestAttrs(req); len(attrs) > 0 {
		log = log.With(attrs...)
	}
	ctx = context.WithValue(ctx, loggerKey{}, log)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic in CRI call", "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		i.finish(ctx, log, method, start, err)
	}()
	resp, err = handler(ctx, req)
	return resp, toStatus(err)
}

func (i *Interceptor) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	method := path.Base(info.FullMethod)
	log := i.log.With("rpc", method, "req", requestID())
	ctx := context.WithValue(ss.Context(), loggerKey{}, log)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			log.Error("panic in CRI stream", "panic", r, "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "%s: internal error: %v", method, r)
		}
		i.finish(ctx, log, method, start, err)
	}()
	return toStatus(handler(srv, &loggedStream{ServerStream: ss, ctx: ctx}))
}

func (i *Interceptor) finish(ctx context.Context, log *slog.Logger, method string, start time.Time, err error) {
	took := time.Since(start)
	code := status.Code(err)
	if i.metrics != nil {
		i.metrics.observe(method, took, code)
	}
	level := slog.LevelDebug
	if isMutation(method) {
		level = slog.LevelInfo
	}
	if err != nil && code != codes.NotFound {
		level = max(level, slog.LevelWarn)
	}
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []any{"took", took.Round(time.Microsecond)}
	if err != nil {
		attrs = append(attrs, "code", code.String(), "err", status.Convert(err).Message())
	}
	log.Log(ctx, level, "cri call", attrs...)
}

type loggedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *loggedStream) Context() context.Context { return s.ctx }

// readCalls are logged at debug (the kubelet relists every second); every other call changes state and is
// logged at info.
var readCalls = map[string]bool{
	"Version": true, "Status": true, "RuntimeConfig": true,
	"ListPodSandbox": true, "StreamPodSandboxes": true, "PodSandboxStatus": true,
	"ListContainers": true, "StreamContainers": true, "ContainerStatus": true,
	"ContainerStats": true, "ListContainerStats": true, "StreamContainerStats": true,
	"PodSandboxStats": true, "ListPodSandboxStats": true, "StreamPodSandboxStats": true,
	"ListMetricDescriptors": true, "ListPodSandboxMetrics": true, "StreamPodSandboxMetrics": true,
	"GetContainerEvents": true,
	"ListImages":         true, "StreamImages": true, "ImageStatus": true, "ImageFsInfo": true,
}

func isMutation(method string) bool { return !readCalls[method] }

// requestAttrs picks the pod, container and image ids out of a request for the log line.
func requestAttrs(req any) []any {
	var attrs []any
	if r, ok := req.(interface{ GetPodSandboxId() string }); ok && r.GetPodSandboxId() != "" {
		attrs = append(attrs, "pod", r.GetPodSandboxId())
	}
	if r, ok := req.(interface{ GetContainerId() string }); ok && r.GetContainerId() != "" {
		attrs = append(attrs, "container", r.GetContainerId())
	}
	if r, ok := req.(interface{ GetImage() *runtimeapi.ImageSpec }); ok && r.GetImage() != nil {
		attrs = append(attrs, "image", r.GetImage().GetImage())
	}
	return attrs
}

func requestID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Sprintf("%x", time.Now().UnixNano())
	}
	return hex.EncodeToString(b[:])
}
