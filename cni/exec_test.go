package cni

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// pluginExec runs a plugin with its config on stdin and its environment, returns its result, logs the end of its
// stderr, and turns a failure into the CNI error it printed or the end of its stderr; a plugin flooding stdout or
// stderr is bounded.
func TestPluginExec(t *testing.T) {
	flood := `i=0; while [ $i -lt 20000 ]; do echo "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" >&%d; i=$((i+1)); done`
	cases := map[string]struct {
		script     string
		want       string   // the result
		wantErr    []string // in the error, a *types.Error unless berthError
		berthError bool     // berth's error, not the plugin's
		wantLog    []string // in the log
	}{
		"result":          {script: `read -r conf; echo "{\"got\":\"$conf\",\"cmd\":\"$CNI_COMMAND\"}"`, want: `{"got":"{}","cmd":"ADD"}`},
		"stderr logged":   {script: `echo warning >&2; echo '{}'`, want: `{}`, wantLog: []string{"cni plugin", "warning"}},
		"stderr flood":    {script: strings.Replace(flood, "%d", "2", 1) + `; echo last words >&2; echo '{}'`, want: `{}`, wantLog: []string{"bytes before", "last words"}},
		"CNI error":       {script: `echo '{"code":7,"msg":"no address left"}'; exit 1`, wantErr: []string{"no address left"}},
		"stderr only":     {script: `echo broken >&2; exit 2`, wantErr: []string{"broken", "exit status 2"}},
		"no message":      {script: `exit 3`, wantErr: []string{"no error message", "exit status 3"}},
		"not JSON":        {script: `echo garbage; exit 1`, wantErr: []string{"garbage"}},
		"result flood":    {script: strings.Replace(flood, "%d", "1", 1), wantErr: []string{"larger than"}, berthError: true},
		"failure flood":   {script: strings.Replace(flood, "%d", "1", 1) + "; exit 1", wantErr: []string{"more than", "exit status 1"}},
		"stderr of error": {script: strings.Replace(flood, "%d", "2", 1) + "; echo why >&2; exit 1", wantErr: []string{"bytes before", "why"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plugin := filepath.Join(t.TempDir(), "plugin")
			if err := os.WriteFile(plugin, []byte("#!/bin/sh\n"+tc.script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			e := &pluginExec{log: slog.New(slog.NewTextHandler(&log, nil))}
			out, err := e.ExecPlugin(context.Background(), plugin, []byte("{}\n"), []string{"CNI_COMMAND=ADD", "PATH=/usr/bin:/bin"})
			if tc.wantErr != nil {
				var cniErr *types.Error
				if !errors.As(err, &cniErr) && !tc.berthError {
					t.Errorf("error %T %v, want a *types.Error", err, err)
				}
				for _, w := range tc.wantErr {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("error %v, want it to mention %q", err, w)
					}
				}
				if err != nil && len(err.Error()) > 8<<10 {
					t.Errorf("error of %d bytes: not bounded", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("result %q, want %q", got, tc.want)
			}
			for _, w := range tc.wantLog {
				if !strings.Contains(log.String(), w) {
					t.Errorf("log %q does not mention %q", log.String(), w)
				}
			}
			if log.Len() > 8<<10 {
				t.Errorf("log of %d bytes: not bounded", log.Len())
			}
		})
	}
}

func TestPluginExecCanceled(t *testing.T) {
	plugin := filepath.Join(t.TempDir(), "plugin")
	if err := os.WriteFile(plugin, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := &pluginExec{log: slog.New(slog.DiscardHandler)}
	if _, err := e.ExecPlugin(ctx, plugin, nil, nil); err == nil {
		t.Error("a canceled plugin succeeded")
	}
}
