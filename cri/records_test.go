package cri

import (
	"slices"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

// The machines drawn in records.go, written out again here: every (from, to) pair is tried, the legal ones move,
// every other one is rejected and changes nothing.
func TestTransitions(t *testing.T) {
	podLegal := []string{"→creating", "creating→ready", "creating→notready", "ready→notready", "notready→notready"}
	ctrLegal := []string{"→creating", "creating→created", "creating→exited", "created→running", "created→exited",
		"running→exited"}
	podStates := []podState{"", podCreating, podReady, podNotReady}
	ctrStates := []containerState{"", ctrCreating, ctrCreated, ctrRunning, ctrExited}
	for _, from := range podStates {
		for _, to := range podStates {
			move := string(from) + "→" + string(to)
			t.Run("pod "+move, func(t *testing.T) {
				rec := podRecord{ID: "p", State: from}
				checkMove(t, rec.transition(to), slices.Contains(podLegal, move), string(rec.State), string(from), string(to))
			})
		}
	}
	for _, from := range ctrStates {
		for _, to := range ctrStates {
			move := string(from) + "→" + string(to)
			t.Run("container "+move, func(t *testing.T) {
				rec := containerRecord{ID: "c", State: from}
				checkMove(t, rec.transition(to), slices.Contains(ctrLegal, move), string(rec.State), string(from), string(to))
			})
		}
	}
}

func checkMove(t *testing.T, err error, legal bool, got, from, to string) {
	t.Helper()
	switch {
	case legal && (err != nil || got != to):
		t.Fatalf("legal move: err %v, state %q", err, got)
	case !legal && (!errdefs.IsFailedPrecondition(err) || got != from):
		t.Fatalf("illegal move: err %v, state %q; want a failed precondition and %q", err, got, from)
	}
}
