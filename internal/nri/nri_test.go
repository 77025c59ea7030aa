package nri

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

type fakeRuntime struct{ synced chan int }

func (f fakeRuntime) SynchronizeNRI(ctx context.Context, cb adaptation.SyncCB) error {
	_, err := cb(ctx, []*adaptation.PodSandbox{{Id: "pod"}}, []*adaptation.Container{{Id: "ctr", PodSandboxId: "pod"}})
	f.synced <- 1
	return err
}

func (fakeRuntime) UpdateContainersNRI(context.Context, []*adaptation.ContainerUpdate) ([]*adaptation.ContainerUpdate, error) {
	return nil, nil
}

type syncPlugin struct{ got chan []string }

func (p syncPlugin) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.got <- []string{pods[0].GetId(), ctrs[0].GetId()}
	return nil, nil
}

func (syncPlugin) RunPodSandbox(context.Context, *api.PodSandbox) error { return nil }

// TestStart: the adaptation listens on the configured socket, synchronizes a connecting plugin with what the
// runtime gives it, and removes its socket when stopped.
func TestStart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{SocketPath: filepath.Join(dir, "nri", "nri.sock"), PluginPath: filepath.Join(dir, "plugins"),
		PluginConfigPath: filepath.Join(dir, "conf.d"), RegistrationTimeout: 5 * time.Second, RequestTimeout: 2 * time.Second}
	rt := fakeRuntime{synced: make(chan int, 1)}
	a, err := Start(cfg, "berth", "test", rt, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p := syncPlugin{got: make(chan []string, 1)}
	s, err := stub.New(p, stub.WithSocketPath(cfg.SocketPath), stub.WithPluginName("sync"), stub.WithPluginIdx("10"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	select {
	case got := <-p.got:
		if got[0] != "pod" || got[1] != "ctr" {
			t.Errorf("plugin synchronized with %v, want [pod ctr]", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("plugin not synchronized")
	}
	<-rt.synced
	a.Stop()
	if _, err := os.Stat(cfg.SocketPath); !os.IsNotExist(err) {
		t.Errorf("socket left after Stop: %v", err)
	}
}
