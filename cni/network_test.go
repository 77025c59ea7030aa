package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthcri/berth/internal/errdefs"
	"github.com/berthcri/berth/sandbox"
)

const testList = `{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"ip"},{"type":"portmap","capabilities":{"portMappings":true}}]}`

func testPod(id string) pod {
	return pod{ID: id, Name: "web", Namespace: "default", UID: "uid-" + id, NetNS: "/run/test/" + id + "/ns/net",
		PortMappings: []sandbox.PortMapping{{Protocol: "TCP", ContainerPort: 80, HostPort: 8080}}}
}

func TestSetupTeardown(t *testing.T) {
	tn := newTestNet(t, testList, "ip", "portmap")
	tn.exec.ips = []string{"fd00::5/64", "10.1.0.5/24"}
	ctx := context.Background()

	st, err := tn.setup(ctx, testPod("p1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(st.IPs); got != "[10.1.0.5 fd00::5]" {
		t.Errorf("IPs = %s, want IPv4 first", got)
	}
	short, calls := tn.exec.takeCalls()
	if want := []string{"ADD ip p1", "ADD portmap p1"}; !slices.Equal(short, want) {
		t.Fatalf("calls = %q, want %q", short, want)
	}
	add := calls[1]
	if add.NetNS != "/run/test/p1/ns/net" || add.IfName != "eth0" ||
		add.Args != "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=p1;K8S_POD_UID=uid-p1" {
		t.Errorf("ADD env = %+v", add)
	}
	if rc := fmt.Sprint(add.Stdin["runtimeConfig"]); rc != "map[portMappings:[map[containerPort:80 hostPort:8080 protocol:tcp]]]" {
		t.Errorf("portmap runtimeConfig = %s", rc)
	}
	if _, ok := calls[0].Stdin["runtimeConfig"]; ok {
		t.Errorf("a plugin without the capability got runtimeConfig: %v", calls[0].Stdin)
	}

	// A restart in between: the record and libcni's cache are on disk.
	tn.Close()
	n := tn.open(t)
	for range 2 { // the second finds nothing to do
		if err := n.teardown(ctx, "p1"); err != nil {
			t.Fatal(err)
		}
	}
	short, calls = tn.exec.takeCalls()
	if want := []string{"DEL portmap p1", "DEL ip p1"}; !slices.Equal(short, want) {
		t.Fatalf("calls = %q, want %q", short, want)
	}
	// The netns is not a mounted namespace here: the plugins are told there is none.
	if c := calls[0]; c.NetNS != "" || c.Args != add.Args || fmt.Sprint(c.Stdin["runtimeConfig"]) != fmt.Sprint(add.Stdin["runtimeConfig"]) {
		t.Errorf("DEL = %+v, want the ADD's args", c)
	}
	if c := calls[0]; c.Stdin["prevResult"] == nil {
		t.Errorf("DEL without the cached result: %v", c.Stdin)
	}
}

func TestTeardownAfterFailedAdd(t *testing.T) {
	cases := map[string]struct {
		list, hang, wantErr string
		wantDel             []string
	}{
		"plugin fails": {list: `[{"type":"ip"},{"type":"fail"}]`, wantErr: "plugin fail failed",
			wantDel: []string{"DEL fail p1", "DEL ip p1"}},
		"times out": {list: `[{"type":"ip"},{"type":"portmap"}]`, hang: "p1", wantErr: "timed out after 100ms (cni.setup_timeout)",
			wantDel: []string{"DEL portmap p1", "DEL ip p1"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tn := newTestNet(t, `{"cniVersion":"1.0.0","name":"n","plugins":`+tc.list+`}`, "ip", "fail", "portmap")
			tn.timeout, tn.exec.hang = 100*time.Millisecond, tc.hang
			if _, err := tn.setup(context.Background(), testPod("p1")); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("setup err = %v, want %q", err, tc.wantErr)
			}
			tn.exec.takeCalls()
			if err := tn.teardown(context.Background(), "p1"); err != nil {
				t.Fatal(err)
			}
			if short, _ := tn.exec.takeCalls(); !slices.Equal(short, tc.wantDel) {
				t.Fatalf("calls = %q, want %q", short, tc.wantDel)
			}
		})
	}
}

