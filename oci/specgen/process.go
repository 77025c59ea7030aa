package specgen

import (
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berthcri/berth/internal/errdefs"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// processArgs merges command and args with the image as the kubelet documents it (and containerd does):
// a command replaces the entrypoint and drops the image's cmd; args replace the cmd. An entrypoint of [""]
// is no entrypoint.
func processArgs(c *ContainerConfig, img *ocispec.ImageConfig) ([]string, error) {
	command, args := c.Command, c.Args
	if len(command) == 0 {
		if len(args) == 0 {
			args = img.Cmd
		}
		if !(len(img.Entrypoint) == 1 && img.Entrypoint[0] == "") {
			command = img.Entrypoint
		}
	}
	out := append(append([]string(nil), command...), args...)
	if len(out) == 0 {
		return nil, errdefs.InvalidArgument("command", "no command specified and the image has no entrypoint or cmd")
	}
	return out, nil
}

// processEnv builds the environment like containerd: a default PATH, TERM=xterm with a terminal, HOSTNAME, then
// the image's env and the CRI envs; a later variable replaces an earlier one of the same name in place, and an
// image entry without "=" removes the variable.
func processEnv(c *ContainerConfig, img *ocispec.ImageConfig, hostname string) []string {
	env := []string{defaultPath}
	index := map[string]int{"PATH": 0}
	set := func(kv string) {
		k, _, ok := strings.Cut(kv, "=")
		i, seen := index[k]
		switch {
		case !ok && seen:
			env[i] = "" // removed below, keeping the indexes valid meanwhile
		case !ok:
		case seen:
			env[i] = kv
		default:
			index[k] = len(env)
			env = append(env, kv)
		}
	}
	if c.Tty {
		set("TERM=xterm")
	}
	set("HOSTNAME=" + hostname)
	for _, kv := range img.Env {
		set(kv)
	}
	for _, kv := range c.Envs {
		set(kv.Key + "=" + kv.Value)
	}
	out := env[:0]
	for _, kv := range env {
		if kv != "" {
			out = append(out, kv)
		}
	}
	return out
}

// workingDir is the CRI's, else the image's, else the root.
func workingDir(c *ContainerConfig, img *ocispec.ImageConfig) string {
	switch {
	case c.WorkingDir != "":
		return c.WorkingDir
	case img.WorkingDir != "":
		return img.WorkingDir
	}
	return "/"
}
