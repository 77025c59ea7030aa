package cri

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestEventBusOverflow(t *testing.T) {
	var logs syncLog
	var counted int // the metric's hook runs under the bus's lock
	b := newEventBus(slog.New(slog.NewTextHandler(&logs, nil)), func() { counted++ })
	if b.active() {
		t.Error("active without subscribers")
	}
	slow, fast := b.subscribe(), b.subscribe()
	if !b.active() {
		t.Error("not active with subscribers")
	}
	const extra = 5
	for i := range eventBuffer + extra {
		b.publish(&runtimeapi.ContainerEventResponse{ContainerId: "c", CreatedAt: int64(i)})
		<-fast.ch // keeps up
	}
	if n := slow.dropped.Load(); n != extra {
		t.Errorf("slow subscriber dropped %d, want %d", n, extra)
	}
	if counted != extra {
		t.Errorf("%d drops counted for the metric, want %d", counted, extra)
	}
	if n := fast.dropped.Load(); n != 0 {
		t.Errorf("subscriber that keeps up dropped %d", n)
	}
	if len(slow.ch) != eventBuffer || (<-slow.ch).CreatedAt != 0 {
		t.Error("the slow subscriber should keep the oldest events and lose the newest")
	}
	if c := strings.Count(logs.String(), "dropping events"); c != 1 {
		t.Errorf("logged %d warnings for one slow subscriber, want one:\n%s", c, logs.String())
	}

	b.unsubscribe(slow)
	b.publish(&runtimeapi.ContainerEventResponse{})
	if len(slow.ch) != eventBuffer-1 {
		t.Error("published to an unsubscribed subscriber")
	}
	b.close()
	if b.active() {
		t.Error("active after close")
	}
	select {
	case <-fast.done:
	default:
		t.Error("close did not end the subscription")
	}
	if late := b.subscribe(); !isClosed(late.done) {
		t.Error("a subscription after close is open")
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventStream is a GetContainerEvents stream that hands what is sent to a channel.
type eventStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *runtimeapi.ContainerEventResponse
}

func (e *eventStream) Context() context.Context { return e.ctx }
func (e *eventStream) Send(ev *runtimeapi.ContainerEventResponse) error {
	e.sent <- ev
	return nil
}

func TestContainerEvents(t *testing.T) {
	s, err := NewRuntimeServer(RuntimeOptions{RootDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	pod := podRecord{ID: "p1", State: podReady, CreatedAt: 1, Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "u1"}}}
	if err := s.pods.Create(pod.ID, pod); err != nil {
		t.Fatal(err)
	}
	for _, c := range []containerRecord{
		{ID: "c1", PodID: "p1", State: ctrRunning, Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"}}},
		{ID: "c2", PodID: "p1", State: ctrCreating, Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "half-made"}}},
	} {
		if err := s.containers.Create(c.ID, c); err != nil {
			t.Fatal(err)
		}
	}

	// Nothing is built while nobody listens.
	s.emitContainerEvent("c1", "p1", runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)

	ctx, cancel := context.WithCancel(context.Background())
	stream := &eventStream{ctx: ctx, sent: make(chan *runtimeapi.ContainerEventResponse, 10)}
	done := make(chan error, 1)
	go func() { done <- s.GetContainerEvents(&runtimeapi.GetEventsRequest{}, stream) }()
	waitFor(t, s.events.active)

	s.emitContainerEvent("c1", "p1", runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	ev := receive(t, stream.sent)
	if ev.ContainerId != "c1" || ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT ||
		ev.CreatedAt == 0 || ev.PodSandboxStatus.GetMetadata().GetUid() != "u1" ||
		len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].Id != "c1" {
		t.Errorf("container event = %v", ev)
	}

	// A removed pod's last record is what the event carries, not ready.
	if err := s.pods.Delete("p1"); err != nil {
		t.Fatal(err)
	}
	s.emitPodEvent(pod, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	ev = receive(t, stream.sent)
	if ev.ContainerId != "p1" || ev.ContainerEventType != runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT ||
		ev.PodSandboxStatus.GetId() != "p1" || ev.PodSandboxStatus.GetState() != runtimeapi.PodSandboxState_SANDBOX_NOTREADY {
		t.Errorf("pod event = %v", ev)
	}
	s.emitPodEvent(pod, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	for _, want := range []runtimeapi.ContainerEventType{runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT} {
		if ev := receive(t, stream.sent); ev.ContainerEventType != want || ev.PodSandboxStatus.GetState() != runtimeapi.PodSandboxState_SANDBOX_READY {
			t.Errorf("pod event = %v, want %v of a ready pod", ev, want)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("stream ended with %v", err)
	}
	if s.events.active() {
		t.Error("subscriber left behind")
	}
}

func receive(t *testing.T, c chan *runtimeapi.ContainerEventResponse) *runtimeapi.ContainerEventResponse {
	t.Helper()
	select {
	case ev := <-c:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
		return nil
	}
}

func TestCloseEndsEventStreams(t *testing.T) {
	s, err := NewRuntimeServer(RuntimeOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	stream := &eventStream{ctx: context.Background(), sent: make(chan *runtimeapi.ContainerEventResponse)}
	done := make(chan error, 1)
	go func() { done <- s.GetContainerEvents(&runtimeapi.GetEventsRequest{}, stream) }()
	waitFor(t, s.events.active)
	s.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stream ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream outlived Close")
	}
}
