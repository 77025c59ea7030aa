package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// busybox is one Debian busybox build: its bytes and the applets it reports.
type busybox struct {
	data    []byte
	applets []string // relative paths from `busybox --list-full`, e.g. "bin/ls", "usr/sbin/httpd"
}

// loadBusybox reads the binary at file and asks it for its applets. wantStatic guards against
// swapping the two builds: the static one runs `sh -c ls` in-process, which breaks the masked
// paths spec when used for the glibc image.
func loadBusybox(ctx context.Context, file string, wantStatic bool) (busybox, error) {
	f, err := elf.Open(file)
	if err != nil {
		return busybox{}, fmt.Errorf("busybox %s: %w", file, err)
	}
	static := f.Section(".interp") == nil
	f.Close()
	if static != wantStatic {
		return busybox{}, fmt.Errorf("busybox %s: statically linked = %v, want %v", file, static, wantStatic)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return busybox{}, fmt.Errorf("busybox: %w", err)
	}
	out, err := exec.CommandContext(ctx, file, "--list-full").Output()
	if err != nil {
		return busybox{}, fmt.Errorf("busybox %s --list-full: %w", file, err)
	}
	var applets []string
	for _, line := range strings.Fields(string(out)) {
		if a := cleanName(line); a != "bin/busybox" {
			applets = append(applets, a)
		}
	}
	if len(applets) == 0 {
		return busybox{}, fmt.Errorf("busybox %s --list-full: no applets", file)
	}
	return busybox{data: data, applets: applets}, nil
}

// Scripts for applets Debian's busybox leaves out but critest runs.
const (
	// HostIpc specs run `ipcs -m` and look for the shmid that ipcmk printed on the host.
	ipcsScript = `#!/bin/sh
# ipcs stand-in (Debian's busybox has no ipcs applet): lists shared memory segments only.
case "${1:--m}" in
-m) ;;
*) echo "ipcs: only -m is supported" >&2; exit 1 ;;
esac
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch"
tail -n +2 /proc/sysvipc/shm 2>/dev/null | while read -r key shmid perms size cpid lpid nattch uid rest; do
	printf '%-10s %-10s %-10s %-10s %-10s %-10s\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done
`
	// ExecSync timeout specs run `sh -c "pgrep sleep || true"` and expect empty output.
	pgrepScript = `#!/bin/sh
# pgrep stand-in (Debian's busybox has no pgrep applet): pgrep PATTERN, matched against comm.
if [ $# -ne 1 ]; then echo "usage: pgrep PATTERN" >&2; exit 2; fi
for d in /proc/[0-9]*; do
	read -r comm < "$d/comm" && echo "${d#/proc/} $comm"
done 2>/dev/null | awk -v pat="$1" -v self="$$" '
	{ pid = $1; comm = substr($0, length($1) + 2) }
	pid != self && comm ~ pat { print pid; n++ }
	END { exit n ? 0 : 1 }'
`
	passwdFile = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	groupFile = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
mail:x:8:
www-data:x:33:
operator:x:37:
users:x:100:
nobody:x:65534:
`
	// glibc reads passwd/group through NSS; files and dns are built into glibc >= 2.34.
	nsswitchFile = `passwd:   files
group:    files
shadow:   files
hosts:    files dns
networks: files
protocols: files
services: files
`
	envPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// shadowFor locks every account of a passwd file; 19723 is 2024-01-01 in days since 1970.
func shadowFor(passwd string) []byte {
	var b bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(passwd), "\n") {
		user, _, _ := strings.Cut(line, ":")
		fmt.Fprintf(&b, "%s:*:19723:0:99999:7:::\n", user)
	}
	return b.Bytes()
}

// baseTree is the layout shared by both bases: busybox with every applet a hard link (masking
// /bin/ls with a bind mount must not mask /bin/busybox), the stand-in scripts, the account files
// and the usual directories.
func baseTree(bb busybox) tree {
	t := tree{}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "etc", "home", "var", "var/spool", "var/spool/mail", "var/www"} {
		t.dir(d, 0o755)
	}
	t.dir("root", 0o700)
	t.dir("tmp", 0o1777)
	t.file("bin/busybox", 0o755, bb.data)
	for _, a := range bb.applets {
		t.hardlink(a, "bin/busybox")
	}
	t.file("bin/ipcs", 0o755, []byte(ipcsScript))
	t.file("bin/pgrep", 0o755, []byte(pgrepScript))
	t.file("etc/passwd", 0o644, []byte(passwdFile))
	t.file("etc/group", 0o644, []byte(groupFile))
	t.file("etc/shadow", 0o640, shadowFor(passwdFile))
	return t
}

// glibcTree adds the ELF interpreter and shared libraries a dynamic busybox needs, copied from the
// host, plus nsswitch.conf.
func glibcTree(bb busybox, libs map[string][]byte) tree {
	t := baseTree(bb)
	for p, data := range libs {
		t.file(p, 0o755, data)
	}
	t.file("etc/nsswitch.conf", 0o644, []byte(nsswitchFile))
	return t
}

// libDirs are where Debian keeps shared libraries; the image gets them under /lib/x86_64-linux-gnu,
// which is on the dynamic loader's built-in search path.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

const imageLibDir = "lib/x86_64-linux-gnu"

// sharedLibs resolves the ELF interpreter and the transitive DT_NEEDED libraries of the binary at
// file against the host, returning image path → content (symlinks followed).
func sharedLibs(file string) (map[string][]byte, error) {
	out := map[string][]byte{}
	interp, needed, err := elfDeps(file)
	if err != nil {
		return nil, err
	}
	if interp == "" {
		return nil, fmt.Errorf("%s: no ELF interpreter (statically linked)", file)
	}
	data, err := os.ReadFile(interp)
	if err != nil {
		return nil, fmt.Errorf("ELF interpreter of %s: %w", file, err)
	}
	out[cleanName(interp)] = data

	seen := map[string]bool{path.Base(interp): true}
	for len(needed) > 0 {
		lib := needed[0]
		needed = needed[1:]
		if seen[lib] {
			continue
		}
		seen[lib] = true
		host, err := findLib(lib)
		if err != nil {
			return nil, fmt.Errorf("%s needs %s: %w", file, lib, err)
		}
		data, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", host, err)
		}
		out[path.Join(imageLibDir, lib)] = data
		_, more, err := elfDeps(host)
		if err != nil {
			return nil, err
		}
		needed = append(needed, more...)
	}
	return out, nil
}

func elfDeps(file string) (interp string, needed []string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, fmt.Errorf("read ELF %s: %w", file, err)
	}
	defer f.Close()
	if s := f.Section(".interp"); s != nil {
		b, err := s.Data()
		if err != nil {
			return "", nil, fmt.Errorf("read ELF interpreter of %s: %w", file, err)
		}
		interp = string(bytes.TrimRight(b, "\x00"))
	}
	needed, err = f.ImportedLibraries()
	if err != nil {
		return "", nil, fmt.Errorf("read DT_NEEDED of %s: %w", file, err)
	}
	return interp, needed, nil
}

func findLib(name string) (string, error) {
	for _, dir := range libDirs {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("not found in %s", strings.Join(libDirs, ", "))
}
