/*
 * The in-guest mapwalk: with /bin/mapwalk in the initramfs (the in-guest tests append
 * a static build), /init runs `mapwalk maps --json` and `mapwalk dump --all --json`
 * against the live kernel, times them, and sends their output and stderr to the host:
 * each map's JSON whole up to PIECE_SEND_MAX, larger ones as digests (see
 * dump_digests), so that the host compares the live view with its view from outside.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

#define MAPWALK_BIN "/bin/mapwalk"
#define DUMP "/tmp/mapwalk-dump"
/* A map's JSON up to this size goes to the host whole; a larger one as its digest. */
#define PIECE_SEND_MAX (256 * 1024)
#define MAX_PIECES 256

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs `path argv...` with stdout to `out` and stderr to `err` and waits. Returns its
 * wait status, -1 when it could not be run. */
static int run(const char *path, char *const argv[], const char *out, const char *err)
{
	pid_t pid = fork();
	if (pid < 0) {
		say("MAPWALK-ERROR fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(126);
		close(o);
		close(e);
		char *const envp[] = { "PATH=/bin", NULL };
		execve(path, argv, envp);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			say("MAPWALK-ERROR waitpid: %s\n", strerror(errno));
			return -1;
		}
	}
	return status;
}

/* `mapwalk <argv...>`, timed: prints `MAPWALK-INGUEST <what> status=.. bytes=.. ms=..`.
 * Returns 0 when it could be run, its wait status in `*status`. */
static int run_mapwalk(const char *what, char *const argv[], const char *out, const char *err,
		       int *status_out)
{
	long long t0 = now_ms();
	int status = run(MAPWALK_BIN, argv, out, err);
	if (status == -1)
		return -1;
	*status_out = status;
	struct stat st;
	long long bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
	say("MAPWALK-INGUEST %s status=%d bytes=%lld ms=%lld\n", what, status, bytes,
	    now_ms() - t0);
	return 0;
}

/* Reads all of `path` into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		say("MAPWALK-ERROR open %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char *buf = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (buf && got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			say("MAPWALK-ERROR read %s\n", path);
			free(buf);
			buf = NULL;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

static int write_file(const char *path, const char *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_all(fd, p, len) != 0) {
		say("MAPWALK-ERROR write %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return close(fd);
}

/* Splits the JSON array of `dump --all --json` into its top-level objects (one per
 * map; strings are skipped, escapes included). Returns their count, -1 when the text
 * is no such array or has more than MAX_PIECES. */
static int split_maps(const char *p, size_t len, size_t off[], size_t plen[])
{
	int n = 0, depth = 0, in_str = 0, esc = 0;
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (c == '"') {
			in_str = 1;
		} else if (c == '[' || c == '{') {
			if (depth == 1 && c == '{')
				start = i;
			depth++;
		} else if (c == ']' || c == '}') {
			depth--;
			if (depth < 0)
				return -1;
			if (depth == 1 && c == '}') {
				if (n == MAX_PIECES)
					return -1;
				off[n] = start;
				plen[n] = i + 1 - start;
				n++;
			}
		}
	}
	return depth == 0 && !in_str ? n : -1;
}

/* The digest sections of the dump: `mapwalk-dump-pieces` (`<index> <offset> <bytes>`
 * per map, in the dump's order), `mapwalk-dump-sha256` (busybox sha256sum of the whole
 * dump, then of each map's bytes) and `mapwalk-dump-map-<index>` (the bytes of each
 * map whose JSON is at most PIECE_SEND_MAX). */
static int dump_digests(void)
{
	static size_t off[MAX_PIECES], plen[MAX_PIECES];
	static char paths[MAX_PIECES][32];
	static char *argv[MAX_PIECES + 4];
	size_t len;
	char *dump = slurp(DUMP, &len);
	if (!dump)
		return -1;
	int n = split_maps(dump, len, off, plen);
	if (n < 0) {
		say("MAPWALK-ERROR " DUMP ": not a JSON array of at most %d maps\n", MAX_PIECES);
		free(dump);
		return -1;
	}
	FILE *f = fopen("/tmp/mapwalk-dump-pieces", "w");
	if (!f) {
		free(dump);
		return -1;
	}
	mkdir("/tmp/mwd", 0755);
	int argc = 0, rc = 0;
	argv[argc++] = "sha256sum";
	argv[argc++] = DUMP;
	for (int i = 0; i < n; i++) {
		fprintf(f, "%d %zu %zu\n", i, off[i], plen[i]);
		snprintf(paths[i], sizeof paths[i], "/tmp/mwd/%d", i);
		if (write_file(paths[i], dump + off[i], plen[i]) != 0)
			rc = -1;
		argv[argc++] = paths[i];
	}
	argv[argc] = NULL;
	free(dump);
	if (fclose(f) != 0 || rc != 0)
		return -1;
	int status = run("/bin/busybox", argv, "/tmp/mapwalk-dump-sha256", "/tmp/mapwalk-dump-sha256-stderr");
	if (status != 0) {
		say("MAPWALK-ERROR busybox sha256sum: status %d\n", status);
		return -1;
	}
	if (section("mapwalk-dump-pieces", "/tmp/mapwalk-dump-pieces") != 0 ||
	    section("mapwalk-dump-sha256", "/tmp/mapwalk-dump-sha256") != 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (plen[i] > PIECE_SEND_MAX)
			continue;
		char name[48];
		snprintf(name, sizeof name, "mapwalk-dump-map-%d", i);
		if (section(name, paths[i]) != 0)
			return -1;
	}
	return 0;
}

