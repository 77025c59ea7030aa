// Package pause is the init process of a pod's shared PID namespace (namespace_options.pid = POD).
//
// Linking this package adds a C constructor (pause.c) to the binary: started as "<binary> pause <dir>",
// the binary never reaches the Go runtime. It chroots to dir (an empty directory), drops to uid and gid
// 65535 without capabilities, reaps the zombies reparented to it as PID 1, and exits 0 on SIGTERM or
// SIGINT. Its memory is a few private pages; the rest is the binary's shared text.
package pause

import "C"

import (
	"os/exec"
	"syscall"
)

// Arg is the first argument that makes a binary linking this package the pause process.
const Arg = "pause"

// Command returns the command that runs the pause process from binary (which must link this package)
// as PID 1 of a new PID namespace, chrooted to the empty directory dir.
func Command(binary, dir string) *exec.Cmd {
	cmd := exec.Command(binary, Arg, dir)
	cmd.Args[0] = "berth-pause"
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	return cmd
}
