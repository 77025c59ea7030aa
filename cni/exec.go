package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/berthcri/berth/internal/tail"
)

// pluginExec runs CNI plugins as libcni's invoke.RawExec does, but drains their output through internal/tail:
// RawExec buffers a plugin's stdout and stderr whole, so a plugin that floods either grows berthd. The result
// (stdout) is kept up to maxPluginResult, the end of stderr up to tail.MessageSize.
type pluginExec struct {
	log *slog.Logger
	version.PluginDecoder
}

var _ invoke.Exec = (*pluginExec)(nil)

const (
	// maxPluginResult bounds a plugin's result: a few KiB with many IPs and routes.
	maxPluginResult = 1 << 20
	// pluginWaitDelay bounds the wait for a plugin's output once it exited: a daemon it started (the dhcp plugin)
	// that kept the pipe must not hold the pod's setup.
	pluginWaitDelay = 2 * time.Second
	// textBusyRetries, each a second apart, cover a plugin binary being replaced while it is run ("text file
	// busy"), as libcni's RawExec does.
	textBusyRetries = 5
)

func (e *pluginExec) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		stdout, stderr := tail.New(maxPluginResult), tail.New(tail.MessageSize)
		cmd := exec.CommandContext(ctx, path)
		cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, bytes.NewReader(stdin), stdout, stderr
		cmd.WaitDelay = pluginWaitDelay
		err := cmd.Run()
		if errors.Is(err, syscall.ETXTBSY) && attempt < textBusyRetries {
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%s: %w (%w)", path, err, ctx.Err())
			}
		}
		if err != nil {
			return nil, pluginError(err, stdout, stderr)
		}
		if stderr.Dropped() > 0 || len(stderr.Bytes()) > 0 {
			e.log.Info("cni plugin", "plugin", path, "stderr", stderr.String())
		}
		if stdout.Dropped() > 0 {
			return nil, fmt.Errorf("%s: result larger than %d bytes", path, maxPluginResult)
		}
		return bytes.Clone(stdout.Bytes()), nil
	}
}

func (e *pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// pluginError is the error of a failed plugin: the CNI error it printed on stdout, else the end of its stderr, as
// RawExec words them.
func pluginError(err error, stdout, stderr *tail.Buffer) error {
	out := stdout.Bytes()
	switch {
	case len(out) == 0 && stderr.Dropped() == 0 && len(stderr.Bytes()) == 0:
		return &types.Error{Msg: fmt.Sprintf("netplugin failed with no error message: %v", err)}
	case len(out) == 0:
		return &types.Error{Msg: fmt.Sprintf("netplugin failed: %q: %v", stderr, err)}
	case stdout.Dropped() > 0:
		return &types.Error{Msg: fmt.Sprintf("netplugin failed with more than %d bytes of output: %v", maxPluginResult, err)}
	}
	var e types.Error
	if perr := json.Unmarshal(out, &e); perr != nil {
		end := tail.New(tail.MessageSize)
		end.Write(out)
		return &types.Error{Msg: fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", end, perr)}
	}
	return &e
}
