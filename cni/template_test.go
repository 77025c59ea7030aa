package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthcri/berth/deploy"
	"github.com/berthcri/berth/internal/errdefs"
)

// bridgeTemplate has the shape of the shipped template (deploy/cni/10-berth.conflist.tmpl).
const bridgeTemplate = `{"cniVersion":"1.0.0","name":"berth","plugins":[{"type":"ip","ipam":{"type":"host-local",
"ranges":[{{range $i, $r := .PodCIDRRanges}}{{if $i}},{{end}}[{"subnet":"{{$r}}"}]{{end}}],
"routes":[{{range $i, $r := .Routes}}{{if $i}},{{end}}{"dst":"{{$r}}"}{{end}}]}}]}`

func TestRenderTemplate(t *testing.T) {
	cases := map[string]struct {
		tmpl    string
		cidrs   []string
		want    string // a substring of the rendered config
		wantErr error
	}{
		"ipv4": {tmpl: bridgeTemplate, cidrs: []string{"10.244.1.0/24"},
			want: `"ranges":[[{"subnet":"10.244.1.0/24"}]],
"routes":[{"dst":"0.0.0.0/0"}]`},
		"dual stack": {tmpl: bridgeTemplate, cidrs: []string{"10.244.1.0/24", "fd00:1::/64"},
			want: `"ranges":[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:1::/64"}]],
"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}]`},
		"ipv6 only": {tmpl: bridgeTemplate, cidrs: []string{"fd00:1::/64"}, want: `"routes":[{"dst":"::/0"}]`},
		"first cidr": {tmpl: `{"cniVersion":"1.0.0","name":"{{.PodCIDR}}","plugins":[{"type":"ip"}]}`,
			cidrs: []string{"10.1.0.0/16", "fd00::/64"}, want: `"name":"10.1.0.0/16"`},
		"bad cidr": {tmpl: bridgeTemplate, cidrs: []string{"10.1.0.0/33"}, wantErr: errdefs.ErrInvalidArgument},
		"no cidr":  {tmpl: bridgeTemplate, wantErr: errdefs.ErrInvalidArgument},
		// Fine for the one example CIDR at load, not JSON for two.
		"renders garbage": {tmpl: `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"ip"}]}{{range $i, $r := .PodCIDRRanges}}{{if $i}}, oops{{end}}{{end}}`,
			cidrs: []string{"10.1.0.0/16", "fd00::/64"}, wantErr: errdefs.ErrFailedPrecondition},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.tmpl")
			if err := os.WriteFile(path, []byte(tc.tmpl), 0o644); err != nil {
				t.Fatal(err)
			}
			tmpl, err := ParseTemplate(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := renderTemplate(tmpl, tc.cidrs)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(got), tc.want) {
				t.Errorf("rendered\n%s\nwant it to contain\n%s", got, tc.want)
			}
		})
	}
}

// A template that cannot make a network config stops start-up (New), saying why.
func TestParseTemplateRefusesBadTemplate(t *testing.T) {
	cases := map[string]struct{ tmpl, want string }{
		"syntax":        {`{{.PodCIDR`, "unclosed action"},
		"unknown field": {`{{.PodSubnet}}`, "no such field"},
		"not json":      {`{"name": {{.PodCIDR}}}`, "not a network config list"},
		"no plugin":     {`{"cniVersion":"1.0.0","name":"x"}`, "no plugins"},
		"empty":         {``, "not a network config list"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.tmpl")
			if err := os.WriteFile(path, []byte(tc.tmpl), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := New(Options{ConfDir: t.TempDir(), StateDir: t.TempDir(), ConfTemplate: path})
			if err == nil || !strings.Contains(err.Error(), "cni.conf_template "+path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New with template %q: err = %v, want it to name cni.conf_template and say %q", tc.tmpl, err, tc.want)
			}
		})
	}
}

