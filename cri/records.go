package cri

import (
	"slices"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/oci/monitor"
)

// Records are the truth berthd keeps on disk (internal/store, one JSON file each, under <root>/pods and
// <root>/containers); everything else in memory is rebuilt from them, the pod runtime dirs and the monitors.
//
// Pod states, as podRecord.transition checks them (podMoves):
//
//	RunPodSandbox ─► creating ──ok──► ready ──StopPodSandbox, monitor or pause died──► notready ─► (record deleted)
//	                    │                                                                 ▲    RemovePodSandbox
//	                    ├─fails, rolled back─► (record deleted)                           │
//	                    └─fails, rollback failed too───────────────────────────────────────┘
//
// A berthd that dies during creating finds the record at start and rolls the pod back; a pod whose rollback fails is
// kept notready for RemovePodSandbox to retry. A pod whose monitor or pause process dies (berthd waits on their
// pidfds, monitors.go), whose monitor is gone at start, or whose runtime dir vanished with a reboot, goes ready →
// notready. StopPodSandbox of a notready pod stays notready.
//
// Container states, as containerRecord.transition checks them (containerMoves):
//
//	CreateContainer ─► creating ──ok──► created ──StartContainer──► running ──process exits, StopContainer──► exited
//	                      │                └──StopContainer, exit before start, monitor died───────────────────┘
//	                      ├─fails, rolled back─► (record deleted)                                               │
//	                      └─fails, rollback failed too: exit code 255 ───────────────────────────────────────────┘
//	                                                                         RemoveContainer (any state) ─► deleted
//
// The monitor records each exit in <bundle>/exit.json; berthd watches for it (exits.go) and moves running → exited.
// When the monitor dies, berthd kills its created and running containers and moves them to exited itself: exit code
// 137, reason MonitorDied. A record is deleted by the undo of its stages (container_stages.go) or RemovePodSandbox,
// never by a transition.
type (
	podState       string
	containerState string
)

const (
	podCreating podState = "creating"
	podReady    podState = "ready"
	podNotReady podState = "notready"

	ctrCreating containerState = "creating"
	ctrCreated  containerState = "created"
	ctrRunning  containerState = "running"
	ctrExited   containerState = "exited"
)

const (
	podRecordVersion       = 1
	containerRecordVersion = 1
)

type podRecord struct {
	ID             string                       `json:"id"`
	Config         *runtimeapi.PodSandboxConfig `json:"config"` // as the kubelet sent it: labels etc. round-trip
	RuntimeHandler string                       `json:"runtime_handler,omitempty"`
	State          podState                     `json:"state"`
	CreatedAt      int64                        `json:"created_at"` // unix nanoseconds
	IPs            []string                     `json:"ips,omitempty"`
}

type containerRecord struct {
	ID        string                      `json:"id"`
	PodID     string                      `json:"pod_id"`
	Config    *runtimeapi.ContainerConfig `json:"config"`
	ImageID   string                      `json:"image_id"`   // config digest: image_ref and image_id in statuses
	ImageName string                      `json:"image_name"` // as requested, for ContainerStatus.image
	State     containerState              `json:"state"`
	CreatedAt int64                       `json:"created_at"`
	StartedAt int64                       `json:"started_at,omitempty"`
	// FinishedAt, ExitCode, Reason and Message are set when the container exited.
	FinishedAt int64  `json:"finished_at,omitempty"`
	ExitCode   int32  `json:"exit_code,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Message    string `json:"message,omitempty"`
	LogPath    string `json:"log_path,omitempty"` // absolute
	Bundle     string `json:"bundle"`             // <pod dir>/containers/<id>: config.json, rootfs, exit.json
	// User is the effective identity of the container's process, for ContainerStatus.user.
	UID            int64   `json:"uid"`
	GID            int64   `json:"gid"`
	AdditionalGIDs []int64 `json:"additional_gids,omitempty"`
	StopSignal     string  `json:"stop_signal,omitempty"`
	// ImageVolumes are the image mounts (image_volumes.go), known before anything of them is mounted.
	ImageVolumes []imageVolume `json:"image_volumes,omitempty"`
}

// podMoves and containerMoves are the legal transitions; "" is a record not yet made.
var (
	podMoves = map[podState][]podState{
		"":          {podCreating},
		podCreating: {podReady, podNotReady},
		podReady:    {podNotReady},
		podNotReady: {podNotReady},
	}
	containerMoves = map[containerState][]containerState{
		"":          {ctrCreating},
		ctrCreating: {ctrCreated, ctrExited},
		ctrCreated:  {ctrRunning, ctrExited},
		ctrRunning:  {ctrExited},
	}
)

// transition moves the pod to state to; it is the only writer of State. An illegal move is an error wrapping
// errdefs.ErrFailedPrecondition and changes nothing.
func (p *podRecord) transition(to podState) error {
	if !slices.Contains(podMoves[p.State], to) {
		return errdefs.FailedPrecondition("pod sandbox %s: cannot go from %s to %s", p.ID, stateName(p.State), to)
	}
	p.State = to
	return nil
}

// transition moves the container to state to; it is the only writer of State. An illegal move is an error wrapping
// errdefs.ErrFailedPrecondition and changes nothing.
func (c *containerRecord) transition(to containerState) error {
	if !slices.Contains(containerMoves[c.State], to) {
		return errdefs.FailedPrecondition("container %s: cannot go from %s to %s", c.ID, stateName(c.State), to)
	}
	c.State = to
	return nil
}

func stateName[S ~string](s S) string {
	if s == "" {
		return "nothing"
	}
	return string(s)
}

// exitReason is the CRI reason for an exit: what the kubelet shows as the container's last state.
func exitReason(e *monitor.Exit) string {
	switch {
	case e.OOMKilled:
		return "OOMKilled"
	case e.ExitCode == 0:
		return "Completed"
	}
	return "Error"
}
