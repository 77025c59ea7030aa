package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunCommandLine(t *testing.T) {
	cases := map[string]struct {
		args     []string
		code     int
		out, err string
	}{
		"version":           {args: []string{"--version"}, out: "berth-installer "},
		"version command":   {args: []string{"version"}, out: "berth-installer "},
		"no command":        {code: 2, err: "usage:"},
		"unknown command":   {args: []string{"frobnicate"}, code: 2, err: `unknown command "frobnicate"`},
		"unknown flag":      {args: []string{"install", "--frobnicate"}, code: 2, err: "flag provided but not defined"},
		"stray argument":    {args: []string{"install", "extra"}, code: 2, err: `unexpected argument "extra"`},
		"relative root":     {args: []string{"install", "--host-root", "host"}, code: 2, err: `--host-root "host": not an absolute path`},
		"relative payload":  {args: []string{"uninstall", "--payload", "p"}, code: 2, err: `--payload "p": not an absolute path`},
		"nothing installed": {args: []string{"uninstall", "--host-root", "/nonexistent-berth-host"}, err: "nothing to uninstall"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s", tc.args, code, out.String(), errb.String())
			}
		})
	}
}
