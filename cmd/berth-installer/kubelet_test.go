package main

import (
	"strings"
	"testing"
)

func TestSetYAMLValue(t *testing.T) {
	const ep = "unix:///run/berth/berth.sock"
	cases := map[string]struct {
		in, want string
		add      bool
	}{
		"replace quoted":        {in: "a: 1\ncontainerRuntimeEndpoint: \"unix:///c.sock\"\nb: 2\n", want: "a: 1\ncontainerRuntimeEndpoint: " + ep + "\nb: 2\n"},
		"replace with comment":  {in: "containerRuntimeEndpoint: unix:///c.sock # kubeadm\n", want: "containerRuntimeEndpoint: " + ep + "\n"},
		"already set":           {in: "containerRuntimeEndpoint: '" + ep + "'\n", want: "containerRuntimeEndpoint: '" + ep + "'\n"},
		"nested key untouched":  {in: "x:\n  containerRuntimeEndpoint: y\n", want: "x:\n  containerRuntimeEndpoint: y\ncontainerRuntimeEndpoint: " + ep + "\n", add: true},
		"append without EOL":    {in: "kind: KubeletConfiguration", want: "kind: KubeletConfiguration\ncontainerRuntimeEndpoint: " + ep + "\n", add: true},
		"absent, not added":     {in: "kind: KubeletConfiguration\n", want: "kind: KubeletConfiguration\n"},
		"space before colon":    {in: "containerRuntimeEndpoint : x\n", want: "containerRuntimeEndpoint: " + ep + "\n"},
		"similar key untouched": {in: "containerRuntimeEndpointX: x\n", want: "containerRuntimeEndpointX: x\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := string(setYAMLValue([]byte(tc.in), "containerRuntimeEndpoint", ep, tc.add)); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestSetFlagValue(t *testing.T) {
	const ep = "unix:///run/berth/berth.sock"
	cases := map[string]struct{ in, want string }{
		"equals":        {in: `ARGS="--container-runtime-endpoint=unix:///c.sock --v=2"`, want: `ARGS="--container-runtime-endpoint=` + ep + ` --v=2"`},
		"at the end":    {in: `ARGS="--v=2 --container-runtime-endpoint=unix:///c.sock"`, want: `ARGS="--v=2 --container-runtime-endpoint=` + ep + `"`},
		"space":         {in: "KUBELET_EXTRA_ARGS=--container-runtime-endpoint unix:///c.sock\n", want: "KUBELET_EXTRA_ARGS=--container-runtime-endpoint " + ep + "\n"},
		"quoted value":  {in: `ARGS='--container-runtime-endpoint="unix:///c.sock"'`, want: `ARGS='--container-runtime-endpoint=` + ep + `'`},
		"absent":        {in: `ARGS="--v=2"`, want: `ARGS="--v=2"`},
		"already berth": {in: `ARGS="--container-runtime-endpoint=` + ep + `"`, want: `ARGS="--container-runtime-endpoint=` + ep + `"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := string(setFlagValue([]byte(tc.in), "container-runtime-endpoint", ep)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPointKubeletAt(t *testing.T) {
	cases := map[string]struct {
		node  map[string]string
		edits []string
		err   string
	}{
		"kubeadm":           {node: map[string]string{"var/lib/kubelet/config.yaml": kubeletConfig, "var/lib/kubelet/kubeadm-flags.env": kubeadmFlags}, edits: []string{"/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env"}},
		"config only":       {node: map[string]string{"var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\n"}, edits: []string{"/var/lib/kubelet/config.yaml"}},
		"Debian flag file":  {node: map[string]string{"etc/default/kubelet": "KUBELET_EXTRA_ARGS=--container-runtime-endpoint=unix:///c.sock\n"}, edits: []string{"/etc/default/kubelet"}},
		"already berth":     {node: map[string]string{"var/lib/kubelet/config.yaml": "containerRuntimeEndpoint: unix:///run/berth/berth.sock\n"}},
		"JSON config":       {node: map[string]string{"var/lib/kubelet/config.yaml": `{"kind":"KubeletConfiguration"}`}, err: "JSON is not supported"},
		"nothing to change": {node: map[string]string{"etc/default/kubelet": "KUBELET_EXTRA_ARGS=\n"}, err: "set in none of"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			writeTree(t, root, tc.node, 0o644)
			edits, err := (&host{root: root}).pointKubeletAt(defaultKubeletFiles, "unix:///run/berth/berth.sock")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, e := range edits {
				paths = append(paths, e.path)
				if !strings.Contains(string(e.data), "unix:///run/berth/berth.sock") {
					t.Errorf("%s: no berth endpoint in %q", e.path, e.data)
				}
			}
			if strings.Join(paths, " ") != strings.Join(tc.edits, " ") {
				t.Errorf("edits %q, want %q", paths, tc.edits)
			}
		})
	}
}
