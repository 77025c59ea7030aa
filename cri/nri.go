package cri

import (
	"context"
	"fmt"
	"sync"
	"time"

	nriapi "github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/runtime-tools/generate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/internal/nri"
	"github.com/berthcri/berth/internal/version"
	"github.com/berthcri/berth/oci/specgen"
)

// NRI plugins (github.com/containerd/nri) see berth's pods and containers through the hooks in the RPCs, each one
// line calling into this file:
//
//   - RunPodSandbox, CreateContainer, StartContainer, UpdateContainerResources and UpdatePodSandboxResources wait
//     for the plugins, which may refuse (the call fails, rolled back) and, at CreateContainer and UpdateContainer,
//     adjust the container. The others (Post*, StopContainer when a container exits, RemoveContainer) are
//     notifications. StopPodSandbox and RemovePodSandbox wait for them too (plugins release what they hold for the
//     pod before it is torn down), but a failing plugin does not fail the stop.
//   - Every event of one pod, its own and its containers', goes through one queue per pod in the order it
//     happened, so a plugin never sees a container's StopContainer before its StartContainer, nor RemovePodSandbox
//     before the pod's RemoveContainers. Notifications are queued and sent from a goroutine; waiting events take
//     their turn in the same queue.
//   - No NRI call is made while holding a container lock that a plugin's UpdateContainers callback could need:
//     waiting events are sent before the RPC takes the lock, notifications from the queue. The exception is
//     CreateContainer, under the lock of a container no plugin knows yet; the callback refuses updates to
//     containers being created rather than wait for their lock.
//   - A plugin that connects is synchronized (SynchronizeNRI) with every pod and container in the records while
//     creations wait (nriBlockSync): a container is either in that list or created after the plugin is registered,
//     and so gets its CreateContainer; none is missed.
//
// The adaptation bounds every plugin call by [nri] request_timeout and drops a plugin that times out or dies,
// logging its name; the CRI call goes on without it.

// NRI is the adaptation (internal/nri.Start); unit tests pass a fake.
type NRI interface {
	RunPodSandbox(context.Context, *nriapi.RunPodSandboxRequest) error
	UpdatePodSandbox(context.Context, *nriapi.UpdatePodSandboxRequest) (*nriapi.UpdatePodSandboxResponse, error)
	PostUpdatePodSandbox(context.Context, *nriapi.PostUpdatePodSandboxRequest) error
	StopPodSandbox(context.Context, *nriapi.StopPodSandboxRequest) error
	RemovePodSandbox(context.Context, *nriapi.RemovePodSandboxRequest) error
	CreateContainer(context.Context, *nriapi.CreateContainerRequest) (*nriapi.CreateContainerResponse, error)
	PostCreateContainer(context.Context, *nriapi.PostCreateContainerRequest) error
	StartContainer(context.Context, *nriapi.StartContainerRequest) error
	PostStartContainer(context.Context, *nriapi.PostStartContainerRequest) error
	UpdateContainer(context.Context, *nriapi.UpdateContainerRequest) (*nriapi.UpdateContainerResponse, error)
	PostUpdateContainer(context.Context, *nriapi.PostUpdateContainerRequest) error
	StopContainer(context.Context, *nriapi.StopContainerRequest) (*nriapi.StopContainerResponse, error)
	RemoveContainer(context.Context, *nriapi.RemoveContainerRequest) error
	BlockPluginSync() *nriapi.PluginSyncBlock
	Stop()
}

// nriRelay is the server's NRI state; api is nil when NRI is off, and every hook returns at once then.
type nriRelay struct {
	api NRI

	mu          sync.Mutex
	queues      map[string]chan struct{} // per pod: closed when the pod's last queued event is done
	created     map[string]func()        // containers plugins were told of in CreateContainer: its sync unblock
	stoppedPods map[string]bool          // pods plugins got StopPodSandbox for: sent once
	stopped     map[string]bool          // containers plugins got StopContainer for: sent once, until removed
}

// nriNotifyTimeout bounds a queued notification's wait for its turn and its delivery (each plugin call is bounded
// by request_timeout; a queue holds few events).
const nriNotifyTimeout = time.Minute

// StartNRI starts the adaptation: berthd calls it after recovery, before serving the CRI.
func (s *RuntimeServer) StartNRI(cfg nri.Config) error {
	a, err := nri.Start(cfg, "berth", version.Version, s, s.log)
	if err != nil {
		return err
	}
	s.setNRI(a)
	return nil
}

