// Package version holds berth's build version, set by the linker:
// -ldflags "-X github.com/berthcri/berth/internal/version.Version=1.2.3".
package version

// Version is berth's semantic version; "0.0.0-dev" for untagged builds.
var Version = "0.0.0-dev"

// RuntimeName is what berth reports as its CRI runtime name.
const RuntimeName = "berth"
