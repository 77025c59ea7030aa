//go:build integration

package main

import (
	"context"
	"crypto/sha512"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testNetwork is a bridge network of the test's own: a bridge name and subnet no other test run here uses, IP
// leases in the test's dir. Only traffic inside the pods' network namespaces and on the bridge can occur.
type testNetwork struct {
	bridge string
	subnet netip.Prefix
	ipam   string // host-local's dataDir
}

// newNetworkDaemon starts berthd with the reference CNI plugins (built from go.mod's tool entries) on a network
// of the test's own. With gate, testdata/cni-gate follows portmap in the chain, its gate files in the daemon's dir.
func newNetworkDaemon(t *testing.T, setupTimeout string, gate bool) (*daemon, testNetwork) {
	t.Helper()
	bin := buildCNIPlugins(t)
	n := os.Getpid()%200 + 20
	net := testNetwork{bridge: fmt.Sprintf("berth-it%d", n), subnet: netip.MustParsePrefix(fmt.Sprintf("10.91.%d.0/24", n))}
	d := newDaemon(t, fmt.Sprintf("bin_dirs = [%q]\nsetup_timeout = %q\n", bin, setupTimeout))
	gatePlugin := ""
	if gate {
		gatePlugin = fmt.Sprintf(`{"type": "cni-gate", "gates": %q},`, d.dir) // its gate files (testdata/cni-gate)
	}
	net.ipam = filepath.Join(d.dir, "ipam")
	conflist := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "berth-it", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}},
  {"type": "portmap", "capabilities": {"portMappings": true}}, %s
  {"type": "bandwidth", "capabilities": {"bandwidth": true}},
  {"type": "loopback"}]}`, net.bridge, net.subnet, net.ipam, gatePlugin)
	if err := os.MkdirAll(filepath.Join(d.dir, "net.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "net.d", "10-berth-it.conflist"), []byte(conflist), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "delete", net.bridge).Run() })
	d.start(t)
	return d, net
}

// buildCNIPlugins builds the reference CNI plugins (go.mod's tool entries) and testdata/cni-gate into a dir of the
// test's own, which it returns. It skips the test unless it runs as root.
func buildCNIPlugins(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: network namespaces, veths and iptables")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/containernetworking/plugins/plugins/main/bridge",
		"github.com/containernetworking/plugins/plugins/ipam/host-local", "github.com/containernetworking/plugins/plugins/meta/portmap",
		"github.com/containernetworking/plugins/plugins/main/loopback", "github.com/containernetworking/plugins/plugins/meta/bandwidth",
		"./testdata/cni-gate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build CNI plugins: %v\n%s", err, out)
	}
	return bin
}

func runPod(ctx context.Context, rt runtimeapi.RuntimeServiceClient, name string, hostPort int32, annotations ...string) (id, ip string, err error) {
	a := map[string]string{}
	for i := 0; i+1 < len(annotations); i += 2 {
		a[annotations[i]] = annotations[i+1]
	}
	r, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "network-test", Uid: "uid-" + name},
		Annotations: a,
		PortMappings: []*runtimeapi.PortMapping{{Protocol: runtimeapi.Protocol_TCP, ContainerPort: 80, HostPort: hostPort,
			HostIp: "127.0.0.1"}},
	}})
	if err != nil {
		return "", "", fmt.Errorf("run pod %s: %w", name, err)
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: r.PodSandboxId})
	if err != nil {
		return r.PodSandboxId, "", err
	}
	return r.PodSandboxId, st.GetStatus().GetNetwork().GetIp(), nil
}

func removePod(ctx context.Context, rt runtimeapi.RuntimeServiceClient, id string) error {
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stop pod %s: %w", id, err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	return nil
}

// leases returns the IPs host-local holds for the network.
func (n testNetwork) leases(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(n.ipam, "berth-it"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ips []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			ips = append(ips, e.Name())
		}
	}
	return ips
}

// assertClean checks that nothing of the pods is left: IP leases, network namespaces, veths, iptables rules.
func (n testNetwork) assertClean(t *testing.T, d *daemon, ids []string) {
	t.Helper()
	if l := n.leases(t); len(l) > 0 {
		t.Errorf("host-local still leases %v", l)
	}
	pods, _ := filepath.Glob(filepath.Join(d.dir, "state", "pods", "*", "ns", "net"))
	if len(pods) > 0 {
		t.Errorf("netns files left: %v", pods)
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "master", n.bridge).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("interfaces left on %s (err %v): %s", n.bridge, err, out)
	}
	for _, id := range ids {
		if id != "" && exec.Command("ip", "link", "show", ifbName(id)).Run() == nil {
			t.Errorf("ifb device of pod %s left", id)
		}
	}
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v\n%s", err, out)
	}
	prefix := strings.TrimSuffix(n.subnet.Addr().String(), "0")
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, prefix) {
			t.Errorf("iptables rule of the test network left: %s", line)
		}
		for _, id := range ids {
			if id != "" && strings.Contains(line, id) {
				t.Errorf("iptables rule of pod %s left: %s", id, line)
			}
		}
	}
}

func TestNetworkParallelPodsLeaveNothing(t *testing.T) {
	d, net := newNetworkDaemon(t, "30s", false)
	rt, _ := d.clients(t)
	const pods = 20
	for round := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		ids, ips := make([]string, pods), make([]string, pods)
		errs := make([]error, pods)
		var wg sync.WaitGroup
		for i := range pods {
			wg.Go(func() {
				ids[i], ips[i], errs[i] = runPod(ctx, rt, fmt.Sprintf("p%d-%d", round, i), int32(31000+round*100+i))
			})
		}
		wg.Wait()
		seen := map[string]bool{}
		for i := range pods {
			if errs[i] != nil {
				t.Fatalf("round %d: %v\n%s", round, errs[i], d.log)
			}
			ip, err := netip.ParseAddr(ips[i])
			if err != nil || !net.subnet.Contains(ip) || seen[ips[i]] {
				t.Errorf("round %d: pod %d has IP %q (want a distinct one in %s)", round, i, ips[i], net.subnet)
			}
			seen[ips[i]] = true
		}
		if l := net.leases(t); len(l) != pods {
			t.Errorf("round %d: host-local leases %d IPs, want %d", round, len(l), pods)
		}
		for i := range pods {
			wg.Go(func() { errs[i] = removePod(ctx, rt, ids[i]) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		net.assertClean(t, d, ids)
	}
}

// TestNetworkGCAfterRestart: a pod whose monitor died while berthd was down is not ready after the restart, and
// its attachment is deleted before berthd serves; Stop and Remove still work.
func TestNetworkGCAfterRestart(t *testing.T) {
	d, net := newNetworkDaemon(t, "30s", false)
	rt, _ := d.clients(t)
	id, _, err := runPod(ctx(t), rt, "gc", 31500)
	if err != nil {
		t.Fatalf("%v\n%s", err, d.log)
	}
	keep, _, err := runPod(ctx(t), rt, "keep", 31501,
		"kubernetes.io/ingress-bandwidth", "10M", "kubernetes.io/egress-bandwidth", "20M")
	if err != nil {
		t.Fatal(err)
	}
	// The bandwidth plugin shapes the host side of the pod's veth (ingress) and an ifb device (egress).
	if out, err := exec.Command("tc", "qdisc", "show").CombinedOutput(); err != nil || !strings.Contains(string(out), "rate 10Mbit") {
		t.Errorf("no ingress shaping for a pod with bandwidth annotations (err %v):\n%s", err, out)
	}
	if out, err := exec.Command("tc", "qdisc", "show", "dev", ifbName(keep)).CombinedOutput(); err != nil || !strings.Contains(string(out), "rate 20Mbit") {
		t.Errorf("no egress shaping for a pod with bandwidth annotations (err %v):\n%s", err, out)
	}
	d.cmd.Process.Kill()
	d.cmd.Wait()
	pid, err := os.ReadFile(filepath.Join(d.dir, "state", "pods", id, "monitor.pid"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.start(t)
	rt, _ = d.clients(t)
	// The first call returns once berthd serves, after the GC.
	st, err := rt.PodSandboxStatus(ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: keep})
	if err != nil || st.GetStatus().GetState() != runtimeapi.PodSandboxState_SANDBOX_READY || st.GetStatus().GetNetwork().GetIp() == "" {
		t.Errorf("live pod after restart: %v %v", st, err)
	}
	if l := net.leases(t); len(l) != 1 {
		t.Errorf("after restart host-local leases %v, want only the live pod's\n%s", l, d.log)
	}
	for _, pod := range []string{id, keep} {
		if err := removePod(ctx(t), rt, pod); err != nil {
			t.Fatal(err)
		}
	}
	net.assertClean(t, d, []string{id, keep})
}

// TestNetworkFailedSetupRollsBack: an ADD that fails after bridge and portmap did their part, and one that hangs
// until the setup timeout, leave nothing behind; pods set up meanwhile do not wait for the hanging one.
func TestNetworkFailedSetupRollsBack(t *testing.T) {
	const timeout = 10 * time.Second
	d, net := newNetworkDaemon(t, timeout.String(), true)
	rt, _ := d.clients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names := []string{"hang", "fail", "ok0", "ok1", "ok2", "ok3"}
	ids, errs, took := make([]string, len(names)), make([]error, len(names)), make([]time.Duration, len(names))
	var wg sync.WaitGroup
	start := time.Now()
	for i, name := range names {
		wg.Go(func() {
			ids[i], _, errs[i] = runPod(ctx, rt, name, int32(31600+i))
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "timed out after "+timeout.String()) {
		t.Errorf("hanging ADD: err = %v", errs[0])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "induced failure") {
		t.Errorf("failing ADD: err = %v", errs[1])
	}
	for i := 2; i < len(names); i++ {
		if errs[i] != nil {
			t.Fatalf("pod %s: %v\n%s", names[i], errs[i], d.log)
		}
		if took[i] >= timeout {
			t.Errorf("pod %s took %s: it waited for the hanging ADD", names[i], took[i])
		}
	}
	if l := net.leases(t); len(l) != len(names)-2 {
		t.Errorf("host-local leases %v, want only the %d pods that run", l, len(names)-2)
	}
	for _, id := range ids[2:] {
		if err := removePod(ctx, rt, id); err != nil {
			t.Fatal(err)
		}
	}
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil || len(list.GetItems()) != 0 {
		t.Errorf("pods left: %v %v", list, err)
	}
	net.assertClean(t, d, ids)
}

// ifbName is the bandwidth plugin's device for a pod's egress: a hash of network name and container id.
func ifbName(id string) string {
	return fmt.Sprintf("bwp%x", sha512.Sum512([]byte("berth-it"+id)))[:15]
}