/* One more map for the in-guest guests only (not in `bpf-maps`): `mw_btf`, an ARRAY
 * whose key and value have BTF types, so that both views render them through BTF
 * (the live view from the kernel's BTF object by id, the memory view from the
 * `struct btf` in guest memory): key `int`, value
 * `struct mw_val { int a; unsigned int b; long long unsigned int c; }`, 4 entries of
 * LCG bytes. Prints `MAPWALK-INGUEST btf-map id=<id>` on the console. Returns 0 on
 * success. */
static int make_btf_map(void)
{
	static const char strs[] = "\0int\0unsigned int\0long long unsigned int\0mw_val\0a\0b\0c";
	enum { S_INT = 1, S_UINT = 5, S_ULL = 18, S_MW_VAL = 41, S_A = 48, S_B = 50, S_C = 52 };
	/* Kinds: INT 1, STRUCT 4; an INT's extra word: encoding << 24 | bits. */
	static const uint32_t types[] = {
		S_INT, 1u << 24, 4, 1u << 24 | 32,	/* [1] int (signed) */
		S_UINT, 1u << 24, 4, 32,		/* [2] unsigned int */
		S_ULL, 1u << 24, 8, 64,			/* [3] long long unsigned int */
		S_MW_VAL, 4u << 24 | 3, 16,		/* [4] struct mw_val, 3 members */
		S_A, 1, 0,				/*     int a (bit offset 0) */
		S_B, 2, 32,				/*     unsigned int b */
		S_C, 3, 64,				/*     long long unsigned int c */
	};
	int btf_fd = btf_load("mw_btf", types, sizeof types, strs, sizeof strs);
	if (btf_fd < 0)
		return -1;
	union bpf_attr a;
	struct map_spec m = { "mw_btf", BPF_MAP_TYPE_ARRAY, 4, 16, 4, 0, 0, -1, 0 };
	memset(&a, 0, sizeof a);
	a.map_type = m.type;
	a.key_size = m.key_size;
	a.value_size = m.value_size;
	a.max_entries = m.max_entries;
	a.btf_fd = (uint32_t)btf_fd;
	a.btf_key_type_id = 1;
	a.btf_value_type_id = 4;
	strncpy(a.map_name, m.name, sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR create mw_btf errno=%d (%s)\n", errno, strerror(errno));
		return -1;
	}
	m.fd = (int)fd;
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)m.fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0) {
		say("MAPWALK-ERROR ERR info mw_btf errno=%d (%s)\n", errno, strerror(errno));
		return -1;
	}
	for (uint32_t k = 0; k < m.max_entries; k++) {
		unsigned char value[16];
		for (size_t b = 0; b < sizeof value; b++)
			value[b] = lcg_byte();
		if (map_update(&m, &k, value) != 0)
			return -1;
	}
	say("MAPWALK-INGUEST btf-map id=%u\n", info.id);
	return 0;
}

/* With /bin/mapwalk present: its live view of every map, to the host. Returns 0 on
 * success (the runs' own exit statuses are for the host to judge). */
int inguest_mapwalk(void)
{
	if (access(MAPWALK_BIN, X_OK) != 0)
		return 0;
	if (make_btf_map() != 0)
		return -1;
	static char *const maps_argv[] = { "mapwalk", "maps", "--json", NULL };
	static char *const dump_argv[] = { "mapwalk", "dump", "--all", "--json", NULL };
	int maps_status, dump_status;
	if (run_mapwalk("maps", maps_argv, "/tmp/mapwalk-maps", "/tmp/mapwalk-maps-stderr",
			&maps_status) != 0 ||
	    run_mapwalk("dump", dump_argv, DUMP, "/tmp/mapwalk-dump-stderr", &dump_status) != 0)
		return -1;
	long long t0 = now_ms();
	if (section("mapwalk-maps", "/tmp/mapwalk-maps") != 0 ||
	    section("mapwalk-maps-stderr", "/tmp/mapwalk-maps-stderr") != 0 ||
	    section("mapwalk-dump-stderr", "/tmp/mapwalk-dump-stderr") != 0)
		return -1;
	/* A failed dump: its status and stderr are the story. */
	if (dump_status == 0 && dump_digests() != 0)
		return -1;
	tcdrain(data);
	say("MAPWALK-INGUEST digests+sent ms=%lld\n", now_ms() - t0);
	return 0;
}
