package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berthcri/berth/internal/errdefs"
)

// fakeAPI serves node-1 and the pods bound to it, two per page, and applies label patches.
type fakeAPI struct {
	mu            sync.Mutex
	unschedulable bool
	labels        map[string]any
	pods          []string // JSON objects
	patches       []string
}

const (
	dsPod       = `{"metadata":{"namespace":"kube-system","name":"kube-proxy-1","ownerReferences":[{"kind":"DaemonSet","controller":true}]},"status":{"phase":"Running"}}`
	mirrorPod   = `{"metadata":{"namespace":"kube-system","name":"etcd-node-1","annotations":{"kubernetes.io/config.mirror":"abc"}},"status":{"phase":"Running"}}`
	donePod     = `{"metadata":{"namespace":"default","name":"job-1","ownerReferences":[{"kind":"Job","controller":true}]},"status":{"phase":"Succeeded"}}`
	appPod      = `{"metadata":{"namespace":"default","name":"web-1","ownerReferences":[{"kind":"ReplicaSet","controller":true}]},"status":{"phase":"Running"}}`
	dsOwnedByRS = `{"metadata":{"namespace":"default","name":"odd-1","ownerReferences":[{"kind":"DaemonSet","controller":false},{"kind":"ReplicaSet","controller":true}]},"status":{"phase":"Pending"}}`
)

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer test-token" {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"kind":"Status","message":"Unauthorized"}`)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/nodes/node-1":
		json.NewEncoder(w).Encode(map[string]any{
			"metadata": map[string]any{"name": "node-1", "labels": f.labels},
			"spec":     map[string]any{"unschedulable": f.unschedulable},
		})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1/pods":
		if got := r.URL.Query().Get("fieldSelector"); got != "spec.nodeName=node-1" {
			http.Error(w, `{"message":"bad fieldSelector `+got+`"}`, http.StatusBadRequest)
			return
		}
		start := 0
		fmt.Sscan(r.URL.Query().Get("continue"), &start)
		end := min(start+2, len(f.pods))
		next := ""
		if end < len(f.pods) {
			next = fmt.Sprint(end)
		}
		fmt.Fprintf(w, `{"metadata":{"continue":%q},"items":[%s]}`, next, strings.Join(f.pods[start:end], ","))
	case r.Method == http.MethodPatch && r.URL.Path == "/api/v1/nodes/node-1":
		if ct := r.Header.Get("Content-Type"); ct != "application/strategic-merge-patch+json" {
			http.Error(w, `{"message":"content type `+ct+`"}`, http.StatusUnsupportedMediaType)
			return
		}
		body, _ := io.ReadAll(r.Body)
		f.patches = append(f.patches, string(body))
		var patch struct {
			Metadata struct {
				Labels map[string]*string `json:"labels"`
			} `json:"metadata"`
		}
		json.Unmarshal(body, &patch)
		for k, v := range patch.Metadata.Labels {
			if v == nil {
				delete(f.labels, k)
			} else {
				f.labels[k] = *v
			}
		}
		io.WriteString(w, `{}`)
	default:
		http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
	}
}

func (f *fakeAPI) set(unschedulable bool, pods ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unschedulable, f.pods = unschedulable, pods
}

func (f *fakeAPI) takePatches() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.patches
	f.patches = nil
	return p
}

// startAPI serves api over TLS and returns a client factory for it.
func startAPI(t *testing.T, api *fakeAPI, token string) func() (*kubeClient, error) {
	srv := httptest.NewTLSServer(api)
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	return func() (*kubeClient, error) { return newKubeClient(srv.URL, ca, tokenFile) }
}

func TestCheckDrained(t *testing.T) {
	cases := map[string]struct {
		unschedulable bool
		pods          []string
		want          string // error substring; "" for success
	}{
		"not cordoned":             {unschedulable: false, pods: nil, want: "node node-1 is not cordoned"},
		"drained":                  {unschedulable: true, pods: []string{dsPod, mirrorPod, donePod}},
		"empty":                    {unschedulable: true},
		"app pod on a later page":  {unschedulable: true, pods: []string{dsPod, mirrorPod, donePod, appPod}, want: "1 pods still run there (default/web-1)"},
		"non-controller DS owner":  {unschedulable: true, pods: []string{dsOwnedByRS, appPod}, want: "2 pods still run there (default/odd-1, default/web-1)"},
		"cordoned, app still runs": {unschedulable: true, pods: []string{appPod}, want: "not drained"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			api := &fakeAPI{labels: map[string]any{}}
			api.set(tc.unschedulable, tc.pods...)
			kube, err := startAPI(t, api, "test-token")()
			must(t, err)
			err = checkDrained(context.Background(), kube, "node-1")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkDrained: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errdefs.IsFailedPrecondition(err)):
				t.Fatalf("checkDrained: %v, want a failed precondition containing %q", err, tc.want)
			}
		})
	}
}

