package cri

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

// The fuzzers call the real services over the fakes, through the real interceptor, as gRPC would: an input is an
// RPC (an index into the lists below) and bytes decoded as its request, and fake steps that fail during the call
// (faultOps; for images the pull), with errors of a kind, so that error and undo paths are driven too. A call fails the fuzzer when it panics,
// ends in codes.Internal or codes.Unknown (an error that names no errdefs kind: a mapping bug), or does not return
// within callTimeout+hangGrace.

// runtimeRPCs and imageRPCs are the unary RPCs driven, by index: append only, so that the seeds in testdata/fuzz
// keep their meaning when cri-api adds RPCs.
var (
	runtimeRPCs = []string{"Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
		"ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers",
		"ContainerStatus", "UpdateContainerResources", "ReopenContainerLog", "ExecSync", "Exec", "Attach",
		"PortForward", "ContainerStats", "ListContainerStats", "PodSandboxStats", "ListPodSandboxStats",
		"UpdateRuntimeConfig", "Status", "CheckpointContainer", "CheckpointPod", "RestorePod", "ListMetricDescriptors",
		"ListPodSandboxMetrics", "RuntimeConfig", "UpdatePodSandboxResources"}
	imageRPCs = []string{"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"}
)

const (
	callTimeout = 3 * time.Second // the context of each call
	hangGrace   = 3 * time.Second // how long past it a call may take before the fuzzer calls it hung
)

// The ids of the harness's own pod and containers are random; requests name them by these placeholders, of the
// same length, which the harness replaces before decoding (proto lengths stay right).
var (
	podPlaceholder     = strings.Repeat("P", 64) // a ready pod
	runningPlaceholder = strings.Repeat("R", 64) // a running container in it
	createdPlaceholder = strings.Repeat("C", 64) // a created container in it
)

// rpcHarness calls one service's handlers through the interceptor and keeps its state bounded between calls.
type rpcHarness struct {
	srv     any
	methods map[string]grpc.MethodDesc
	icp     *Interceptor
	logs    *lockedBuffer
}

func newRPCHarness(t testing.TB, srv any, desc grpc.ServiceDesc, rpcs []string) *rpcHarness {
	logs := &lockedBuffer{}
	h := &rpcHarness{srv: srv, methods: map[string]grpc.MethodDesc{}, logs: logs,
		icp: NewInterceptor(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelError})), nil)}
	for _, m := range desc.Methods {
		h.methods[m.MethodName] = m
	}
	for _, name := range rpcs {
		if _, ok := h.methods[name]; !ok {
			t.Fatalf("%s has no RPC %s", desc.ServiceName, name)
		}
	}
	return h
}

// call decodes req as the request of RPC name and calls it; a request that does not decode is skipped.
func (h *rpcHarness) call(t *testing.T, name string, req []byte) {
	h.logs.reset()
	dec := func(m any) error { return proto.Unmarshal(req, m.(proto.Message)) }
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	started := make(chan proto.Message, 1) // the decoded request, once the interceptor has it
	done := make(chan error, 1)
	go func() {
		icp := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			started <- req.(proto.Message)
			return h.icp.unary(ctx, req, info, handler)
		}
		_, err := h.methods[name].Handler(h.srv, ctx, dec, icp)
		done <- err
	}()
	select {
	case err := <-done:
		var decoded proto.Message
		select {
		case decoded = <-started:
		default:
			return // the request did not decode: no call
		}
		if code := status.Code(err); code == codes.Internal || code == codes.Unknown {
			t.Fatalf("%s(%s): %v\n%s", name, prototext.Format(decoded), err, h.logs.String())
		}
	case <-time.After(callTimeout + hangGrace):
		t.Fatalf("%s(%s) did not return within %v", name, prototext.Format(<-started), callTimeout+hangGrace)
	}
}

// lockedBuffer collects the interceptor's error logs (a panic's stack) of the current call.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// pick resolves an RPC index of a fuzz input.
func pick(rpcs []string, i uint8) string { return rpcs[int(i)%len(rpcs)] }

// seedInput is the RPC index and request bytes of a seed.
func seedInput(f *testing.F, rpcs []string, s rpcSeed) (uint8, []byte) {
	i := slices.Index(rpcs, s.rpc)
	if i < 0 {
		f.Fatalf("no RPC %s", s.rpc)
	}
	b, err := proto.Marshal(s.req)
	if err != nil {
		f.Fatal(err)
	}
	return uint8(i), b
}

func FuzzRuntimeService(f *testing.F) {
	fz := newRuntimeFuzzer(f)
	for _, s := range runtimeSeeds() {
		// Each request once as it is, and once with every fake step failing.
		i, b := seedInput(f, runtimeRPCs, s)
		f.Add(i, uint16(0), b)
		f.Add(i, uint16(1<<len(faultOps)-1), b)
	}
	f.Fuzz(func(t *testing.T, rpc uint8, faults uint16, req []byte) {
		fz.h.inject(faults)
		fz.rpc.call(t, pick(runtimeRPCs, rpc), fz.substitute(req))
		fz.h.inject(0)
		fz.reset(t)
	})
}

func FuzzImageService(f *testing.F) {
	srv, h := newTestImageServer(f)
	rpc := newRPCHarness(f, srv, runtimeapi.ImageService_ServiceDesc, imageRPCs)
	pullBase := func(t testing.TB) {
		if _, err := (fakeImages{h}).Pull(context.Background(), testImage, nil); err != nil {
			t.Fatal(err)
		}
	}
	pullBase(f)
	for _, s := range imageSeeds() {
		i, b := seedInput(f, imageRPCs, s)
		f.Add(i, false, b)
		f.Add(i, true, b)
	}
	f.Fuzz(func(t *testing.T, i uint8, failPull bool, req []byte) {
		if failPull {
			h.fail(opPull, fmt.Errorf("injected fault: %w", errdefs.ErrUnavailable))
		}
		rpc.call(t, pick(imageRPCs, i), req)
		h.fail(opPull, nil)
		// Bounded: the images pulled by this input go, the test image is back.
		for _, img := range (fakeImages{h}).List() {
			if !slices.Contains(img.RepoTags, testImage) {
				_ = (fakeImages{h}).Remove(img.ID)
			}
		}
		pullBase(t)
	})
}

type rpcSeed struct {
	rpc string
	req proto.Message
}

func imageSeeds() []rpcSeed {
	spec := &runtimeapi.ImageSpec{Image: testImage}
	return []rpcSeed{
		{"ListImages", &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: spec}}},
		{"ImageStatus", &runtimeapi.ImageStatusRequest{Image: spec, Verbose: true}},
		{"PullImage", &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: "registry.test/other:2"},
			Auth: &runtimeapi.AuthConfig{Username: "u", Password: "p"}, SandboxConfig: testPodConfig("img")}},
		{"RemoveImage", &runtimeapi.RemoveImageRequest{Image: spec}},
		{"ImageFsInfo", &runtimeapi.ImageFsInfoRequest{}},
	}
}
