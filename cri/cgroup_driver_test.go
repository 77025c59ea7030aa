package cri

import (
	"context"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The driver in use, "auto" resolved, reaches the kubelet (RuntimeConfig) and an operator (crictl info).
func TestCgroupDriverReported(t *testing.T) {
	for driver, want := range map[string]runtimeapi.CgroupDriver{
		"cgroupfs": runtimeapi.CgroupDriver_CGROUPFS,
		"systemd":  runtimeapi.CgroupDriver_SYSTEMD,
	} {
		t.Run(driver, func(t *testing.T) {
			s, _ := newTestRuntimeServer(t)
			s.opts.CgroupDriver = driver
			rc, err := s.RuntimeConfig(context.Background(), &runtimeapi.RuntimeConfigRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := rc.GetLinux().GetCgroupDriver(); got != want {
				t.Errorf("RuntimeConfig cgroup driver = %v, want %v", got, want)
			}
			st, err := s.Status(context.Background(), &runtimeapi.StatusRequest{Verbose: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Info["cgroupDriver"]; got != driver {
				t.Errorf("Status info cgroupDriver = %q, want %q", got, driver)
			}
		})
	}
}
