package kernel

import (
	"fmt"
	"os"
	"testing"
)

// Each probe agrees with the release the feature came in: present from that release on, missing before it.
func TestFeaturesMatchRelease(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the overlayfs probe needs root")
	}
	have := parse(t, Release())
	for _, f := range Features() {
		want := parse(t, f.Since)
		newer := have[0] > want[0] || have[0] == want[0] && have[1] >= want[1]
		if newer != (f.Err == nil) {
			t.Errorf("kernel %s, %s (since %s): probe says %v", Release(), f.Name, f.Since, f.Err)
		}
	}
	if (have[0] > 5 || have[0] == 5 && have[1] >= 6) != (Required() == nil) {
		t.Errorf("kernel %s: Required() = %v", Release(), Required())
	}
}

func parse(t *testing.T, release string) [2]int {
	t.Helper()
	var v [2]int
	if _, err := fmt.Sscanf(release, "%d.%d", &v[0], &v[1]); err != nil {
		t.Fatalf("release %q: %v", release, err)
	}
	return v
}
