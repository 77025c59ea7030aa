package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped default config must be exactly what berthd prints with no config file, so the two never drift.
func TestDeployConfigIsDefault(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"config", "--config", filepath.Join(t.TempDir(), "none.toml")}, &out, &errb); code != 0 {
		t.Fatalf("berthd config: exit %d: %s", code, errb.String())
	}
	shipped, err := os.ReadFile("../../deploy/berth.toml")
	if err != nil {
		t.Fatal(err)
	}
	// berthd config shows the cgroup driver auto resolves to; the shipped file keeps auto.
	shipped = bytes.Replace(shipped, []byte(`cgroup_driver = "auto"`), []byte(`cgroup_driver = "`+cgroupDriver("auto")+`"`), 1)
	if !bytes.Equal(out.Bytes(), shipped) {
		t.Errorf("deploy/berth.toml differs from the defaults; regenerate with: bin/berthd config --config /nonexistent.toml | sed 's/^cgroup_driver = .*/cgroup_driver = \"auto\"/' > deploy/berth.toml\n%s", out.String())
	}
}

func TestRunCommands(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "berth.toml")
	os.WriteFile(conf, []byte("[registry.hosts.\"r.example.com\"]\nusername = \"u\"\npassword = \"hunter2\"\n"), 0o644)
	cases := map[string]struct {
		args     []string
		code     int
		out, err string
	}{
		"version":          {args: []string{"version"}, out: "berth "},
		"--version":        {args: []string{"--version"}, out: "berth "},
		"--help":           {args: []string{"--help"}, out: "config endpoints IMAGE"},
		"help":             {args: []string{"help"}, out: "berthd [flags] config "},
		"config -h":        {args: []string{"config", "-h"}, out: "-log-level"},
		"bad flag":         {args: []string{"--frob"}, code: 2, err: "Usage:"},
		"resolved driver":  {args: []string{"config", "--config", conf}, out: `cgroup_driver = "` + cgroupDriver("auto") + `"`},
		"endpoints":        {args: []string{"config", "endpoints", "r.example.com/app:1", "--config", conf}, out: "https://r.example.com/v2"},
		"endpoints no ref": {args: []string{"config", "--config", conf, "endpoints"}, code: 2, err: `unexpected argument "endpoints"`},
		"endpoints bad":    {args: []string{"config", "endpoints", "a//b", "--config", conf}, code: 1, err: `image "a//b"`},
		"unknown command":  {args: []string{"frobnicate"}, code: 2, err: `unknown command "frobnicate"`},
		"stray argument":   {args: []string{"config", "--config", conf, "extra"}, code: 2, err: `unexpected argument "extra"`},
		"config redacted":  {args: []string{"config", "--config", conf}, out: `password = "<redacted>"`},
		"flag overrides":   {args: []string{"config", "--config", conf, "--root", "/srv/berth"}, out: `root_dir = "/srv/berth"`},
		"relative root":    {args: []string{"config", "--config", conf, "--root", "rel"}, code: 1, err: "root_dir"},
		"bad log level":    {args: []string{"config", "--config", conf, "--log-level", "loud"}, code: 1, err: "log.level"},
		"missing drop-ins": {args: []string{"config", "--config", filepath.Join(dir, "nope.toml")}, out: `listen = "/run/berth/berth.sock"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s", tc.args, code, out.String(), errb.String())
			}
			if strings.Contains(out.String(), "hunter2") {
				t.Error("secret printed")
			}
		})
	}
}
