package specgen

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berthcri/berth/internal/errdefs"
)

// ResolveUser works out the user, primary group and supplementary groups of a container's first process, as
// containerd does, reading /etc/passwd and /etc/group inside rootfs (symlinks resolved inside it, only regular files opened):
//
//   - run_as_username, else run_as_user, else the image's USER ("name", "uid", "name:group", "uid:gid"), else
//     root; run_as_group replaces the group and needs one of the first two;
//   - a user name must exist in the image; a uid need not (its group is then 0 unless given);
//   - the groups are the primary group, with SupplementalGroupsPolicyMerge the groups /etc/group lists the user
//     in, and supplemental_groups; sorted, without duplicates.
//
// The result goes into SpecInput.User and is what ContainerStatus.user reports.
func ResolveUser(rootfs, imageUser string, sc *LinuxContainerSecurityContext) (specs.User, error) {
	if sc == nil {
		sc = &LinuxContainerSecurityContext{}
	}
	userPart, groupPart, err := userString(imageUser, sc)
	if err != nil {
		return specs.User{}, err
	}
	db, err := openUserDB(rootfs)
	if err != nil {
		return specs.User{}, err
	}

	var u specs.User
	name := ""
	if id, ok := parseID(userPart); ok {
		u.UID = id
		if p, found := db.userByID(id); found {
			u.GID, name = p.gid, p.name
		}
	} else {
		p, found := db.userByName(userPart)
		if !found {
			field := "linux.security_context.run_as_username"
			if sc.RunAsUsername == "" {
				field = "image config User"
			}
			return specs.User{}, errdefs.InvalidArgument(field, "user %q not found in the image's /etc/passwd", userPart)
		}
		u.UID, u.GID, name = p.uid, p.gid, p.name
	}
	if groupPart != "" {
		if id, ok := parseID(groupPart); ok {
			u.GID = id
		} else if g, found := db.groupByName(groupPart); found {
			u.GID = g.gid
		} else {
			return specs.User{}, errdefs.InvalidArgument("image config User", "group %q not found in the image's /etc/group", groupPart)
		}
	}

	gids := []uint32{u.GID}
	if sc.SupplementalGroupsPolicy != SupplementalGroupsPolicyStrict && name != "" {
		for _, g := range db.groups {
			// A group named like the user is its primary group, not a supplementary one.
			if g.name != name && slices.Contains(g.members, name) {
				gids = append(gids, g.gid)
			}
		}
	}
	for _, g := range sc.SupplementalGroups {
		id, err := checkID("linux.security_context.supplemental_groups", g)
		if err != nil {
			return specs.User{}, err
		}
		gids = append(gids, id)
	}
	slices.Sort(gids)
	u.AdditionalGids = slices.Compact(gids)
	return u, nil
}

// userString picks the user and group strings from the security context or the image.
func userString(imageUser string, sc *LinuxContainerSecurityContext) (user, group string, err error) {
	if sc.RunAsUser != nil && sc.RunAsUsername != "" {
		return "", "", errdefs.InvalidArgument("linux.security_context.run_as_username", "set together with run_as_user")
	}
	switch {
	case sc.RunAsUsername != "":
		user = sc.RunAsUsername
	case sc.RunAsUser != nil:
		id, err := checkID("linux.security_context.run_as_user", *sc.RunAsUser)
		if err != nil {
			return "", "", err
		}
		user = strconv.FormatUint(uint64(id), 10)
	}
	if sc.RunAsGroup != nil {
		if user == "" {
			return "", "", errdefs.InvalidArgument("linux.security_context.run_as_group", "set without run_as_user or run_as_username")
		}
		id, err := checkID("linux.security_context.run_as_group", *sc.RunAsGroup)
		if err != nil {
			return "", "", err
		}
		return user, strconv.FormatUint(uint64(id), 10), nil
	}
	if user != "" {
		return user, "", nil
	}
	if imageUser == "" {
		return "0", "", nil
	}
	user, group, _ = strings.Cut(imageUser, ":")
	if user == "" || strings.Contains(group, ":") {
		return "", "", errdefs.InvalidArgument("image config User", "invalid user %q", imageUser)
	}
	return user, group, nil
}