func TestTeardownRetriedUntilItSucceeds(t *testing.T) {
	tn := newTestNet(t, testList, "ip", "portmap")
	if _, err := tn.setup(context.Background(), testPod("p1")); err != nil {
		t.Fatal(err)
	}
	tn.exec.delErr = errors.New("plugin down")
	if err := tn.teardown(context.Background(), "p1"); err == nil {
		t.Fatal("teardown succeeded with a failing plugin")
	}
	tn.exec.delErr = nil
	tn.exec.takeCalls()
	if err := tn.teardown(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if short, _ := tn.exec.takeCalls(); len(short) != 2 {
		t.Fatalf("retry calls = %q", short)
	}
}

func TestSlowPluginDoesNotBlockOtherPods(t *testing.T) {
	tn := newTestNet(t, testList, "ip", "portmap")
	tn.exec.hang = "slow"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := tn.setup(ctx, testPod("slow"))
		done <- err
	}()
	for i := range 3 {
		ctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := tn.setup(ctx, testPod(fmt.Sprint("p", i))); err != nil {
			t.Fatal(err)
		}
		c()
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the hanging ADD succeeded")
	}
}

func TestConfigChangeKeepsRecordedNetwork(t *testing.T) {
	tn := newTestNet(t, testList, "ip", "portmap")
	if _, err := tn.setup(context.Background(), testPod("p1")); err != nil {
		t.Fatal(err)
	}
	tn.writeConf(t, "05-other.conflist", `{"cniVersion":"1.0.0","name":"net2","plugins":[{"type":"ip"}]}`)
	tn.watch.reload()
	if conf, _ := tn.watch.current(); conf == nil || conf.List.Name != "net2" {
		t.Fatalf("current = %+v", conf)
	}
	tn.exec.takeCalls()
	if err := tn.teardown(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	short, calls := tn.exec.takeCalls()
	if want := []string{"DEL portmap p1", "DEL ip p1"}; !slices.Equal(short, want) || calls[0].Stdin["name"] != "net1" {
		t.Fatalf("calls = %q (%v), want the recorded net1", short, calls[0].Stdin)
	}
}

func TestSetupNotReady(t *testing.T) {
	tn := newTestNet(t, "")
	_, err := tn.setup(context.Background(), testPod("p1"))
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "no network config found in "+tn.conf) {
		t.Fatalf("err = %v", err)
	}
	if err := tn.teardown(context.Background(), "p1"); err != nil {
		t.Fatalf("teardown of a pod never set up: %v", err)
	}
	if short, _ := tn.exec.takeCalls(); len(short) != 0 {
		t.Fatalf("calls = %q", short)
	}
}

func TestGC(t *testing.T) {
	tn := newTestNet(t, `{"cniVersion":"1.1.0","name":"n","plugins":[{"type":"ip"}]}`, "ip")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := tn.setup(context.Background(), testPod(id)); err != nil {
			t.Fatal(err)
		}
	}
	tn.exec.takeCalls()
	if err := tn.GC(context.Background(), []string{"b"}); err != nil {
		t.Fatal(err)
	}
	short, calls := tn.exec.takeCalls()
	if want := []string{"DEL ip a", "DEL ip c", "GC ip "}; !slices.Equal(short, want) {
		t.Fatalf("calls = %q, want %q", short, want)
	}
	if got := fmt.Sprint(calls[2].Stdin["cni.dev/valid-attachments"]); got != "[map[containerID:b ifname:eth0]]" {
		t.Errorf("valid attachments = %s", got)
	}
	if ids := attachmentIDs(tn.Network); !slices.Equal(ids, []string{"b"}) {
		t.Errorf("attachments left = %q", ids)
	}
}

func attachmentIDs(n *Network) []string {
	var ids []string
	for _, a := range n.attachments.List() {
		ids = append(ids, a.ContainerID)
	}
	return ids
}

func TestInlinedKeepsPluginsFromFiles(t *testing.T) {
	tn := newTestNet(t, `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ip"}]}`, "ip", "extra")
	// libcni adds the plugins of <conf dir>/<network name>/ to the list.
	if err := os.Mkdir(filepath.Join(tn.conf, "n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tn.conf, "n", "extra.conf"), []byte(`{"type":"extra"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tn.watch.reload()
	if _, err := tn.setup(context.Background(), testPod("p1")); err != nil {
		t.Fatal(err)
	}
	tn.exec.takeCalls()
	os.RemoveAll(filepath.Join(tn.conf, "n"))
	if err := tn.teardown(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if short, _ := tn.exec.takeCalls(); !slices.Equal(short, []string{"DEL extra p1", "DEL ip p1"}) {
		t.Fatalf("calls = %q", short)
	}
}
