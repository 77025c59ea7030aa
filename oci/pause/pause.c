// The pod PID-namespace init. It runs as a constructor, before the Go runtime starts, whenever the
// binary linking package pause is started as "<binary> pause <dir>", and never returns: no Go heap,
// no threads, a few pages of memory.
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_ID 65535

static void die(const char *what) {
	static const char prefix[] = "berth pause: ";
	(void)!write(2, prefix, sizeof(prefix) - 1);
	(void)!write(2, what, strlen(what));
	(void)!write(2, "\n", 1);
	_exit(1);
}

__attribute__((constructor)) static void berth_pause(void) {
	char buf[4096];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	// cmdline is argv joined by NULs: skip argv[0].
	char *arg = memchr(buf, '\0', (size_t)n);
	if (arg == NULL || ++arg >= buf + n || strcmp(arg, "pause") != 0)
		return;
	char *dir = arg + strlen(arg) + 1;
	if (dir >= buf + n || *dir == '\0')
		die("usage: pause <empty directory>");

	// Signals are taken synchronously. Blocked signals are queued even for a namespace init, which
	// otherwise drops signals it has no handler for.
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");

	if (chroot(dir) < 0 || chdir("/") < 0)
		die("chroot");
	// Leaving uid 0 clears every capability.
	if (setgroups(0, NULL) < 0 || setgid(PAUSE_ID) < 0 || setuid(PAUSE_ID) < 0)
		die("drop privileges");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("no_new_privs");

	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
		if (sig == SIGCHLD)
			while (waitpid(-1, NULL, WNOHANG) > 0)
				;
	}
}
