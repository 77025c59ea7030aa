package cni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	const bridge = `{"cniVersion":"1.0.0","name":"berth","plugins":[{"type":"bridge"},{"type":"portmap"}]}`
	cases := map[string]struct {
		files   map[string]string
		bins    []string
		wantErr string
		want    string
	}{
		"empty dir":       {wantErr: "no network config found in"},
		"missing plugin":  {files: map[string]string{"10-b.conflist": bridge}, bins: []string{"bridge"}, wantErr: "10-b.conflist: plugin 'portmap' not found in"},
		"lexical first":   {files: map[string]string{"20-b.conflist": `{`, "10-a.conflist": bridge}, bins: []string{"bridge", "portmap"}, want: "10-a.conflist"},
		"invalid json":    {files: map[string]string{"10-a.conflist": `{`}, wantErr: "10-a.conflist:"},
		"single conf":     {files: map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","name":"n","type":"bridge"}`}, bins: []string{"bridge"}, want: "10-a.conf"},
		"conf no type":    {files: map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","name":"n"}`}, wantErr: "missing 'type'"},
		"ignores others":  {files: map[string]string{"README": "x"}, wantErr: "no network config found"},
		"plugin path bad": {files: map[string]string{"1.conflist": `{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../bridge"}]}`}, bins: []string{"bridge"}, wantErr: "plugin '../bridge' not found"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			conf, bin := t.TempDir(), t.TempDir()
			for f, data := range tc.files {
				if err := os.WriteFile(filepath.Join(conf, f), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, b := range tc.bins {
				if err := os.WriteFile(filepath.Join(bin, b), nil, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			net, err := Load(conf, []string{filepath.Join(bin, "none"), bin})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(net.File) != tc.want {
				t.Fatalf("file = %s, want %s", net.File, tc.want)
			}
		})
	}
}
