/*
 * Local-storage maps (TASK, INODE, SK and CGRP_STORAGE), on every guest but the
 * in-guest ones (with /bin/mapwalk: their live dump must stay whole, and bpf() cannot
 * list local storage).
 *
 * storage_setup(f) loads BTF (key `int`, value `struct mw_sv { unsigned int a, b; }`,
 * as the kernel requires of local storage) and makes, each with value_size 8:
 *
 *     mw_task   TASK_STORAGE   /init itself and two children (comm mw_child0/1, which
 *                              pause forever), by pidfd
 *     mw_inode  INODE_STORAGE  /init, /dev/null and a new /tmp/mw-inode, by fd
 *     mw_sk     SK_STORAGE     with lo up: a TCP listener on 127.0.0.1:47001, a TCP
 *                              socket connected to it, UDP on 127.0.0.1:47002 and on
 *                              [::1]:47003, by fd
 *     mw_cgrp   CGRP_STORAGE   (Linux 6.2+) with cgroup2 on /sys/fs/cgroup: the root
 *                              cgroup and a new one, mw_cg, by directory fd
 *
 * Element n of map m holds a = 0x5a000000 | m << 8 | n, b = 0x11111111 * (n + 1). It
 * appends each map's `MAP` line to `f` (section `bpf-maps`, no value lines: bpf()
 * cannot list them) and writes section `bpf-storage`, one line per element, with the
 * owner as the kernel reports it from user space and the value as a lookup returns
 * it:
 *
 *     TASK <id> pid=<pid> tgid=<tgid> comm=<comm> value=<hex>
 *     INODE <id> ino=<st_ino> dev=<major>:<minor> value=<hex>
 *     SOCK <id> cookie=<SO_COOKIE|unasked> family=<2|10> local=<addr> lport=<port>
 *          remote=<addr> rport=<port> value=<hex>
 *     CGRP <id> id=<st_ino, the cgroup id> name=<name, - for the root's empty one>
 *          value=<hex>
 *     SKIP <type> errno=<n>   (a type this kernel does not have: CGRP_STORAGE on 6.1)
 *
 * One socket's cookie is never asked for (`unasked`): the kernel assigns cookies on
 * first use, so memory must show 0 for it. Failures are said on the console.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
/* BPF_MAP_TYPE_CGRP_STORAGE (Linux 6.2; the build host's headers may predate it). */
#define MW_CGRP_STORAGE 32
#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static int btf_fd = -1;

/* BTF: [1] int, [2] unsigned int, [3] struct mw_sv { unsigned int a, b; }. */
static int load_btf(void)
{
	static const char strs[] = "\0int\0unsigned int\0mw_sv\0a\0b";
	enum { S_INT = 1, S_UINT = 5, S_SV = 18, S_A = 24, S_B = 26 };
	static const uint32_t types[] = {
		S_INT, 1u << 24, 4, 1u << 24 | 32,	/* [1] int (signed) */
		S_UINT, 1u << 24, 4, 32,		/* [2] unsigned int */
		S_SV, 4u << 24 | 2, 8,			/* [3] struct mw_sv */
		S_A, 2, 0,				/*     unsigned int a */
		S_B, 2, 32,				/*     unsigned int b */
	};
	btf_fd = btf_load("storage", types, sizeof types, strs, sizeof strs);
	return btf_fd < 0 ? -1 : 0;
}

/* A local-storage map typed by the BTF; 1 when the kernel has no such type, -1 on
 * failure. */
static int create(struct map_spec *m, FILE *f, FILE *s)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = m->type;
	a.key_size = m->key_size;
	a.value_size = m->value_size;
	a.max_entries = m->max_entries;
	a.map_flags = m->flags;
	a.btf_fd = (uint32_t)btf_fd;
	a.btf_key_type_id = 1;
	a.btf_value_type_id = 3;
	strncpy(a.map_name, m->name, sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0 && errno == EINVAL && m->type == MW_CGRP_STORAGE) {
		fprintf(s, "SKIP %u errno=%d\n", m->type, errno);
		return 1;
	}
	if (fd < 0) {
		say("MAPWALK-ERROR storage: create %s errno=%d (%s)\n", m->name, errno,
		    strerror(errno));
		return -1;
	}
	m->fd = (int)fd;
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)m->fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0)
		return -1;
	m->id = info.id;
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", m->id,
		m->type, m->name, m->key_size, m->value_size, m->max_entries, m->flags);
	return 0;
}

/* Stores element n under owner fd `owner`, and writes ` value=<hex>` of what a lookup
 * returns to s. */
