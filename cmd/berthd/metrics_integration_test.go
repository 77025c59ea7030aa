//go:build integration

package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The metrics the README names, scraped from a real berthd after a pull, a failed pull, a pod with a container
// that runs and one the kernel OOM-kills, and the pod's removal: each is present, with counts where an event
// happened.
func TestMetricsScrape(t *testing.T) {
	d := newPodDaemon(t)
	addr := freePort(t)
	appendConfig(t, d, fmt.Sprintf("\n[metrics]\naddress = %q\n", addr))
	rt, img := d.startWithTestImage(t)
	if _, err := img.PullImage(ctx(t), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{
		Image: "registry.k8s.io/e2e-test-images/busybox:no-such-tag"}}); status.Code(err) != codes.NotFound {
		t.Fatalf("pull of a missing tag: %v, want NotFound", err)
	}

	pc := podConfig(d.dir, "metrics")
	podID := runTestPod(t, rt, pc)
	start := func(name string, mem int64, cmd ...string) string {
		cfg := containerConfig(name, cmd...)
		if mem > 0 {
			cfg.Linux = &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
				MemoryLimitInBytes: mem, MemorySwapLimitInBytes: mem}}
		}
		c, err := rt.CreateContainer(ctx(t), &runtimeapi.CreateContainerRequest{PodSandboxId: podID, Config: cfg, SandboxConfig: pc})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rt.StartContainer(ctx(t), &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			t.Fatal(err)
		}
		return c.ContainerId
	}
	sleeper := start("sleeper", 0, "sleep", "3600")
	// tail keeps the last lines of its input; /dev/zero has no line end, so it grows until the limit kills it.
	hog := start("hog", 16<<20, "tail", "/dev/zero")
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := rt.ContainerStatus(ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: hog})
		if err != nil {
			t.Fatal(err)
		}
		if s := st.GetStatus(); s.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			if s.GetReason() != "OOMKilled" {
				t.Fatalf("hog exited %d with reason %q, want OOMKilled", s.GetExitCode(), s.GetReason())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hog was not OOM-killed in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	m := scrapeMetrics(t, addr)
	for series, min := range map[string]float64{
		`berth_image_pulls_total{result="success"}`:                                                 1,
		`berth_image_pulls_total{result="failure"}`:                                                 1,
		`berth_image_pull_errors_total{reason="not_found"}`:                                         1,
		`berth_image_pull_errors_total{reason="network"}`:                                           0,
		`berth_image_pull_bytes_total`:                                                              100 << 10, // busybox
		`berth_image_pull_duration_seconds_count`:                                                   2,
		`berth_pod_start_duration_seconds_count`:                                                    1,
		`berth_container_start_duration_seconds_count`:                                              2,
		`berth_cni_operation_duration_seconds_count{network="berth-lo",op="ADD",plugin="loopback"}`: 1,
		`berth_cni_operation_errors_total{network="berth-lo",op="ADD",plugin="loopback"}`:           0,
		`berth_container_oom_kills_total`:                                                           1,
		`berth_monitor_live`:                                                                        1,
		`berth_container_exit_watch_lag_seconds_count`:                                              1,
		`berth_events_dropped_total`:                                                                0,
		`berth_cri_request_duration_seconds_count{method="RunPodSandbox"}`:                          1,
		`berth_cri_request_errors_total{code="NotFound",method="PullImage"}`:                        1,
	} {
		v, ok := m[series]
		if !ok {
			t.Errorf("scrape lacks %s", series)
		} else if v < min {
			t.Errorf("%s = %v, want >= %v", series, v, min)
		}
	}
	if v := m[`berth_container_exit_watch_lag_seconds_sum`]; v > 5 {
		t.Errorf("exit-watch lag sums to %vs for one exit", v)
	}
	if v := m[`berth_cni_operation_errors_total{network="berth-lo",op="ADD",plugin="loopback"}`]; v != 0 {
		t.Errorf("%v CNI ADD errors, want none", v)
	}

	if _, err := rt.StopContainer(ctx(t), &runtimeapi.StopContainerRequest{ContainerId: sleeper, Timeout: 0}); err != nil {
		t.Fatal(err)
	}
	if err := removePod(ctx(t), rt, podID); err != nil {
		t.Fatal(err)
	}
	m = scrapeMetrics(t, addr)
	if v := m[`berth_cni_operation_duration_seconds_count{network="berth-lo",op="DEL",plugin="loopback"}`]; v < 1 {
		t.Errorf("%v CNI DELs after the pod's removal, want >= 1", v)
	}
	if v := m[`berth_monitor_live`]; v != 0 {
		t.Errorf("%v live monitors after the pod's removal, want 0", v)
	}
	if v := m[`berth_container_oom_kills_total`]; v != 1 {
		t.Errorf("%v OOM kills counted after the stop, want 1 (the sleeper was killed by berth, not the kernel)", v)
	}
}

// appendConfig adds TOML to the daemon's config before it starts.
func appendConfig(t *testing.T, d *daemon, toml string) {
	t.Helper()
	f, err := os.OpenFile(d.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(toml); err != nil {
		t.Fatal(err)
	}
}

// scrapeMetrics reads /metrics into series → value, the series as the text format writes it (name{labels}).
func scrapeMetrics(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s\n%s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