func (s *RuntimeServer) setNRI(a NRI) {
	s.nri.mu.Lock()
	defer s.nri.mu.Unlock()
	s.nri.api = a
	s.nri.queues, s.nri.created = map[string]chan struct{}{}, map[string]func(){}
	s.nri.stoppedPods, s.nri.stopped = map[string]bool{}, map[string]bool{}
}

func (s *RuntimeServer) nriAPI() NRI {
	s.nri.mu.Lock()
	defer s.nri.mu.Unlock()
	return s.nri.api
}

func (s *RuntimeServer) stopNRI() {
	if a := s.nriAPI(); a != nil {
		a.Stop()
	}
}

// nriInOrder runs f after the pod's earlier events: at once, waiting for them, when wait is set, else from a
// goroutine. A waiting call that gives up its turn because ctx ended returns ctx's error, f not run.
func (s *RuntimeServer) nriInOrder(ctx context.Context, podID string, wait bool, f func(context.Context)) error {
	s.nri.mu.Lock()
	prev := s.nri.queues[podID]
	done := make(chan struct{})
	s.nri.queues[podID] = done
	s.nri.mu.Unlock()
	run := func(ctx context.Context) error {
		defer func() {
			close(done)
			s.nri.mu.Lock()
			if s.nri.queues[podID] == done {
				delete(s.nri.queues, podID)
			}
			s.nri.mu.Unlock()
		}()
		if prev != nil {
			select {
			case <-prev:
			case <-ctx.Done():
				return fmt.Errorf("waiting for the pod's earlier NRI events: %w", ctx.Err())
			}
		}
		f(ctx)
		return nil
	}
	if wait {
		return run(ctx)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nriNotifyTimeout)
		defer cancel()
		if err := run(ctx); err != nil {
			Logger(ctx).Warn("NRI notification dropped", "pod", podID, "err", err)
		}
	}()
	return nil
}

// nriFailed is the error of a CRI call a plugin refused: the plugin's message, FailedPrecondition.
func nriFailed(event string, err error) error {
	return fmt.Errorf("NRI plugin failed %s: %v: %w", event, err, errdefs.ErrFailedPrecondition)
}

// nriBlockSync holds off synchronizing a connecting plugin until the creation it is called for is recorded.
func (s *RuntimeServer) nriBlockSync() func() {
	a := s.nriAPI()
	if a == nil {
		return func() {}
	}
	return a.BlockPluginSync().Unblock
}

// nriRunPod tells plugins of a pod before it is ready. A refusal is the error; the caller rolls the pod back through
// its one undo path (abandonPod).
func (s *RuntimeServer) nriRunPod(ctx context.Context, rec podRecord, pod PodRuntime) error {
	a := s.nriAPI()
	if a == nil {
		return nil
	}
	p := nriPod(rec, pod)
	var err error
	if qerr := s.nriInOrder(ctx, rec.ID, true, func(ctx context.Context) {
		err = a.RunPodSandbox(ctx, &nriapi.RunPodSandboxRequest{Pod: p})
	}); qerr != nil {
		err = qerr
	}
	if err == nil {
		return nil
	}
	// Plugins before the one that failed saw the pod: they are told it is gone.
	_ = s.nriInOrder(ctx, rec.ID, false, func(ctx context.Context) {
		_ = a.RemovePodSandbox(ctx, &nriapi.RemovePodSandboxRequest{Pod: p})
	})
	return nriFailed("RunPodSandbox", err)
}

// nriStopPod tells plugins a pod is stopping, once, after its containers stopped and before its network and
// namespaces go.
func (s *RuntimeServer) nriStopPod(ctx context.Context, id string) {
	a := s.nriAPI()
	rec, ok := s.pods.Get(id)
	if a == nil || !ok || rec.State == podCreating {
		return
	}
	// The exits stopPod waited for may not be queued yet (the exit watcher queues them once recorded): queue them
	// here, so that plugins see the containers stop before the pod.
	for _, c := range s.podContainers(id) {
		if c.State == ctrExited {
			s.nriStopOnce(ctx, c)
		}
	}
	s.nri.mu.Lock()
	sent := s.nri.stoppedPods[id]
	s.nri.stoppedPods[id] = true
	s.nri.mu.Unlock()
	if sent {
		return
	}
	p := nriPod(rec, s.sandboxPod(id))
	if err := s.nriInOrder(ctx, id, true, func(ctx context.Context) {
		if err := a.StopPodSandbox(ctx, &nriapi.StopPodSandboxRequest{Pod: p}); err != nil {
			Logger(ctx).Warn("NRI StopPodSandbox failed", "pod", id, "err", err)
		}
	}); err != nil {
		Logger(ctx).Warn("NRI StopPodSandbox not sent", "pod", id, "err", err)
	}
}

