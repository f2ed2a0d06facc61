/*
 * /init of the mapwalk real-kernel test guest.
 *
 * Mounts proc, sysfs and devtmpfs, then writes the guest's ground truth to the second
 * serial port (/dev/ttyS1) as sections:
 *
 *     MAPWALK-BEGIN <name>
 *     <the exact bytes of the file>
 *     MAPWALK-END <name> <byte count>
 *
 * (a newline is added before the END line when the content does not end with one; it
 * is not counted). When everything is written it prints `MAPWALK-READY` on the console
 * (ttyS0) and sleeps forever: PID 1 must never exit, and later versions keep BPF map
 * file descriptors open here. A failure prints `MAPWALK-ERROR <what>` on the console
 * and still sleeps, so the host sees the error rather than a kernel panic.
 *
 * Built with `gcc -static -O2` by harness/e2e/setup.sh; needs nothing but static glibc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* The console (ttyS0) and the data port (ttyS1). */
static int con = 2;
static int data = -1;

static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	/* Best effort: there is nobody to tell if the console fails. */
	ssize_t w = write(con, buf, (size_t)n);
	(void)w;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void mount_fs(const char *src, const char *dir, const char *type)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		say("MAPWALK-ERROR mkdir %s: %s\n", dir, strerror(errno));
	if (mount(src, dir, type, 0, NULL) != 0 && errno != EBUSY)
		say("MAPWALK-ERROR mount %s on %s: %s\n", type, dir, strerror(errno));
}

/* Opens the console as stdin/stdout/stderr when the kernel could not (the initramfs
 * holds no /dev/console node: devtmpfs provides it). */
static void open_console(void)
{
	if (fcntl(1, F_GETFD) != -1) {
		con = 1;
		return;
	}
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
	con = 1;
}

/* Copies `path` to the data port as one section. Returns 0 on success. */
static int section(const char *name, const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say("MAPWALK-ERROR open %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[256];
	int n = snprintf(line, sizeof line, "MAPWALK-BEGIN %s\n", name);
	if (write_all(data, line, (size_t)n) != 0)
		goto write_err;
	unsigned long long total = 0;
	char last = '\n';
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			say("MAPWALK-ERROR read %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (write_all(data, buf, (size_t)r) != 0)
			goto write_err;
		total += (unsigned long long)r;
		last = buf[r - 1];
	}
	close(fd);
	n = snprintf(line, sizeof line, "%sMAPWALK-END %s %llu\n", last == '\n' ? "" : "\n", name, total);
	if (write_all(data, line, (size_t)n) != 0)
		goto write_err;
	return 0;
write_err:
	say("MAPWALK-ERROR write ttyS1: %s\n", strerror(errno));
	return -1;
}

int main(void)
{
	mount_fs("devtmpfs", "/dev", "devtmpfs");
	open_console();
	mount_fs("proc", "/proc", "proc");
	mount_fs("sysfs", "/sys", "sysfs");

	int ok = 1;
	data = open("/dev/ttyS1", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (data < 0) {
		say("MAPWALK-ERROR open /dev/ttyS1: %s\n", strerror(errno));
		ok = 0;
	} else {
		/* Raw: no newline translation, so byte counts hold on the host. */
		struct termios t;
		if (tcgetattr(data, &t) == 0) {
			cfmakeraw(&t);
			cfsetospeed(&t, B115200);
			tcsetattr(data, TCSANOW, &t);
		}
		static const char *const sections[][2] = {
			{ "version", "/proc/version" },
			{ "cmdline", "/proc/cmdline" },
			{ "iomem", "/proc/iomem" },
			{ "cpu-possible", "/sys/devices/system/cpu/possible" },
			{ "kallsyms", "/proc/kallsyms" },
		};
		for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
			if (section(sections[i][0], sections[i][1]) != 0)
				ok = 0;
		/* Everything written has left the guest before READY is announced. */
		tcdrain(data);
	}
	if (ok)
		say("MAPWALK-READY\n");
	else
		say("MAPWALK-ERROR setup incomplete\n");
	for (;;)
		pause();
}