static int put(struct map_spec *m, unsigned mi, unsigned n, int owner, FILE *s)
{
	uint32_t v[2] = { 0x5a000000u | mi << 8 | n, 0x11111111u * (n + 1) }, back[2];
	if (map_update(m, &owner, v) != 0 || map_lookup(m, &owner, back) != 0)
		return -1;
	fputs(" value=", s);
	hex(s, (const unsigned char *)back, sizeof back);
	fputc('\n', s);
	return 0;
}

/* A child that names itself and pauses forever; its pid once it is named. */
static pid_t child(const char *name)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_NAME, name);
		ssize_t w = write(p[1], "x", 1);
		(void)w;
		for (;;)
			pause();
	}
	char c;
	ssize_t r = pid > 0 ? read(p[0], &c, 1) : -1;
	close(p[0]);
	close(p[1]);
	return r == 1 ? pid : -1;
}

static int tasks(struct map_spec *m, FILE *s)
{
	pid_t pids[3] = { getpid(), child("mw_child0"), child("mw_child1") };
	for (unsigned n = 0; n < 3; n++) {
		if (pids[n] <= 0)
			return -1;
		int pfd = (int)syscall(SYS_pidfd_open, pids[n], 0);
		char path[64], comm[32] = "";
		snprintf(path, sizeof path, "/proc/%d/comm", pids[n]);
		FILE *c = fopen(path, "r");
		if (pfd < 0 || !c || !fgets(comm, sizeof comm, c)) {
			say("MAPWALK-ERROR storage: pidfd/comm of %d: %s\n", pids[n], strerror(errno));
			if (c)
				fclose(c);
			return -1;
		}
		fclose(c);
		comm[strcspn(comm, "\n")] = 0;
		/* Processes: tgid is the pid. */
		fprintf(s, "TASK %u pid=%d tgid=%d comm=%s", m->id, pids[n], pids[n], comm);
		if (put(m, 0, n, pfd, s) != 0)
			return -1;
	}
	return 0;
}

static int inodes(struct map_spec *m, FILE *s)
{
	int made = open("/tmp/mw-inode", O_RDWR | O_CREAT, 0644);
	int fds[3] = { open("/init", O_RDONLY), open("/dev/null", O_RDONLY), made };
	for (unsigned n = 0; n < 3; n++) {
		struct stat st;
		if (fds[n] < 0 || fstat(fds[n], &st) != 0) {
			say("MAPWALK-ERROR storage: inode %u: %s\n", n, strerror(errno));
			return -1;
		}
		fprintf(s, "INODE %u ino=%llu dev=%u:%u", m->id, (unsigned long long)st.st_ino,
			major(st.st_dev), minor(st.st_dev));
		if (put(m, 1, n, fds[n], s) != 0)
			return -1;
	}
	return 0;
}

static void lo_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
		say("MAPWALK-ERROR storage: lo flags: %s\n", strerror(errno));
	ifr.ifr_flags |= IFF_UP;
	if (fd >= 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
		say("MAPWALK-ERROR storage: lo up: %s\n", strerror(errno));
	if (fd >= 0)
		close(fd);
}

/* `<addr> lport=<port>` or `<addr> rport=<port>` of a socket address. */
static void addr(FILE *s, const struct sockaddr_storage *a, const char *port)
{
	char text[INET6_ADDRSTRLEN] = "";
	unsigned p = 0;
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const void *)a;
		inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof text);
		p = ntohs(a6->sin6_port);
	} else {
		const struct sockaddr_in *a4 = (const void *)a;
		inet_ntop(AF_INET, &a4->sin_addr, text, sizeof text);
		p = ntohs(a4->sin_port);
	}
	fprintf(s, "%s %s=%u", text, port, p);
}

static int bound(int family, int type, const char *ip, unsigned port)
{
	int fd = socket(family, type, 0);
	struct sockaddr_storage a;
	memset(&a, 0, sizeof a);
	socklen_t len;
	if (family == AF_INET6) {
		struct sockaddr_in6 *a6 = (void *)&a;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		inet_pton(AF_INET6, ip, &a6->sin6_addr);
		len = sizeof *a6;
	} else {
		struct sockaddr_in *a4 = (void *)&a;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		inet_pton(AF_INET, ip, &a4->sin_addr);
		len = sizeof *a4;
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, len) != 0) {
		say("MAPWALK-ERROR storage: bind %s:%u: %s\n", ip, port, strerror(errno));
		return -1;
	}
	return fd;
}