// nriRemovePod tells plugins a pod is gone.
func (s *RuntimeServer) nriRemovePod(ctx context.Context, rec podRecord) {
	a := s.nriAPI()
	if a == nil {
		return
	}
	s.nri.mu.Lock()
	delete(s.nri.stoppedPods, rec.ID)
	s.nri.mu.Unlock()
	p := nriPod(rec, nil)
	if err := s.nriInOrder(ctx, rec.ID, true, func(ctx context.Context) {
		if err := a.RemovePodSandbox(ctx, &nriapi.RemovePodSandboxRequest{Pod: p}); err != nil {
			Logger(ctx).Warn("NRI RemovePodSandbox failed", "pod", rec.ID, "err", err)
		}
	}); err != nil {
		Logger(ctx).Warn("NRI RemovePodSandbox not sent", "pod", rec.ID, "err", err)
	}
}

// nriAdjust is the container stage of NRI (container_stages.go).
func (s *RuntimeServer) nriAdjust(ctx context.Context, b *ctrBuild) error {
	return s.nriCreateContainer(ctx, b.podRec, b.rec, b.spec)
}

// nriCreateContainer lets plugins adjust a container's spec after berth built it and before it is written. The
// caller holds the container's lock: the UpdateContainers callback refuses containers being created. A plugin
// connecting from here until nriCreated is synchronized after it, so that it gets the container either way.
func (s *RuntimeServer) nriCreateContainer(ctx context.Context, podRec podRecord, rec containerRecord, spec *specs.Spec) error {
	a := s.nriAPI()
	if a == nil {
		return nil
	}
	unblock := s.nriBlockSync()
	s.nri.mu.Lock()
	s.nri.created[rec.ID] = unblock
	s.nri.mu.Unlock()
	req := &nriapi.CreateContainerRequest{Pod: nriPod(podRec, s.sandboxPod(podRec.ID)), Container: nriContainer(rec, spec)}
	var resp *nriapi.CreateContainerResponse
	var err error
	if qerr := s.nriInOrder(ctx, podRec.ID, true, func(ctx context.Context) { resp, err = a.CreateContainer(ctx, req) }); qerr != nil {
		err = qerr
	}
	if err != nil {
		return nriFailed("CreateContainer", err)
	}
	if err := generate.SpecGenerator(specEditor{spec}).Adjust(resp.GetAdjust()); err != nil {
		return fmt.Errorf("apply the NRI plugins' adjustment: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	s.nriApplyLater(ctx, resp.GetUpdate(), resp.GetEvict())
	return nil
}

// nriCreated follows CreateContainer: PostCreateContainer when it succeeded, else StopContainer and
// RemoveContainer to the plugins that saw its CreateContainer.
func (s *RuntimeServer) nriCreated(ctx context.Context, id, podID string, err error) {
	a := s.nriAPI()
	if a == nil {
		return
	}
	s.nri.mu.Lock()
	unblock, told := s.nri.created[id]
	delete(s.nri.created, id)
	s.nri.mu.Unlock()
	if !told {
		return
	}
	unblock()
	if err == nil {
		s.nriNotify(ctx, id, func(ctx context.Context, p *nriapi.PodSandbox, c *nriapi.Container) error {
			return a.PostCreateContainer(ctx, &nriapi.PostCreateContainerRequest{Pod: p, Container: c})
		})
		return
	}
	if _, kept := s.containers.Get(id); kept {
		return // its rollback failed: it stays listed, and the kubelet's RemoveContainer tells plugins (nriRemoved)
	}
	s.nri.mu.Lock()
	stopSent := s.nri.stopped[id] // by the rollback's recorded exit
	delete(s.nri.stopped, id)
	s.nri.mu.Unlock()
	pod, ok := s.pods.Get(podID)
	if !ok {
		return
	}
	p, c := nriPod(pod, nil), &nriapi.Container{Id: id, PodSandboxId: podID, State: nriapi.ContainerState_CONTAINER_STOPPED}
	_ = s.nriInOrder(ctx, podID, false, func(ctx context.Context) {
		if !stopSent {
			_, _ = a.StopContainer(ctx, &nriapi.StopContainerRequest{Pod: p, Container: c})
		}
		_ = a.RemoveContainer(ctx, &nriapi.RemoveContainerRequest{Pod: p, Container: c})
	})
}

// nriStartContainer lets plugins refuse a start; called before StartContainer takes the container's lock.
func (s *RuntimeServer) nriStartContainer(ctx context.Context, id string) error {
	a := s.nriAPI()
	rec, ok := s.containers.Get(id)
	if a == nil || !ok || rec.State != ctrCreated {
		return nil // StartContainer reports it
	}
	pod, _ := s.pods.Get(rec.PodID)
	p, c := nriPod(pod, s.sandboxPod(rec.PodID)), nriContainer(rec, s.loadSpec(rec))
	var err error
	if qerr := s.nriInOrder(ctx, rec.PodID, true, func(ctx context.Context) {
		err = a.StartContainer(ctx, &nriapi.StartContainerRequest{Pod: p, Container: c})
	}); qerr != nil {
		err = qerr
	}
	if err != nil {
		return nriFailed("StartContainer", err)
	}
	return nil
}

// nriStarted queues PostStartContainer.
func (s *RuntimeServer) nriStarted(ctx context.Context, id string) {
	if a := s.nriAPI(); a != nil {
		s.nriNotify(ctx, id, func(ctx context.Context, p *nriapi.PodSandbox, c *nriapi.Container) error {
			return a.PostStartContainer(ctx, &nriapi.PostStartContainerRequest{Pod: p, Container: c})
		})
	}
}

// nriStopped queues StopContainer when a container's exit is recorded, however it came.
func (s *RuntimeServer) nriStopped(ctx context.Context, id string) {
	if rec, ok := s.containers.Get(id); ok && s.nriAPI() != nil {
		s.nriStopOnce(ctx, rec)
	}
}

// nriStopOnce queues a container's StopContainer unless it was queued before; plugins may ask for other
// containers' updates in reply.
func (s *RuntimeServer) nriStopOnce(ctx context.Context, rec containerRecord) {
	a := s.nriAPI()
	s.nri.mu.Lock()
	sent := s.nri.stopped[rec.ID]
	s.nri.stopped[rec.ID] = true
	s.nri.mu.Unlock()
	if sent {
		return
	}
	s.nriNotifyRec(ctx, rec, func(ctx context.Context, p *nriapi.PodSandbox, c *nriapi.Container) error {
		resp, err := a.StopContainer(ctx, &nriapi.StopContainerRequest{Pod: p, Container: c})
		s.nriApplyLater(ctx, resp.GetUpdate(), nil)
		return err
	})
}

// nriRemoved queues RemoveContainer; rec is the removed container's last record.
func (s *RuntimeServer) nriRemoved(ctx context.Context, rec containerRecord) {
	a := s.nriAPI()
	if a == nil {
		return
	}
	s.nriStopOnce(ctx, rec) // its exit may not be queued yet
	s.nri.mu.Lock()
	delete(s.nri.stopped, rec.ID)
	s.nri.mu.Unlock()
	pod, _ := s.pods.Get(rec.PodID)
	p, c := nriPod(pod, nil), nriContainer(rec, nil)
	_ = s.nriInOrder(ctx, rec.PodID, false, func(ctx context.Context) {
		if err := a.RemoveContainer(ctx, &nriapi.RemoveContainerRequest{Pod: p, Container: c}); err != nil {
			Logger(ctx).Warn("NRI RemoveContainer failed", "container", rec.ID, "err", err)
		}
	})
}

// nriNotify queues a notification about a container, built from its record when its turn comes.
func (s *RuntimeServer) nriNotify(ctx context.Context, id string, send func(context.Context, *nriapi.PodSandbox, *nriapi.Container) error) {
	if rec, ok := s.containers.Get(id); ok {
		s.nriNotifyRec(ctx, rec, send)
	}
}

// nriNotifyRec is nriNotify with the record in hand, which stands in when the container is gone by its turn.
func (s *RuntimeServer) nriNotifyRec(ctx context.Context, rec containerRecord, send func(context.Context, *nriapi.PodSandbox, *nriapi.Container) error) {
	id := rec.ID
	_ = s.nriInOrder(ctx, rec.PodID, false, func(ctx context.Context) {
		if cur, ok := s.containers.Get(id); ok {
			rec = cur
		}
		pod, _ := s.pods.Get(rec.PodID)
		if err := send(ctx, nriPod(pod, s.sandboxPod(rec.PodID)), nriContainer(rec, s.loadSpec(rec))); err != nil {
			Logger(ctx).Warn("NRI notification failed", "container", id, "err", err)
		}
	})
}

// nriUpdateContainer lets plugins adjust a resource update before it is applied; called before the container's
// lock is taken. It returns the update to apply.
func (s *RuntimeServer) nriUpdateContainer(ctx context.Context, rec containerRecord, upd *runtimeapi.LinuxContainerResources) (*runtimeapi.LinuxContainerResources, error) {
	a := s.nriAPI()
	if a == nil || (rec.State != ctrCreated && rec.State != ctrRunning) {
		return upd, nil // an exited container's update changes only its record: nothing for plugins
	}
	res, err := specgen.Resources(resources(mergeResources(rec.Config.GetLinux().GetResources(), upd)), s.opts.Host)
	if err != nil {
		return nil, fmt.Errorf("update container %s: %w", rec.ID, err)
	}
	pod, _ := s.pods.Get(rec.PodID)
	req := &nriapi.UpdateContainerRequest{Pod: nriPod(pod, s.sandboxPod(rec.PodID)), Container: nriContainer(rec, s.loadSpec(rec)),
		LinuxResources: nriapi.FromOCILinuxResources(res, nil)}
	var resp *nriapi.UpdateContainerResponse
	if qerr := s.nriInOrder(ctx, rec.PodID, true, func(ctx context.Context) { resp, err = a.UpdateContainer(ctx, req) }); qerr != nil {
		err = qerr
	}
	if err != nil {
		return nil, nriFailed("UpdateContainer", err)
	}
	var others []*nriapi.ContainerUpdate
	for _, u := range resp.GetUpdate() {
		if u.GetContainerId() == rec.ID {
			upd = criResources(u.GetLinux().GetResources())
			continue
		}
		others = append(others, u)
	}
	s.nriApplyLater(ctx, others, resp.GetEvict())
	return upd, nil
}

// nriUpdated queues PostUpdateContainer after nriUpdateContainer's UpdateContainer.
func (s *RuntimeServer) nriUpdated(ctx context.Context, id string) {
	if rec, ok := s.containers.Get(id); !ok || (rec.State != ctrCreated && rec.State != ctrRunning) {
		return
	}
	if a := s.nriAPI(); a != nil {
		s.nriNotify(ctx, id, func(ctx context.Context, p *nriapi.PodSandbox, c *nriapi.Container) error {
			return a.PostUpdateContainer(ctx, &nriapi.PostUpdateContainerRequest{Pod: p, Container: c})
		})
	}
}

// nriUpdatePod relays UpdatePodSandboxResources: plugins may refuse it; PostUpdatePodSandbox follows.
func (s *RuntimeServer) nriUpdatePod(ctx context.Context, rec podRecord, overhead, res *runtimeapi.LinuxContainerResources) error {
	a := s.nriAPI()
	if a == nil {
		return nil
	}
	req := &nriapi.UpdatePodSandboxRequest{Pod: nriPod(rec, s.sandboxPod(rec.ID))}
	if overhead != nil {
		req.OverheadLinuxResources = nriCRIResources(overhead)
	}
	if res != nil {
		req.LinuxResources = nriCRIResources(res)
	}
	var err error
	if qerr := s.nriInOrder(ctx, rec.ID, true, func(ctx context.Context) { _, err = a.UpdatePodSandbox(ctx, req) }); qerr != nil {
		err = qerr
	}
	if err != nil {
		return nriFailed("UpdatePodSandbox", err)
	}
	_ = s.nriInOrder(ctx, rec.ID, false, func(ctx context.Context) {
		if err := a.PostUpdatePodSandbox(ctx, &nriapi.PostUpdatePodSandboxRequest{Pod: req.Pod}); err != nil {
			Logger(ctx).Warn("NRI PostUpdatePodSandbox failed", "pod", rec.ID, "err", err)
		}
	})
	return nil
}
