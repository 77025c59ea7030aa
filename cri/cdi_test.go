package cri

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

func TestCDIDeviceNames(t *testing.T) {
	cdiDevs := func(names ...string) []*runtimeapi.CDIDevice {
		var out []*runtimeapi.CDIDevice
		for _, n := range names {
			out = append(out, &runtimeapi.CDIDevice{Name: n})
		}
		return out
	}
	cases := map[string]struct {
		devices     []*runtimeapi.CDIDevice
		annotations map[string]string
		want        []string
		field       string // of the InvalidArgument, when not ""
	}{
		"none":        {annotations: map[string]string{"other": "x"}},
		"field":       {devices: cdiDevs("a.io/gpu=0", "a.io/gpu=1"), want: []string{"a.io/gpu=0", "a.io/gpu=1"}},
		"annotations": {annotations: map[string]string{"cdi.k8s.io/b": "b.io/c=1,b.io/c=2", "cdi.k8s.io/a": "a.io/c=x"}, want: []string{"a.io/c=x", "b.io/c=1", "b.io/c=2"}},
		"field first, each once": {devices: cdiDevs("b.io/c=1", "a.io/c=1", "b.io/c=1"),
			annotations: map[string]string{"cdi.k8s.io/p": "a.io/c=1,c.io/c=9"}, want: []string{"b.io/c=1", "a.io/c=1", "c.io/c=9"}},
		"malformed field":      {devices: cdiDevs("a.io/gpu=0", "gpu0"), field: "config.cdi_devices[1].name"},
		"empty field":          {devices: cdiDevs(""), field: "config.cdi_devices[0].name"},
		"malformed annotation": {annotations: map[string]string{"cdi.k8s.io/plugin_dev": "a.io/c=1,,a.io/c=2"}, field: `config.annotations["cdi.k8s.io/plugin_dev"]`},
		"path in name":         {annotations: map[string]string{"cdi.k8s.io/x": "a.io/c=../../x"}, field: `config.annotations["cdi.k8s.io/x"]`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := cdiDevices(&runtimeapi.ContainerConfig{CDIDevices: tc.devices, Annotations: tc.annotations})
			if tc.field != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.HasPrefix(err.Error(), tc.field+": ") {
					t.Fatalf("err = %v, want InvalidArgument naming %s", err, tc.field)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("cdiDevices = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// fakeCDI knows the devices of its map, each adding one env var.
type fakeCDI map[string]string

func (f fakeCDI) Inject(spec *specs.Spec, devices []string) error {
	for _, d := range devices {
		env, ok := f[d]
		if !ok {
			return errdefs.NotFound("CDI device", d)
		}
		spec.Process.Env = append(spec.Process.Env, env)
		spec.Process.User.AdditionalGids = append(spec.Process.User.AdditionalGids, uint32(4200+len(env)))
	}
	return nil
}

// CreateContainer injects the CDI devices into the spec it writes, and a device that cannot be had fails the call
// with its code and leaves nothing behind.
func TestFakeCreateContainerCDI(t *testing.T) {
	withDevices := func(names ...string) *runtimeapi.ContainerConfig {
		c := testContainerConfig("app")
		for _, n := range names {
			c.CDIDevices = append(c.CDIDevices, &runtimeapi.CDIDevice{Name: n})
		}
		return c
	}
	known := fakeCDI{"test.io/dev=a": "CDI_A=1", "test.io/dev=b": "CDI_B=1"}
	t.Run("injected", func(t *testing.T) {
		s, h := newTestRuntimeServer(t)
		s.opts.CDI = known
		podCfg := testPodConfig("web")
		podID := runFakePod(t, s, h, podCfg)
		cfg := withDevices("test.io/dev=a")
		cfg.Annotations = map[string]string{"cdi.k8s.io/x": "test.io/dev=b"}
		id := createFakeContainer(t, s, podID, podCfg, cfg)
		spec := writtenSpec(t, s, id)
		for _, e := range []string{"CDI_A=1", "CDI_B=1"} {
			if !slices.Contains(spec.Process.Env, e) {
				t.Errorf("spec env %q lacks %q", spec.Process.Env, e)
			}
		}
		// The GIDs CDI added are the process's, so ContainerStatus reports them.
		st, err := s.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		if groups := st.GetStatus().GetUser().GetLinux().GetSupplementalGroups(); !slices.Contains(groups, 4207) {
			t.Errorf("status supplemental groups %v lack the CDI device's 4207", groups)
		}
	})
	cases := map[string]struct {
		cdi  CDIDevices
		cfg  *runtimeapi.ContainerConfig
		code codes.Code
		want string
	}{
		"unknown device": {known, withDevices("test.io/dev=a", "test.io/dev=zz"), codes.NotFound, `"test.io/dev=zz"`},
		"malformed name": {known, withDevices("zz"), codes.InvalidArgument, "config.cdi_devices[0].name"},
		"CDI off":        {nil, withDevices("test.io/dev=a"), codes.FailedPrecondition, "CDI is off"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s, h := newTestRuntimeServer(t)
			s.opts.CDI = tc.cdi
			podCfg := testPodConfig("web")
			podID := runFakePod(t, s, h, podCfg)
			_, err := s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: tc.cfg, SandboxConfig: podCfg})
			st := status.Convert(toStatus(err))
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
				t.Fatalf("CreateContainer: %v, want %v mentioning %q", err, tc.code, tc.want)
			}
			assertNoContainerLeft(t, s, h)
			createFakeContainer(t, s, podID, podCfg, testContainerConfig("app")) // the name was released
		})
	}
}
