package cri

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeAppArmor is the default profile's keeper; err fails Ensure.
type fakeAppArmor struct {
	mu      sync.Mutex
	ensured int
	err     error
}

func (f *fakeAppArmor) Ensure(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensured++
	return f.err
}

// withAppArmor turns AppArmor on in s's host, with berth-default kept by the returned fake.
func withAppArmor(s *RuntimeServer) *fakeAppArmor {
	f := &fakeAppArmor{}
	s.opts.Host.AppArmor, s.opts.Host.AppArmorDefaultProfile = true, "berth-default"
	s.opts.AppArmor = f
	return f
}

func specProfile(t *testing.T, s *RuntimeServer, id string) string {
	t.Helper()
	rec, ok := s.containers.Get(id)
	if !ok {
		t.Fatalf("no record of %s", id)
	}
	b, err := os.ReadFile(filepath.Join(rec.Bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	return spec.Process.ApparmorProfile
}

// A container with no profile runs under the default profile, loaded (again if need be) before it is used.
func TestAppArmorDefaultProfileEnsured(t *testing.T) {
	for name, tc := range map[string]struct {
		sc          *runtimeapi.LinuxContainerSecurityContext
		want        string
		wantEnsured int
	}{
		"unset":           {sc: &runtimeapi.LinuxContainerSecurityContext{}, want: "berth-default", wantEnsured: 1},
		"runtime default": {sc: &runtimeapi.LinuxContainerSecurityContext{Apparmor: &runtimeapi.SecurityProfile{}}, want: "berth-default", wantEnsured: 1},
		"unconfined": {sc: &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}},
		"localhost": {sc: &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost/loaded-x"}},
			want: "loaded-x"},
	} {
		t.Run(name, func(t *testing.T) {
			s, h := newTestRuntimeServer(t)
			aa := withAppArmor(s)
			podCfg := testPodConfig("web")
			podID := runFakePod(t, s, h, podCfg)
			cfg := testContainerConfig("app")
			cfg.Linux.SecurityContext = tc.sc
			id := createFakeContainer(t, s, podID, podCfg, cfg)
			if got := specProfile(t, s, id); got != tc.want {
				t.Errorf("profile %q, want %q", got, tc.want)
			}
			if aa.ensured != tc.wantEnsured {
				t.Errorf("default profile ensured %d times, want %d", aa.ensured, tc.wantEnsured)
			}
		})
	}
}

// A default profile that cannot be loaded fails the create, undone; a Localhost profile that is not loaded too.
func TestAppArmorCreateFails(t *testing.T) {
	for name, tc := range map[string]struct {
		ensureErr error
		sc        *runtimeapi.LinuxContainerSecurityContext
	}{
		"default not loadable": {ensureErr: errors.New("apparmor_parser: syntax error")},
		"localhost not loaded": {sc: &runtimeapi.LinuxContainerSecurityContext{
			Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "localhost/not-there"}}},
		"deprecated localhost not loaded": {sc: &runtimeapi.LinuxContainerSecurityContext{ApparmorProfile: "localhost/not-there"}},
	} {
		t.Run(name, func(t *testing.T) {
			s, h := newTestRuntimeServer(t)
			withAppArmor(s).err = tc.ensureErr
			podCfg := testPodConfig("web")
			podID := runFakePod(t, s, h, podCfg)
			cfg := testContainerConfig("app")
			cfg.Linux.SecurityContext = tc.sc
			_, err := s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: podID,
				Config: cfg, SandboxConfig: podCfg})
			if got := status.Code(toStatus(err)); got != codes.FailedPrecondition {
				t.Fatalf("CreateContainer: %v (%v), want FailedPrecondition", got, err)
			}
			assertNoContainerLeft(t, s, h)
		})
	}
}

// Status tells whether AppArmor is on and which profile RuntimeDefault means.
func TestStatusAppArmor(t *testing.T) {
	for name, tc := range map[string]struct {
		enabled bool
		def     string
		note    string
		want    appArmorInfo
	}{
		"off":        {want: appArmorInfo{}},
		"default":    {enabled: true, def: "berth-default", want: appArmorInfo{Enabled: true, DefaultProfile: "berth-default"}},
		"no default": {enabled: true, note: "no apparmor_parser", want: appArmorInfo{Enabled: true, Note: "no apparmor_parser"}},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := newTestRuntimeServer(t)
			s.opts.Host.AppArmor, s.opts.Host.AppArmorDefaultProfile, s.opts.AppArmorNote = tc.enabled, tc.def, tc.note
			r, err := s.Status(context.Background(), &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			var got appArmorInfo
			if err := json.Unmarshal([]byte(r.GetInfo()["apparmor"]), &got); err != nil {
				t.Fatalf("info apparmor %q: %v", r.GetInfo()["apparmor"], err)
			}
			if got != tc.want {
				t.Errorf("apparmor %+v, want %+v", got, tc.want)
			}
		})
	}
}
