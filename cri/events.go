package cri

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container events feed the kubelet's evented PLEG (GetContainerEvents). Every lifecycle change is published with
// the statuses read right after it; pods publish the same event types with the pod id as container id, as in
// containerd. Each subscriber has a bounded buffer: one that does not keep up loses events, which are counted and
// logged, and never slows a lifecycle call down (the kubelet's relist repairs what it missed).

// eventBuffer is the events one subscriber may lag behind.
const eventBuffer = 1024

type eventBus struct {
	log    *slog.Logger
	onDrop func() // counts each event a subscriber lost (Metrics)
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
	n      atomic.Int32 // subscribers, read without the lock on every lifecycle change
}

type subscriber struct {
	ch      chan *runtimeapi.ContainerEventResponse
	done    chan struct{} // closed when the bus closes
	dropped atomic.Uint64 // since the subscriber last received
}

func newEventBus(log *slog.Logger, onDrop func()) *eventBus {
	return &eventBus{log: log, onDrop: onDrop, subs: map[*subscriber]struct{}{}}
}

// active says whether anyone listens, so that publishers can skip building statuses.
func (b *eventBus) active() bool { return b != nil && b.n.Load() > 0 }

func (b *eventBus) subscribe() *subscriber {
	sub := &subscriber{ch: make(chan *runtimeapi.ContainerEventResponse, eventBuffer), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(sub.done)
		return sub
	}
	b.subs[sub] = struct{}{}
	b.n.Add(1)
	return sub
}

func (b *eventBus) unsubscribe(sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[sub]; ok {
		delete(b.subs, sub)
		b.n.Add(-1)
	}
}

// publish hands ev to every subscriber without blocking.
func (b *eventBus) publish(ev *runtimeapi.ContainerEventResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		select {
		case sub.ch <- ev:
		default:
			b.onDrop()
			if sub.dropped.Add(1) == 1 {
				b.log.Warn("container events subscriber is too slow; dropping events", "buffer", eventBuffer)
			}
		}
	}
}

// close ends every subscription, so that their streams return (a server shutdown waits for open streams).
func (b *eventBus) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for sub := range b.subs {
		close(sub.done)
		delete(b.subs, sub)
	}
	b.n.Store(0)
}

// GetContainerEvents streams lifecycle events until the client goes away or the server closes.
func (s *RuntimeServer) GetContainerEvents(r *runtimeapi.GetEventsRequest, stream runtimeapi.RuntimeService_GetContainerEventsServer) error {
	ctx := stream.Context()
	sub := s.events.subscribe()
	defer s.events.unsubscribe(sub)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.done:
			return nil
		case ev := <-sub.ch:
			if n := sub.dropped.Swap(0); n > 0 {
				Logger(ctx).Warn("container events dropped: the subscriber did not keep up", "dropped", n)
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		}
	}
}

// emitContainerEvent publishes a change of a container of the pod podID.
func (s *RuntimeServer) emitContainerEvent(id, podID string, t runtimeapi.ContainerEventType) {
	if !s.events.active() {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: t, CreatedAt: time.Now().UnixNano(),
		ContainersStatuses: s.eventContainerStatuses(podID)}
	if pod, ok := s.pods.Get(podID); ok {
		ev.PodSandboxStatus = s.podStatus(pod)
	}
	s.events.publish(ev)
}

// emitPodEvent publishes changes of a pod. rec is the pod's record, or its last one when it was just removed; its
// state follows the event: created and started pods are ready, stopped and deleted ones are not.
func (s *RuntimeServer) emitPodEvent(rec podRecord, types ...runtimeapi.ContainerEventType) {
	if !s.events.active() {
		return
	}
	if cur, ok := s.pods.Get(rec.ID); ok {
		rec = cur
	}
	statuses := s.eventContainerStatuses(rec.ID)
	for _, t := range types {
		state := podNotReady
		if t == runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT || t == runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT {
			state = podReady
		}
		s.events.publish(&runtimeapi.ContainerEventResponse{ContainerId: rec.ID, ContainerEventType: t,
			CreatedAt: time.Now().UnixNano(), PodSandboxStatus: s.podStatusIn(rec, state), ContainersStatuses: statuses})
	}
}

func (s *RuntimeServer) eventContainerStatuses(podID string) []*runtimeapi.ContainerStatus {
	var out []*runtimeapi.ContainerStatus
	for _, c := range s.podContainers(podID) {
		if c.State != ctrCreating {
			out = append(out, s.containerStatus(c))
		}
	}
	return out
}