// SetPodCIDRs writes the rendered config where the watcher loads it at once, rewrites it when the CIDR changes,
// leaves no temporary file, and does nothing without a template.
func TestSetPodCIDRs(t *testing.T) {
	ctx := context.Background()
	tn := newTestNet(t, "", "ip")
	if err := tn.SetPodCIDRs(ctx, []string{"10.244.1.0/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tn.conf, TemplateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("without a template, %s: %v", TemplateFile, err)
	}

	tmpl := filepath.Join(t.TempDir(), "net.tmpl")
	if err := os.WriteFile(tmpl, []byte(bridgeTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	// The shipped bridge is there already: the rendered one sorts first.
	tn.writeConf(t, "10-berth.conflist", `{"cniVersion":"1.0.0","name":"static","plugins":[{"type":"ip"}]}`)
	n, err := New(Options{ConfDir: tn.conf, BinDirs: []string{tn.bin}, StateDir: t.TempDir(), exec: tn.exec,
		ConfTemplate: tmpl, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, cidr := range []string{"10.244.1.0/24", "10.244.1.0/24", "10.244.7.0/24"} {
		if err := n.SetPodCIDRs(ctx, []string{cidr}); err != nil {
			t.Fatal(err)
		}
		conf, err := n.watch.current()
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(conf.File) != TemplateFile || !strings.Contains(string(conf.List.Bytes), cidr) {
			t.Fatalf("after %s the network is %s:\n%s", cidr, conf.File, conf.List.Bytes)
		}
	}
	entries, _ := os.ReadDir(tn.conf)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{TemplateFile, "10-berth.conflist"}; !slices.Equal(names, want) {
		t.Errorf("conf dir holds %q, want %q", names, want)
	}
	if fi, err := os.Stat(filepath.Join(tn.conf, TemplateFile)); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("rendered config: %v, mode %v", err, fi.Mode())
	}
	// A CIDR the template cannot render into a config keeps the one in place.
	if err := n.SetPodCIDRs(ctx, []string{"bad"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad CIDR: err = %v", err)
	}
	if conf, _ := n.watch.current(); !strings.Contains(string(conf.List.Bytes), "10.244.7.0/24") {
		t.Errorf("a failed render replaced the config: %s", conf.List.Bytes)
	}
}

// Observe sees every ADD and DEL with the network's name and main plugin, and the error of a failed one.
func TestObserve(t *testing.T) {
	tn := newTestNet(t, `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"ip"},{"type":"fail"}]}`, "ip", "fail")
	var seen []string
	tn.observe = func(op, network, plugin string, took time.Duration, err error) {
		seen = append(seen, fmt.Sprintf("%s %s %s %v", op, network, plugin, err != nil))
		if took <= 0 {
			t.Errorf("%s took %v", op, took)
		}
	}
	if _, err := tn.setup(context.Background(), testPod("p1")); err == nil {
		t.Fatal("setup through a failing plugin succeeded")
	}
	if err := tn.teardown(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ADD n ip true", "DEL n ip false"}; !slices.Equal(seen, want) {
		t.Errorf("observed %q, want %q", seen, want)
	}
}

// The template the installer ships renders, for the fixed subnet of the bridge it ships beside it, that same
// network; dual-stack gets a range and a default route per family.
func TestShippedTemplate(t *testing.T) {
	read := func(name string) []byte {
		b, err := deploy.Files.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	path := filepath.Join(t.TempDir(), "t.tmpl")
	if err := os.WriteFile(path, read("cni/10-berth.conflist.tmpl"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl, err := ParseTemplate(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := renderTemplate(tmpl, []string{"10.88.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	var rendered, static any
	if err := json.Unmarshal(got, &rendered); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(read("cni/10-berth.conflist"), &static); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rendered, static) {
		t.Errorf("the template renders\n%s\nnot the shipped bridge", got)
	}
	// berth brings the pod's lo up itself ("configure namespaces"): a loopback plugin would be two execs per pod
	// for nothing (issue 16: 7.5 ms of each pod's ADD and DEL here).
	if strings.Contains(string(got), `"loopback"`) {
		t.Errorf("the shipped chain runs the loopback plugin:\n%s", got)
	}
	dual, err := renderTemplate(tmpl, []string{"10.244.3.0/24", "fd00:10:244:3::/64"})
	if err != nil {
		t.Fatal(err)
	}
	want := `"ranges": [[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:244:3::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]`
	if !strings.Contains(string(dual), want) {
		t.Errorf("dual-stack render:\n%s\nwant\n%s", dual, want)
	}
}
