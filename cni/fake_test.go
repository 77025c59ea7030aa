package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/version"
)

// fakeExec stands in for the plugins; it records every call. By plugin type:
//   - ip: ADD returns a result with the host side of a veth and the pod's eth0, and the addresses in ips;
//   - fail: ADD fails;
//   - anything else: ADD passes the previous result on.
//
// The ADD of pod hang waits until its context ends. DEL and GC succeed unless delErr is set.
type fakeExec struct {
	ips  []string // CIDRs on eth0, in the result's order
	hang string

	mu     sync.Mutex
	calls  []call
	delErr error
}

type call struct {
	Command, Type, ContainerID, NetNS, IfName, Args string
	Stdin                                           map[string]any
}

func (f *fakeExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var conf map[string]any
	if err := json.Unmarshal(stdin, &conf); err != nil {
		return nil, err
	}
	c := call{Command: env["CNI_COMMAND"], Type: filepath.Base(pluginPath), ContainerID: env["CNI_CONTAINERID"],
		NetNS: env["CNI_NETNS"], IfName: env["CNI_IFNAME"], Args: env["CNI_ARGS"], Stdin: conf}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	delErr := f.delErr
	f.mu.Unlock()
	switch {
	case c.Command == "DEL" && delErr != nil:
		return nil, delErr
	case c.Command != "ADD":
		return nil, nil
	case c.ContainerID == f.hang:
		<-ctx.Done()
		return nil, ctx.Err()
	case c.Type == "fail":
		return nil, fmt.Errorf("plugin fail failed")
	case c.Type == "ip":
		ips := make([]map[string]any, len(f.ips))
		for i, ip := range f.ips {
			ips[i] = map[string]any{"address": ip, "interface": 1}
		}
		return json.Marshal(map[string]any{"cniVersion": conf["cniVersion"],
			"interfaces": []map[string]any{{"name": "veth1"}, {"name": "eth0", "sandbox": c.NetNS}}, "ips": ips})
	default:
		return json.Marshal(conf["prevResult"])
	}
}

func (f *fakeExec) FindInPath(plugin string, paths []string) (string, error) {
	return "/fake/" + plugin, nil
}

func (f *fakeExec) Decode([]byte) (version.PluginInfo, error) {
	return version.PluginSupports("0.4.0", "1.0.0", "1.1.0"), nil
}

// takeCalls returns the calls since the last takeCalls, as "COMMAND type containerID".
func (f *fakeExec) takeCalls() ([]string, []call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var short []string
	for _, c := range f.calls {
		short = append(short, c.Command+" "+c.Type+" "+c.ContainerID)
	}
	calls := f.calls
	f.calls = nil
	return short, calls
}

// testNet is a Network over fake plugins, with a conf dir and a bin dir holding the plugin files Load checks for.
type testNet struct {
	*Network
	exec           *fakeExec
	conf, bin, dir string
}

func newTestNet(t *testing.T, conflist string, plugins ...string) *testNet {
	t.Helper()
	tn := &testNet{exec: &fakeExec{ips: []string{"10.1.0.5/24"}}, conf: t.TempDir(), bin: t.TempDir(), dir: t.TempDir()}
	for _, p := range plugins {
		if err := os.WriteFile(filepath.Join(tn.bin, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if conflist != "" {
		tn.writeConf(t, "10-test.conflist", conflist)
	}
	tn.Network = tn.open(t)
	return tn
}

func (tn *testNet) open(t *testing.T) *Network {
	t.Helper()
	n, err := New(Options{ConfDir: tn.conf, BinDirs: []string{tn.bin}, StateDir: tn.dir, exec: tn.exec,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func (tn *testNet) writeConf(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tn.conf, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
