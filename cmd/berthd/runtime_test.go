package main

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestTuneRuntime(t *testing.T) {
	for name, tc := range map[string]struct {
		env  string // "" unsets GOGC
		want int
	}{
		"unset":    {want: gcPercent},
		"GOGC set": {env: "200", want: 100}, // left as it was
	} {
		t.Run(name, func(t *testing.T) {
			prev := debug.SetGCPercent(100)
			t.Cleanup(func() { debug.SetGCPercent(prev) })
			t.Setenv("GOGC", tc.env)
			if tc.env == "" {
				os.Unsetenv("GOGC")
			}
			tuneRuntime()
			if got := debug.SetGCPercent(100); got != tc.want {
				t.Errorf("GC percent %d, want %d", got, tc.want)
			}
		})
	}
}
