package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berthcri/berth/image"
	"github.com/berthcri/berth/internal/errdefs"
)

func TestPullReason(t *testing.T) {
	stalled := fmt.Errorf("pull x: no progress for 5m: %w (%w)", errdefs.ErrUnavailable, context.DeadlineExceeded)
	cases := map[string]struct {
		err  error
		want string
	}{
		"not found":      {fmt.Errorf("pull x: manifest not found on r: %w", errdefs.ErrNotFound), pullNotFound},
		"unauthorized":   {fmt.Errorf("authentication failed for r: %w", errdefs.ErrUnauthenticated), pullUnauthorized},
		"deadline":       {fmt.Errorf("pull x: %w", context.DeadlineExceeded), pullTimeout},
		"stalled":        {stalled, pullTimeout},
		"unreachable":    {fmt.Errorf("registry r unreachable: dial tcp: %w", errdefs.ErrUnavailable), pullNetwork},
		"too many":       {fmt.Errorf("registry r: too many requests: %w", errdefs.ErrResourceExhausted), pullNetwork},
		"too big":        {fmt.Errorf("layer: the image unpacks to more than max: %w", image.ErrTooBig), pullInvalid},
		"bad manifest":   {errdefs.InvalidArgument("manifest", "bad"), pullInvalid},
		"bad config":     {errdefs.FailedPrecondition("image config: diff ids"), pullInvalid},
		"disk full":      {fmt.Errorf("unpack: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}), pullDisk},
		"read-only disk": {fmt.Errorf("%w: %w", errdefs.ErrUnavailable, syscall.EROFS), pullDisk},
		"canceled":       {fmt.Errorf("pull x: %w", context.Canceled), pullOther},
		"plain":          {errors.New("something"), pullOther},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := pullReason(tc.err); got != tc.want {
				t.Errorf("pullReason(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

// Every hook lands in the metric the README names, with its labels; a nil *Metrics takes every call.
func TestMetricsHooks(t *testing.T) {
	var none *Metrics
	none.PullObserver()(time.Second, 1, nil)
	none.CNIObserver()("ADD", "n", "bridge", time.Second, nil)
	none.podStarted(time.Second)
	none.containerStarted(1)
	none.exitRecorded(true, time.Now())
	none.monitorWatched(1)
	none.eventDropped()
	none.observe("Version", time.Second, codes.OK)

	m := NewMetrics()
	pull := m.PullObserver()
	pull(2*time.Second, 1000, nil)
	pull(time.Second, 10, fmt.Errorf("x: %w", errdefs.ErrNotFound))
	cni := m.CNIObserver()
	cni("ADD", "berth", "bridge", 30*time.Millisecond, nil)
	cni("DEL", "berth", "bridge", 10*time.Millisecond, errors.New("failed"))
	m.podStarted(300 * time.Millisecond)
	m.containerStarted(time.Now().Add(-time.Second).UnixNano())
	m.containerStarted(0) // no creation time: not observed
	m.exitRecorded(true, time.Now().Add(-time.Millisecond))
	m.exitRecorded(false, time.Now())
	m.exitRecorded(false, time.Time{}) // no exit time: not observed
	m.monitorWatched(1)
	m.monitorWatched(1)
	m.monitorWatched(-1)
	m.eventDropped()
	m.observe("RunPodSandbox", time.Second, codes.OK)

	got := scrape(t, m)
	for _, want := range []string{
		`berth_image_pulls_total{result="success"} 1`,
		`berth_image_pulls_total{result="failure"} 1`,
		`berth_image_pull_errors_total{reason="not_found"} 1`,
		`berth_image_pull_bytes_total 1010`,
		`berth_image_pull_duration_seconds_count 2`,
		`berth_image_pull_duration_seconds_sum 3`,
		`berth_pod_start_duration_seconds_count 1`,
		`berth_container_start_duration_seconds_count 1`,
		`berth_cni_operation_duration_seconds_count{network="berth",op="ADD",plugin="bridge"} 1`,
		`berth_cni_operation_duration_seconds_count{network="berth",op="DEL",plugin="bridge"} 1`,
		`berth_cni_operation_errors_total{network="berth",op="DEL",plugin="bridge"} 1`,
		`berth_container_oom_kills_total 1`,
		`berth_monitor_live 1`,
		`berth_container_exit_watch_lag_seconds_count 2`,
		`berth_events_dropped_total 1`,
		`berth_cri_request_duration_seconds_count{method="RunPodSandbox"} 1`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	for _, want := range []string{ // series at zero before their first event
		`berth_cni_operation_errors_total{network="berth",op="ADD",plugin="bridge"} 0`,
		`berth_image_pull_errors_total{reason="disk"} 0`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// UpdateRuntimeConfig hands a new pod CIDR to the conf template hook once, keeps the old one when the hook fails (so
// that the kubelet's retry writes it) and refuses a bad CIDR naming the field.
func TestUpdateRuntimeConfigPodCIDR(t *testing.T) {
	var calls []string
	fail := false
	s, err := NewRuntimeServer(RuntimeOptions{Logger: slog.New(slog.DiscardHandler),
		PodCIDRChanged: func(_ context.Context, cidrs []string) error {
			calls = append(calls, strings.Join(cidrs, ","))
			if fail {
				return errdefs.FailedPrecondition("cni.conf_template: broken")
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	update := func(cidr string) error {
		_, err := s.UpdateRuntimeConfig(context.Background(), &runtimeapi.UpdateRuntimeConfigRequest{
			RuntimeConfig: &runtimeapi.RuntimeConfig{NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}}})
		return toStatus(err)
	}
	steps := []struct {
		cidr      string
		fail      bool
		wantCode  codes.Code
		wantCalls string
	}{
		{cidr: "10.244.1.0/24", wantCalls: "10.244.1.0/24"},
		{cidr: "10.244.1.0/24", wantCalls: "10.244.1.0/24"}, // unchanged: no call
		{cidr: "10.244.2.0/24, fd00::/64", wantCalls: "10.244.1.0/24 10.244.2.0/24,fd00::/64"},
		{cidr: "10.244.3.0/24", fail: true, wantCode: codes.FailedPrecondition,
			wantCalls: "10.244.1.0/24 10.244.2.0/24,fd00::/64 10.244.3.0/24"},
		{cidr: "10.244.3.0/24", wantCalls: "10.244.1.0/24 10.244.2.0/24,fd00::/64 10.244.3.0/24 10.244.3.0/24"}, // retried
		{cidr: "10.244.0.0/33", wantCode: codes.InvalidArgument,
			wantCalls: "10.244.1.0/24 10.244.2.0/24,fd00::/64 10.244.3.0/24 10.244.3.0/24"},
	}
	for i, st := range steps {
		fail = st.fail
		err := update(st.cidr)
		if status.Code(err) != st.wantCode {
			t.Fatalf("step %d (%s): err = %v, want %v", i, st.cidr, err, st.wantCode)
		}
		if st.wantCode == codes.InvalidArgument && !strings.Contains(err.Error(), "runtime_config.network_config.pod_cidr") {
			t.Errorf("step %d: %v does not name the field", i, err)
		}
		if got := strings.Join(calls, " "); got != st.wantCalls {
			t.Fatalf("step %d (%s): hook calls %q, want %q", i, st.cidr, got, st.wantCalls)
		}
	}
}

// The README's metrics table names exactly the berth_ metrics registered.
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, line := range strings.Split(string(readme), "\n") {
		if name, ok := strings.CutPrefix(line, "| `berth_"); ok {
			documented = append(documented, "berth_"+name[:strings.IndexByte(name, '`')])
		}
	}
	m := NewMetrics()
	m.observe("Version", time.Millisecond, codes.Internal) // vectors show once they have a series
	m.CNIObserver()("ADD", "n", "bridge", time.Millisecond, nil)
	families, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var registered []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "berth_") {
			registered = append(registered, f.GetName())
		}
	}
	slices.Sort(documented)
	if !slices.Equal(documented, registered) {
		t.Errorf("README documents\n%q\nregistered\n%q", documented, registered)
	}
}