func TestKubeClientErrors(t *testing.T) {
	api := &fakeAPI{labels: map[string]any{}}
	kube, err := startAPI(t, api, "wrong-token")()
	must(t, err)
	if _, err := kube.node(context.Background(), "node-1"); err == nil || !strings.Contains(err.Error(), "401 Unauthorized: Unauthorized") {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := newKubeClient("https://127.0.0.1:1", []byte("not PEM"), "x"); err == nil {
		t.Error("a CA bundle without certificates was accepted")
	}
}

func TestSwitch(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"run/systemd/system/":               "",
		"var/lib/kubelet/config.yaml":       kubeletConfig,
		"var/lib/kubelet/kubeadm-flags.env": kubeadmFlags,
	}, 0o600)
	original := snapshot(t, root, false)
	api := &fakeAPI{labels: map[string]any{"kubernetes.io/os": "linux"}}
	stub := &stubRunner{}
	in := newInstaller(root, payload(t), stub)
	in.kube = startAPI(t, api, "test-token")
	in.switchRuntime = true
	ctx := context.Background()
	kubeletRestarted := func() bool { return slices.Contains(stub.take(), "systemctl restart kubelet.service") }

	// Not drained: berth is installed, the kubelet is left alone.
	api.set(true, dsPod, appPod)
	if err := in.install(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("install --switch on a busy node: %v", err)
	}
	if kubeletRestarted() {
		t.Error("the kubelet was restarted on a busy node")
	}
	if got, _ := os.ReadFile(filepath.Join(root, "var/lib/kubelet/config.yaml")); string(got) != kubeletConfig {
		t.Errorf("kubelet config changed on a busy node:\n%s", got)
	}

	api.set(true, dsPod, mirrorPod)
	must(t, in.install(ctx))
	if !kubeletRestarted() {
		t.Error("the kubelet was not restarted")
	}
	wantConfig := strings.Replace(kubeletConfig, `containerRuntimeEndpoint: "unix:///run/containerd/containerd.sock"`,
		"containerRuntimeEndpoint: unix:///run/berth/berth.sock", 1)
	wantFlags := strings.Replace(kubeadmFlags, "unix:///var/run/containerd/containerd.sock", "unix:///run/berth/berth.sock", 1)
	for p, want := range map[string]string{"var/lib/kubelet/config.yaml": wantConfig, "var/lib/kubelet/kubeadm-flags.env": wantFlags} {
		fi, err := os.Stat(filepath.Join(root, p))
		must(t, err)
		got, _ := os.ReadFile(filepath.Join(root, p))
		if string(got) != want || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s (%s):\n%s\nwant (0600):\n%s", p, fi.Mode(), got, want)
		}
	}
	if p := api.takePatches(); !slices.Equal(p, []string{`{"metadata":{"labels":{"berth.dev/runtime":"installed"}}}`}) {
		t.Errorf("patches %q", p)
	}

	// The kubelet now runs the DaemonSet's pod on berth, and the operator uncordons: the rerun changes nothing.
	api.set(false, dsPod, appPod)
	switched := snapshot(t, root, true)
	must(t, in.install(ctx))
	diffSnapshots(t, "rerun after the switch", switched, snapshot(t, root, true))
	if kubeletRestarted() || len(api.takePatches()) > 0 {
		t.Error("the rerun restarted the kubelet or patched the node")
	}

	// Uninstall needs a drained node too.
	if err := in.uninstall(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("uninstall on a busy node: %v", err)
	}
	api.set(true, dsPod)
	must(t, in.uninstall(ctx))
	if !kubeletRestarted() {
		t.Error("uninstall did not restart the kubelet")
	}
	if p := api.takePatches(); !slices.Equal(p, []string{`{"metadata":{"labels":{"berth.dev/runtime":null}}}`}) {
		t.Errorf("uninstall patches %q", p)
	}
	diffSnapshots(t, "after uninstall", original, snapshot(t, root, false))
}

func TestSwitchNeedsSystemd(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"var/lib/kubelet/config.yaml": kubeletConfig}, 0o644)
	in := newInstaller(root, payload(t), &stubRunner{})
	in.switchRuntime = true
	if err := in.install(context.Background()); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "systemd") {
		t.Fatalf("install --switch without systemd: %v", err)
	}
}
