package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/berthcri/berth/internal/tail"
)

// runner runs a command on the host.
type runner interface {
	Run(ctx context.Context, name string, args ...string) error
}

// hostRunner runs commands in the namespaces of the host's PID 1 (the pod has hostPID), through the host's own
// nsenter: what they start, such as berthd under the start script, belongs to the host and outlives the pod. With
// root "/" the installer runs on the host itself and commands run directly.
type hostRunner struct {
	root    string
	timeout time.Duration // bound of one command; 0: commandTimeout
}

// commandTimeout bounds one host command: a systemctl restart waits for its unit's start, which a kubelet or berthd
// that hangs at start would make endless.
const commandTimeout = 5 * time.Minute

const hostPATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func (r hostRunner) Run(ctx context.Context, name string, args ...string) error {
	timeout := r.timeout
	if timeout == 0 {
		timeout = commandTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var cmd *exec.Cmd
	if r.root == "/" {
		cmd = exec.CommandContext(ctx, name, args...)
	} else {
		nsenter, err := r.nsenter()
		if err != nil {
			return err
		}
		nsArgs := []string{"--target", "1", "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--", name}
		cmd = exec.CommandContext(ctx, nsenter, append(nsArgs, args...)...)
		// The path of nsenter is resolved after the chroot, in the host's file system.
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: r.root}
		cmd.Dir = "/"
	}
	cmd.Env = []string{hostPATH}
	cmd.WaitDelay = time.Second // a daemon it started that kept the output pipe must not hold the installer
	out := tail.New(tail.MessageSize)
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out after %s: %w: %s", strings.Join(append([]string{name}, args...), " "), timeout, ctx.Err(), out)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(append([]string{name}, args...), " "), err, out)
	}
	return nil
}

// nsenter finds the host's nsenter (util-linux), as a host path.
func (r hostRunner) nsenter() (string, error) {
	for _, p := range []string{"/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter", "/sbin/nsenter"} {
		full, err := securejoin.SecureJoin(r.root, p)
		if err != nil {
			continue
		}
		if _, err := os.Stat(full); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no nsenter on the host under %s (util-linux)", r.root)
}