static int socks(struct map_spec *m, FILE *s)
{
	lo_up();
	int listener = bound(AF_INET, SOCK_STREAM, "127.0.0.1", 47001);
	if (listener < 0 || listen(listener, 4) != 0)
		return -1;
	int client = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(47001) };
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	if (client < 0 || connect(client, (struct sockaddr *)&to, sizeof to) != 0) {
		say("MAPWALK-ERROR storage: connect: %s\n", strerror(errno));
		return -1;
	}
	int fds[4] = { listener, client, bound(AF_INET, SOCK_DGRAM, "127.0.0.1", 47002),
		       bound(AF_INET6, SOCK_DGRAM, "::1", 47003) };
	for (unsigned n = 0; n < 4; n++) {
		if (fds[n] < 0)
			return -1;
		struct sockaddr_storage local, remote;
		socklen_t ll = sizeof local, rl = sizeof remote;
		memset(&remote, 0, sizeof remote);
		if (getsockname(fds[n], (struct sockaddr *)&local, &ll) != 0)
			return -1;
		if (getpeername(fds[n], (struct sockaddr *)&remote, &rl) != 0)
			remote.ss_family = local.ss_family;
		fprintf(s, "SOCK %u cookie=", m->id);
		/* The UDP IPv4 socket's cookie is never asked for. */
		uint64_t cookie = 0;
		socklen_t cl = sizeof cookie;
		if (n == 2)
			fputs("unasked", s);
		else if (getsockopt(fds[n], SOL_SOCKET, SO_COOKIE, &cookie, &cl) == 0)
			fprintf(s, "%llu", (unsigned long long)cookie);
		else
			return -1;
		fprintf(s, " family=%u local=", local.ss_family);
		addr(s, &local, "lport");
		fputs(" remote=", s);
		addr(s, &remote, "rport");
		if (put(m, 2, n, fds[n], s) != 0)
			return -1;
	}
	return 0;
}

static int cgroups(struct map_spec *m, FILE *s)
{
	if (mount("none", "/sys/fs/cgroup", "cgroup2", 0, NULL) != 0 && errno != EBUSY) {
		say("MAPWALK-ERROR storage: mount cgroup2: %s\n", strerror(errno));
		return -1;
	}
	if (mkdir("/sys/fs/cgroup/mw_cg", 0755) != 0 && errno != EEXIST)
		return -1;
	static const char *const dirs[2][2] = { { "/sys/fs/cgroup", "-" },
						{ "/sys/fs/cgroup/mw_cg", "mw_cg" } };
	for (unsigned n = 0; n < 2; n++) {
		int fd = open(dirs[n][0], O_RDONLY | O_DIRECTORY);
		struct stat st;
		if (fd < 0 || fstat(fd, &st) != 0) {
			say("MAPWALK-ERROR storage: %s: %s\n", dirs[n][0], strerror(errno));
			return -1;
		}
		fprintf(s, "CGRP %u id=%llu name=%s", m->id, (unsigned long long)st.st_ino,
			dirs[n][1]);
		if (put(m, 3, n, fd, s) != 0)
			return -1;
	}
	return 0;
}

int storage_setup(FILE *f)
{
	if (access("/bin/mapwalk", X_OK) == 0)
		return 0;
	static struct map_spec maps[4] = {
		{ "mw_task", BPF_MAP_TYPE_TASK_STORAGE, 4, 8, 0, BPF_F_NO_PREALLOC, 0, -1, 0 },
		{ "mw_inode", BPF_MAP_TYPE_INODE_STORAGE, 4, 8, 0, BPF_F_NO_PREALLOC, 0, -1, 0 },
		{ "mw_sk", BPF_MAP_TYPE_SK_STORAGE, 4, 8, 0, BPF_F_NO_PREALLOC, 0, -1, 0 },
		{ "mw_cgrp", MW_CGRP_STORAGE, 4, 8, 0, BPF_F_NO_PREALLOC, 0, -1, 0 },
	};
	int (*const fill[4])(struct map_spec *, FILE *) = { tasks, inodes, socks, cgroups };
	FILE *s = fopen("/tmp/bpf-storage", "w");
	if (!s || load_btf() != 0)
		return -1;
	int rc = 0;
	for (unsigned i = 0; i < 4; i++) {
		int made = create(&maps[i], f, s);
		if (made < 0 || (made == 0 && fill[i](&maps[i], s) != 0))
			rc = -1;
	}
	if (fclose(s) != 0 || section("bpf-storage", "/tmp/bpf-storage") != 0)
		rc = -1;
	return rc;
}
