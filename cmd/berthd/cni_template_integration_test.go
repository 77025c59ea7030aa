//go:build integration

package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// With cni.conf_template, the kubelet's pod CIDR (UpdateRuntimeConfig) becomes the pod network: before it the
// network is not ready, after it a pod gets an IP in it, and a new CIDR moves the next pods there. A bad CIDR is
// refused naming the field.
func TestCNIConfTemplatePodCIDR(t *testing.T) {
	bin := buildCNIPlugins(t)
	n := os.Getpid()%200 + 20
	bridge := fmt.Sprintf("berth-tp%d", n)
	cidrs := []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("10.93.%d.0/24", n)),
		netip.MustParsePrefix(fmt.Sprintf("10.94.%d.0/24", n))}
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "net.conflist.tmpl")
	// The shape of deploy/cni/10-berth.conflist.tmpl, on a bridge and lease dir of the test's own.
	text := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "berth-tp", "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": %q,
     "ranges": [{{range $i, $r := .PodCIDRRanges}}{{if $i}}, {{end}}[{"subnet": "{{$r}}"}]{{end}}],
     "routes": [{{range $i, $r := .Routes}}{{if $i}}, {{end}}{"dst": "{{$r}}"}{{end}}]}},
  {"type": "loopback"}]}`, bridge, filepath.Join(dir, "ipam"))
	if err := os.WriteFile(tmpl, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, fmt.Sprintf("bin_dirs = [%q]\nconf_template = %q\n", bin, tmpl))
	t.Cleanup(func() { exec.Command("ip", "link", "delete", bridge).Run() })
	d.start(t)
	rt, _ := d.clients(t)
	netReady := func() *runtimeapi.RuntimeCondition {
		st, err := rt.Status(ctx(t), &runtimeapi.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return st.Status.Conditions[1]
	}
	if c := netReady(); c.Status {
		t.Fatalf("network ready before the pod CIDR: %+v", c)
	}
	update := func(cidr string) error {
		_, err := rt.UpdateRuntimeConfig(ctx(t), &runtimeapi.UpdateRuntimeConfigRequest{RuntimeConfig: &runtimeapi.RuntimeConfig{
			NetworkConfig: &runtimeapi.NetworkConfig{PodCidr: cidr}}})
		return err
	}
	if err := update("10.93.0.0/33"); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "runtime_config.network_config.pod_cidr") {
		t.Errorf("bad CIDR: %v, want InvalidArgument naming runtime_config.network_config.pod_cidr", err)
	}
	conf := filepath.Join(d.dir, "net.d", "10-berth-net.conflist")
	for i, cidr := range cidrs {
		if err := update(cidr.String()); err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(conf); err != nil || !strings.Contains(string(data), `"subnet": "`+cidr.String()+`"`) {
			t.Fatalf("rendered config after %s (err %v):\n%s", cidr, err, data)
		}
		// Loaded at once, not at the watcher's next event.
		if c := netReady(); !c.Status {
			t.Fatalf("network not ready after the pod CIDR %s: %+v", cidr, c)
		}
		id, ip, err := runPod(ctx(t), rt, fmt.Sprintf("tp%d", i), 0)
		if err != nil {
			t.Fatal(err)
		}
		if addr, err := netip.ParseAddr(ip); err != nil || !cidr.Contains(addr) {
			t.Errorf("pod IP %q, want one in %s", ip, cidr)
		}
		if err := removePod(ctx(t), rt, id); err != nil {
			t.Fatal(err)
		}
		// The bridge plugin keeps a bridge's first gateway address and refuses another: a node whose CIDR changes
		// loses the bridge (a reboot) before its next pod.
		exec.Command("ip", "link", "delete", bridge).Run()
	}
}
