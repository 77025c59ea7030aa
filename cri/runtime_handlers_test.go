package cri

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/kernel"
)

func TestStatusListsRuntimeHandlers(t *testing.T) {
	s, _ := newTestRuntimeServer(t)
	s.opts.RuntimeHandlers = []RuntimeHandler{{Name: "crun", RecursiveReadOnly: true}, {Name: "kata", UserNamespaces: true}}
	st, err := s.Status(context.Background(), &runtimeapi.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	rro := kernel.MountSetattr() == nil
	userns := s.userNamespaces() == nil
	want := []struct {
		name        string
		rro, userns bool
	}{{"", rro, userns}, {"runc", rro, userns}, {"crun", rro, false}, {"kata", false, userns}}
	got := st.GetRuntimeHandlers()
	if len(got) != len(want) {
		t.Fatalf("Status lists %d handlers, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		h := got[i]
		if h.GetName() != w.name || h.GetFeatures().GetRecursiveReadOnlyMounts() != w.rro || h.GetFeatures().GetUserNamespaces() != w.userns {
			t.Errorf("handler %d = %v, want %+v", i, h, w)
		}
	}
}

func TestRunPodSandboxRuntimeHandler(t *testing.T) {
	tests := map[string]struct {
		handler string
		code    codes.Code
	}{
		"default":    {"", codes.OK},
		"runc":       {"runc", codes.OK},
		"configured": {"crun", codes.OK},
		"unknown":    {"kata", codes.NotFound},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, h := newTestRuntimeServer(t)
			s.opts.RuntimeHandlers = []RuntimeHandler{{Name: "crun"}}
			r, err := s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: testPodConfig("p"), RuntimeHandler: tc.handler})
			if got := status.Code(toStatus(err)); got != tc.code {
				t.Fatalf("RunPodSandbox(%q) = %v, want %v", tc.handler, err, tc.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "runtime_handler") {
					t.Errorf("error %q does not name runtime_handler", err)
				}
				return
			}
			h.mu.Lock()
			got := h.pods[r.PodSandboxId].cfg.RuntimeHandler
			h.mu.Unlock()
			if got != tc.handler {
				t.Errorf("the pod runtime got handler %q, want %q", got, tc.handler)
			}
			ps, err := s.PodSandboxStatus(context.Background(), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: r.PodSandboxId})
			if err != nil || ps.GetStatus().GetRuntimeHandler() != tc.handler {
				t.Errorf("PodSandboxStatus: %v, handler %q", err, ps.GetStatus().GetRuntimeHandler())
			}
		})
	}
}

// A pod with its own user namespace needs a handler tested with them.
func TestRuntimeHandlerUserNamespaces(t *testing.T) {
	s, _ := newTestRuntimeServer(t)
	s.opts.RuntimeHandlers = []RuntimeHandler{{Name: "crun"}, {Name: "kata", UserNamespaces: true}}
	m := []*runtimeapi.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}
	cfg := testPodConfig("p")
	cfg.Linux.SecurityContext = &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
		UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: m, Gids: m}}}
	for handler, code := range map[string]codes.Code{"": codes.OK, "kata": codes.OK, "crun": codes.FailedPrecondition} {
		err := s.checkRuntimeHandler(&runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
		if got := status.Code(toStatus(err)); got != code {
			t.Errorf("handler %q: %v, want %v", handler, err, code)
		}
	}
}

// The handler's pod_annotations reach its containers' specs; berth's own keys are not overwritten.
func TestPodAnnotationsPassed(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	s.opts.RuntimeHandlers = []RuntimeHandler{{Name: "kata", PodAnnotations: []string{"io.katacontainers.*", "exact.key", "io.kubernetes.cri.*"}}}
	if _, err := (fakeImages{h}).Pull(context.Background(), testImage, nil); err != nil {
		t.Fatal(err)
	}
	for handler, want := range map[string]map[string]string{
		"kata": {"io.katacontainers.config.hypervisor.default_vcpus": "2", "exact.key": "v"},
		"":     {},
	} {
		cfg := testPodConfig("p" + handler)
		cfg.Annotations = map[string]string{"io.katacontainers.config.hypervisor.default_vcpus": "2", "exact.key": "v",
			"exact.key.longer": "no", "other": "no", "io.kubernetes.cri.sandbox-id": "forged"}
		podID, spec := handlerContainerSpec(t, s, cfg, handler)
		for k := range cfg.Annotations {
			_, got := spec.Annotations[k]
			if _, w := want[k]; got != w && k != "io.kubernetes.cri.sandbox-id" {
				t.Errorf("handler %q: annotation %s in the spec: %v, want %v", handler, k, got, w)
			}
		}
		if got := spec.Annotations["io.kubernetes.cri.sandbox-id"]; got != podID {
			t.Errorf("handler %q: sandbox-id annotation %q, want the pod's id", handler, got)
		}
	}
}

// A handler's containers get an ociVersion no newer than its binary states (probed once by berthd); a built-in
// handler's keep berth's.
func TestSpecVersionFitsHandler(t *testing.T) {
	s, h := newTestRuntimeServer(t)
	s.opts.RuntimeHandlers = []RuntimeHandler{{Name: "crun", SpecVersion: "1.0.0"}}
	if _, err := (fakeImages{h}).Pull(context.Background(), testImage, nil); err != nil {
		t.Fatal(err)
	}
	for handler, want := range map[string]string{"crun": "1.0.0", "": specs.Version} {
		cfg := testPodConfig("v" + handler)
		_, spec := handlerContainerSpec(t, s, cfg, handler)
		if spec.Version != want {
			t.Errorf("handler %q: ociVersion %s, want %s", handler, spec.Version, want)
		}
	}
}

// handlerContainerSpec runs a pod of cfg under handler and a container in it, and returns the pod's id and the
// container's written spec.
func handlerContainerSpec(t *testing.T, s *RuntimeServer, cfg *runtimeapi.PodSandboxConfig, handler string) (string, specs.Spec) {
	t.Helper()
	r, err := s.RunPodSandbox(context.Background(), &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatal(err)
	}
	id := createFakeContainer(t, s, r.PodSandboxId, cfg, testContainerConfig("c"))
	return r.PodSandboxId, writtenSpec(t, s, id)
}

// writtenSpec is the OCI spec cri wrote into the container's bundle.
func writtenSpec(t *testing.T, s *RuntimeServer, id string) specs.Spec {
	t.Helper()
	rec, _ := s.containers.Get(id)
	var spec specs.Spec
	if err := json.Unmarshal(must(os.ReadFile(filepath.Join(rec.Bundle, "config.json"))), &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}