func checkID(field string, v int64) (uint32, error) {
	if v < 0 || v >= math.MaxUint32 {
		return 0, errdefs.InvalidArgument(field, "%d is not a valid id", v)
	}
	return uint32(v), nil
}

func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil && v < math.MaxUint32
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// userDB is an image's /etc/passwd and /etc/group; a missing file is empty.
type userDB struct {
	users  []passwdEntry
	groups []groupEntry
}

func (db *userDB) userByID(id uint32) (passwdEntry, bool) {
	i := slices.IndexFunc(db.users, func(p passwdEntry) bool { return p.uid == id })
	if i < 0 {
		return passwdEntry{}, false
	}
	return db.users[i], true
}

func (db *userDB) userByName(name string) (passwdEntry, bool) {
	i := slices.IndexFunc(db.users, func(p passwdEntry) bool { return p.name == name })
	if i < 0 {
		return passwdEntry{}, false
	}
	return db.users[i], true
}

func (db *userDB) groupByName(name string) (groupEntry, bool) {
	i := slices.IndexFunc(db.groups, func(g groupEntry) bool { return g.name == name })
	if i < 0 {
		return groupEntry{}, false
	}
	return db.groups[i], true
}

// maxUserFile bounds what is read of /etc/passwd and /etc/group: they come from untrusted images.
const maxUserFile = 16 << 20

func openUserDB(rootfs string) (*userDB, error) {
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", &os.PathError{Op: "open", Path: rootfs, Err: err})
	}
	defer unix.Close(root)
	db := &userDB{}
	err = readUserFile(root, "etc/passwd", func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if ok1 && ok2 {
			db.users = append(db.users, passwdEntry{name: f[0], uid: uid, gid: gid})
		}
	})
	if err != nil {
		return nil, err
	}
	err = readUserFile(root, "etc/group", func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, ok := parseID(f[2])
		if !ok {
			return
		}
		g := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			g.members = strings.Split(f[3], ",")
		}
		db.groups = append(db.groups, g)
	})
	if err != nil {
		return nil, err
	}
	return db, nil
}

// readUserFile calls fn with the colon-separated fields of each entry of a passwd-style file.
func readUserFile(root int, name string, fn func([]string)) error {
	f, err := openUserFile(root, name)
	if err != nil || f == nil {
		return err
	}
	defer f.Close()
	s := bufio.NewScanner(io.LimitReader(f, maxUserFile))
	s.Buffer(make([]byte, 4096), maxUserFile)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("read image's /%s: %w", name, err)
	}
	return nil
}

// openUserFile opens name inside the rootfs for reading, nil when the image has no such file. It is resolved as
// the container would see it: symlinks, absolute or relative, stay inside the rootfs as in a chroot (openat2
// RESOLVE_IN_ROOT), with no /proc magic links and no mount crossings. berthd is root on the host, and opening a
// device node can do things (a watchdog starts, a tape rewinds, a FIFO blocks), so the file is first opened O_PATH,
// which opens nothing, and reopened for reading, through its /proc/self/fd link to that very inode, only when it is
// a regular file.
func openUserFile(root int, name string) (*os.File, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	var fd int
	var err error
	for range 16 {
		// EAGAIN: a concurrent rename or mount somewhere on the host made the kernel give up; try again.
		if fd, err = unix.Openat2(root, name, &how); err != unix.EAGAIN {
			break
		}
	}
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR:
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("open image's /%s: %w", name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat image's /%s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errdefs.FailedPrecondition("image's /%s is not a regular file (mode %#o)", name, st.Mode)
	}
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open image's /%s: %w", name, err)
	}
	return os.NewFile(uintptr(rfd), "/"+name), nil
}
