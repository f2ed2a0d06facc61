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
 * is not counted). After /proc/kallsyms it creates BPF maps through the raw bpf()
 * syscall, fills them, and writes their ground truth as the section `bpf-maps`:
 *
 *     CPUS possible=<n>                      (from /sys/devices/system/cpu/possible)
 *     MAP id=<id> type=<n> name=<s> key=<ks> value=<vs> max=<n> flags=<f>
 *     VAL <id> <key> <value as hex>          (ARRAY maps, every key, read back)
 *     HVAL <id> <key hex> <value hex>        (HASH, LRU_HASH: every key the map holds)
 *     PVAL <id> <key hex> <cpu> <value hex>  (per-CPU maps: every key, every possible
 *                                             CPU, value_size bytes of its copy)
 *
 * With `mapwalk.bulk=N` on the kernel command line it then creates N more maps, named
 * `mw_bulk_<i>`, for benchmarks that want a guest with many small maps (the default is
 * none): even i a HASH (8-byte key, 16-byte value, 16 slots, 14 keys), odd i an ARRAY
 * (4-byte key, 32-byte value, 14 entries), filled from the same LCG; their contents are
 * not part of `bpf-maps`, the console gets `MAPWALK-BULK maps=<n> entries=<n>`. With
 * N > 0 one more map joins them, `mw_bulk_big`: an mmapable ARRAY whose single value
 * is 3 MiB of the same LCG's bytes (22 MB of `bpftool -j` JSON), the largest value a
 * renderer has to stream.
 *
 * When the initramfs holds /bin/mapwalk (a static build the in-guest test appends as a
 * second cpio archive; the other guests have none), it then runs it, at a moment when
 * nothing in the guest modifies a map any more (after one more map, `mw_btf`, with
 * BTF-typed key and value: see make_btf_map() in inguest.c), as `mapwalk maps --json`
 * and `mapwalk dump --all --json` (the live view, through bpf()). The listing and both
 * stderrs go to the host whole (sections `mapwalk-maps`, `mapwalk-maps-stderr`,
 * `mapwalk-dump-stderr`); the dump (8.7 MB, 18 s over the serial port under TCG) as
 * digests: see dump_digests() (inguest.c). The console gets, per run, `MAPWALK-INGUEST
 * <maps|dump> status=<wait status> bytes=<stdout bytes> ms=<run time>` and, once all is
 * sent, `MAPWALK-INGUEST digests+sent ms=<n>`. A failing run is not a boot failure: the
 * test reports its status and stderr.
 *
 * When everything is written it prints `MAPWALK-READY` on the console (ttyS0) and
 * keeps the map fds open forever (PID 1 must never exit; the maps die with their fds):
 * every ~200 ms it looks up key 0 of `mw_array` and of `mw_one.bss` and, when one
 * changed (the host wrote guest memory), prints `CHANGED <id> 0 <hex>` on the console.
 * A failure prints `MAPWALK-ERROR <what>` on the console and still sleeps, so the host
 * sees the error rather than a kernel panic.
 *
 * Built with `gcc -static -O2` by e2e/setup.sh; needs nothing but static glibc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "guest.h"

/* The console (ttyS0) and the data port (ttyS1). The aarch64 build (QEMU `virt` has one
 * UART) defines DATA_PORT as its console, ttyAMA0: sections share it with the console. */
#ifndef DATA_PORT
#define DATA_PORT "/dev/ttyS1"
#endif

int con = 2;
int data = -1;

void say(const char *fmt, ...)
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

int write_all(int fd, const char *p, size_t len)
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
int section(const char *name, const char *path)
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

/* ------------------------------------------------------------------------------------
 * BPF maps, through the raw syscall (no libbpf). */

long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

int btf_load(const char *who, const uint32_t *types, uint32_t type_len, const char *strs,
	     uint32_t str_len)
{
	unsigned char *blob = malloc(24 + (size_t)type_len + str_len);
	if (!blob) {
		say("MAPWALK-ERROR ERR %s: btf_load: out of memory\n", who);
		return -1;
	}
	struct {
		uint16_t magic;
		uint8_t version, flags;
		uint32_t hdr_len, type_off, type_len, str_off, str_len;
	} hdr = { 0xeb9f, 1, 0, 24, 0, type_len, type_len, str_len };
	memcpy(blob, &hdr, 24);
	memcpy(blob + 24, types, type_len);
	memcpy(blob + 24 + type_len, strs, str_len);
	static char log[4096];
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.btf = (uint64_t)(uintptr_t)blob;
	a.btf_size = 24 + type_len + str_len;
	a.btf_log_buf = (uint64_t)(uintptr_t)log;
	a.btf_log_size = sizeof log;
	a.btf_log_level = 1;
	long fd = sys_bpf(BPF_BTF_LOAD, &a);
	free(blob);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR %s: btf_load errno=%d (%s): %.300s\n", who, errno,
		    strerror(errno), log);
		return -1;
	}
	return (int)fd;
}

/* A deterministic, non-trivial byte stream (64-bit LCG, high bytes). */
static uint64_t lcg_state = 0x9e3779b97f4a7c15ULL;
unsigned char lcg_byte(void)
{
	lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned char)(lcg_state >> 56);
}


static struct map_spec maps[] = {
	{ "mw_array", BPF_MAP_TYPE_ARRAY, 4, 24, 7, 0, 0, -1, 0 },
	{ "mw_one.bss", BPF_MAP_TYPE_ARRAY, 4, 100, 1, 0, 0, -1, 0 },
	/* 300 pages: more than 1 MiB of values, vmalloc'd, page-aligned. */
	{ "mw_mmap", BPF_MAP_TYPE_ARRAY, 4, 4096, 300, BPF_F_MMAPABLE, 0, -1, 0 },
	/* 200 keys in 256 buckets: chains of two and more. */
	{ "mw_hash", BPF_MAP_TYPE_HASH, 8, 16, 256, 0, 200, -1, 0 },
	{ "mw_lru", BPF_MAP_TYPE_LRU_HASH, 8, 24, 128, 0, 100, -1, 0 },
	{ "mw_pcpu", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4, 0, 0, -1, 0 },
	/* 20-byte values: 4 bytes of padding per CPU in a lookup's buffer. */
	{ "mw_pcpu20", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 20, 5, 0, 0, -1, 0 },
	/* Keys of 6 and 12 bytes: the __percpu pointer's place differs between kernels. */
	{ "mw_ph6", BPF_MAP_TYPE_PERCPU_HASH, 6, 12, 64, 0, 40, -1, 0 },
	{ "mw_ph12", BPF_MAP_TYPE_PERCPU_HASH, 12, 16, 64, 0, 50, -1, 0 },
	{ "mw_lph12", BPF_MAP_TYPE_LRU_PERCPU_HASH, 12, 8, 128, 0, 60, -1, 0 },
	{ "mw_ph8", BPF_MAP_TYPE_PERCPU_HASH, 8, 24, 32, 0, 20, -1, 0 },
};
#define NMAPS (sizeof maps / sizeof maps[0])

int map_create(struct map_spec *m)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = m->type;
	a.key_size = m->key_size;
	a.value_size = m->value_size;
	a.max_entries = m->max_entries;
	a.map_flags = m->flags;
	strncpy(a.map_name, m->name, sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR create %s errno=%d (%s)\n", m->name, errno, strerror(errno));
		return -1;
	}
	m->fd = (int)fd;
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)m->fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0) {
		say("MAPWALK-ERROR ERR info %s errno=%d (%s)\n", m->name, errno, strerror(errno));
		return -1;
	}
	m->id = info.id;
	return 0;
}

int map_update(struct map_spec *m, const void *key, const void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)value;
	a.flags = BPF_ANY;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0) {
		say("MAPWALK-ERROR ERR update %s errno=%d (%s)\n", m->name, errno, strerror(errno));
		return -1;
	}
	return 0;
}

int map_lookup(struct map_spec *m, const void *key, void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)value;
	if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) != 0) {
		say("MAPWALK-ERROR ERR lookup %s errno=%d (%s)\n", m->name, errno, strerror(errno));
		return -1;
	}
	return 0;
}

int map_next_key(struct map_spec *m, const void *key, void *next)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.next_key = (uint64_t)(uintptr_t)next;
	if (sys_bpf(BPF_MAP_GET_NEXT_KEY, &a) != 0) {
		if (errno == ENOENT)
			return 1;
		say("MAPWALK-ERROR ERR next_key %s errno=%d (%s)\n", m->name, errno, strerror(errno));
		return -1;
	}
	return 0;
}

void hex(FILE *f, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		fputc(digits[p[i] >> 4], f);
		fputc(digits[p[i] & 15], f);
	}
}

/* The possible CPUs, from /sys/devices/system/cpu/possible ("0-3", "0,2-5", ...), in
 * the order a per-CPU lookup fills its buffer (for_each_possible_cpu). */
#define MAX_GUEST_CPUS 64
static unsigned cpu_ids[MAX_GUEST_CPUS];
unsigned ncpus;

int read_possible_cpus(void)
{
	char buf[256];
	int fd = open("/sys/devices/system/cpu/possible", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say("MAPWALK-ERROR open cpu/possible: %s\n", strerror(errno));
		return -1;
	}
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0) {
		say("MAPWALK-ERROR read cpu/possible\n");
		return -1;
	}
	buf[r] = 0;
	char *p = buf;
	ncpus = 0;
	while (*p && *p != '\n') {
		char *end;
		unsigned long lo = strtoul(p, &end, 10), hi = lo;
		if (end == p)
			break;
		p = end;
		if (*p == '-') {
			hi = strtoul(p + 1, &end, 10);
			p = end;
		}
		for (unsigned long c = lo; c <= hi; c++) {
			if (ncpus == MAX_GUEST_CPUS) {
				say("MAPWALK-ERROR more than %d possible CPUs\n", MAX_GUEST_CPUS);
				return -1;
			}
			cpu_ids[ncpus++] = (unsigned)c;
		}
		if (*p == ',')
			p++;
	}
	if (ncpus == 0) {
		say("MAPWALK-ERROR cannot parse cpu/possible: %s\n", buf);
		return -1;
	}
	return 0;
}

int is_percpu(unsigned type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

int is_hash(unsigned type)
{
	return type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_LRU_HASH ||
	       type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

/* Bytes of a lookup's or an update's value buffer: round_up(value_size, 8) per possible
 * CPU for the per-CPU types. */
static size_t value_buf_len(const struct map_spec *m)
{
	if (is_percpu(m->type))
		return (size_t)((m->value_size + 7) / 8 * 8) * ncpus;
	return m->value_size;
}

/* Writes the ground truth of one key, as a lookup returns it: `VAL <id> <key> <hex>`
 * for ARRAY maps, `HVAL <id> <keyhex> <hex>` for HASH and LRU_HASH,
 * `PVAL <id> <keyhex> <cpu> <hex>` (value_size bytes, one line per possible CPU) for
 * the per-CPU types. */
static int print_key(FILE *f, struct map_spec *m, const unsigned char *key, unsigned char *value)
{
	if (map_lookup(m, key, value) != 0)
		return -1;
	if (m->type == BPF_MAP_TYPE_ARRAY) {
		uint32_t k;
		memcpy(&k, key, 4);
		fprintf(f, "VAL %u %u ", m->id, k);
		hex(f, value, m->value_size);
		fputc('\n', f);
	} else if (is_percpu(m->type)) {
		size_t stride = (m->value_size + 7) / 8 * 8;
		for (unsigned i = 0; i < ncpus; i++) {
			fprintf(f, "PVAL %u ", m->id);
			hex(f, key, m->key_size);
			fprintf(f, " %u ", cpu_ids[i]);
			hex(f, value + stride * i, m->value_size);
			fputc('\n', f);
		}
	} else {
		fprintf(f, "HVAL %u ", m->id);
		hex(f, key, m->key_size);
		fputc(' ', f);
		hex(f, value, m->value_size);
		fputc('\n', f);
	}
	return 0;
}

/* Writes the `MAP` line of m and every key it holds with its value (see print_key),
 * as the kernel hands them back. Returns 0 on success. */
int write_map_truth(FILE *f, struct map_spec *m)
{
	static unsigned char value[4096 * MAX_GUEST_CPUS];
	unsigned char key[64], next[64];
	int rc = 0;
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", m->id,
		m->type, m->name, m->key_size, m->value_size, m->max_entries, m->flags);
	/* The ground truth is what the kernel hands back, not what was sent. */
	if (!is_hash(m->type)) {
		for (uint32_t k = 0; k < m->max_entries; k++)
			if (print_key(f, m, (unsigned char *)&k, value) != 0)
				rc = -1;
		return rc;
	}
	/* Every key the map holds (an LRU map may have evicted some), in the kernel's
	 * order. */
	const void *prev = NULL;
	for (unsigned n = 0; n <= m->max_entries; n++) {
		int r = map_next_key(m, prev, next);
		if (r != 0) {
			if (r < 0)
				rc = -1;
			break;
		}
		memcpy(key, next, m->key_size);
		prev = key;
		if (print_key(f, m, key, value) != 0)
			rc = -1;
	}
	return rc;
}

/* Creates and fills the maps and writes their ground truth to `path`. Returns 0 on
 * success. */
static int make_maps(const char *path)
{
	/* Per-CPU lookups return round_up(value_size, 8) bytes per possible CPU. */
	static unsigned char value[4096 * MAX_GUEST_CPUS];
	unsigned char key[64];
	FILE *f = fopen(path, "w");
	if (!f) {
		say("MAPWALK-ERROR open %s: %s\n", path, strerror(errno));
		return -1;
	}
	int rc = read_possible_cpus();
	if (rc != 0) {
		fclose(f);
		return rc;
	}
	fprintf(f, "CPUS possible=%u\n", ncpus);
	for (size_t i = 0; i < NMAPS; i++) {
		struct map_spec *m = &maps[i];
		if (map_create(m) != 0) {
			rc = -1;
			continue;
		}
		size_t vlen = value_buf_len(m);
		if (is_hash(m->type)) {
			/* Keys: LCG bytes, the last two replaced by the key's number (unique). */
			for (unsigned k = 0; k < m->fill; k++) {
				for (unsigned b = 0; b < m->key_size; b++)
					key[b] = lcg_byte();
				key[m->key_size - 2] = (unsigned char)k;
				key[m->key_size - 1] = (unsigned char)(k >> 8);
				for (size_t b = 0; b < vlen; b++)
					value[b] = lcg_byte();
				if (map_update(m, key, value) != 0)
					rc = -1;
			}
		} else {
			for (uint32_t k = 0; k < m->max_entries; k++) {
				for (size_t b = 0; b < vlen; b++)
					value[b] = lcg_byte();
				if (map_update(m, &k, value) != 0)
					rc = -1;
			}
		}
		if (write_map_truth(f, m) != 0)
			rc = -1;
	}
	if (progs_setup(f) != 0) /* progs.c */
		rc = -1;
	if (storage_setup(f) != 0) /* storage.c */
		rc = -1;
	if (objmaps_setup(f) != 0) /* objmaps.c */
		rc = -1;
	if (ringbuf_setup(f) != 0) /* ringbuf.c */
		rc = -1;
	if (arena_setup() != 0) /* arena.c */
		rc = -1;
	if (stack_setup(f) != 0) /* stack.c */
		rc = -1;
	if (structops_setup(f) != 0) /* structops.c */
		rc = -1;
	if (queue_setup(f) != 0) /* queue.c */
		rc = -1;
	if (fclose(f) != 0) {
		say("MAPWALK-ERROR write %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	return rc;
}

/* The N of `mapwalk.bulk=N` on the kernel command line, 0 without it. */
#define BULK_MAX 4096
/* The value size of `mw_bulk_big`. */
#define BULK_BIG_VALUE (3u << 20)
/* The value of `NAME=<unsigned>` on the kernel command line, or `dflt` without it. */
unsigned long cmdline_ulong(const char *name, unsigned long dflt)
{
	char line[4096];
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dflt;
	ssize_t n = read(fd, line, sizeof line - 1);
	close(fd);
	if (n <= 0)
		return dflt;
	line[n] = 0;
	size_t len = strlen(name);
	for (const char *p = line; (p = strstr(p, name)) != NULL; p += len) {
		if ((p == line || p[-1] == ' ') && p[len] == '=')
			return strtoul(p + len + 1, NULL, 10);
	}
	return dflt;
}

static unsigned bulk_count(void)
{
	unsigned long v = cmdline_ulong("mapwalk.bulk", 0);
	return v > BULK_MAX ? BULK_MAX : (unsigned)v;
}

/* Creates and fills the `mapwalk.bulk=N` maps (their fds stay open: PID 1 never exits).
 * Returns 0 on success. */
static int make_bulk_maps(void)
{
	unsigned n = bulk_count(), entries = 0;
	static char names[BULK_MAX][16];
	int rc = 0;
	for (unsigned i = 0; i < n; i++) {
		struct map_spec m = { names[i], BPF_MAP_TYPE_HASH, 8, 16, 16, 0, 14, -1, 0 };
		if (i % 2) {
			m.type = BPF_MAP_TYPE_ARRAY;
			m.key_size = 4;
			m.value_size = 32;
			m.max_entries = 14;
		}
		snprintf(names[i], sizeof names[i], "mw_bulk_%u", i % 10000);
		if (map_create(&m) != 0)
			return -1;
		unsigned char key[8], value[32];
		unsigned count = m.type == BPF_MAP_TYPE_HASH ? m.fill : m.max_entries;
		for (uint32_t k = 0; k < count; k++) {
			memset(key, 0, sizeof key);
			memcpy(key, &k, sizeof k);
			if (m.type == BPF_MAP_TYPE_HASH)
				key[7] = lcg_byte();
			for (size_t b = 0; b < m.value_size; b++)
				value[b] = lcg_byte();
			if (map_update(&m, key, value) != 0)
				rc = -1;
			else
				entries++;
		}
	}
	if (n) {
		static unsigned char big[BULK_BIG_VALUE];
		static char big_name[] = "mw_bulk_big";
		struct map_spec m = { big_name, BPF_MAP_TYPE_ARRAY, 4, BULK_BIG_VALUE, 1,
				      BPF_F_MMAPABLE, 0, -1, 0 };
		uint32_t k = 0;
		if (map_create(&m) != 0)
			return -1;
		for (size_t b = 0; b < sizeof big; b++)
			big[b] = lcg_byte();
		if (map_update(&m, &k, big) != 0)
			rc = -1;
		else
			entries++;
		say("MAPWALK-BULK maps=%u entries=%u\n", n + 1, entries);
	}
	return rc;
}


/*
 * Forever: print `CHANGED <id> 0 <hex>` on the console when key 0 of a watched map
 * changes: `mw_array` (maps[0]) and `mw_one.bss` (maps[1]), each on its own.
 */
#define NWATCH 2
#define WATCH_MAX 128
static void watch(void)
{
	unsigned char last[NWATCH][WATCH_MAX], now[WATCH_MAX];
	int have[NWATCH];
	uint32_t key = 0;
	int any = 0;
	for (int w = 0; w < NWATCH; w++) {
		struct map_spec *m = &maps[w];
		have[w] = m->fd >= 0 && m->value_size <= WATCH_MAX &&
			  map_lookup(m, &key, last[w]) == 0;
		any |= have[w];
	}
	for (;;) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (!any) {
			pause();
			continue;
		}
		for (int w = 0; w < NWATCH; w++) {
			struct map_spec *m = &maps[w];
			if (!have[w] || map_lookup(m, &key, now) != 0 ||
			    memcmp(now, last[w], m->value_size) == 0)
				continue;
			memcpy(last[w], now, m->value_size);
			char line[2 * WATCH_MAX + 64];
			int n = snprintf(line, sizeof line, "CHANGED %u 0 ", m->id);
			for (unsigned i = 0; i < m->value_size; i++)
				n += snprintf(line + n, sizeof line - (size_t)n, "%02x", now[i]);
			say("%s\n", line);
		}
	}
}

int main(void)
{
	mount_fs("devtmpfs", "/dev", "devtmpfs");
	open_console();
	mount_fs("proc", "/proc", "proc");
	mount_fs("sysfs", "/sys", "sysfs");

	int ok = 1;
	data = open(DATA_PORT, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (data < 0) {
		say("MAPWALK-ERROR open " DATA_PORT ": %s\n", strerror(errno));
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
		if (make_maps("/tmp/bpf-maps") != 0 || section("bpf-maps", "/tmp/bpf-maps") != 0)
			ok = 0;
		if (make_bulk_maps() != 0)
			ok = 0;
		if (churn_setup() != 0)
			ok = 0;
		/* Last: from here on nothing in the guest changes a map. */
		if (ok && inguest_mapwalk() != 0)
			ok = 0;
		/* Everything written has left the guest before READY is announced. */
		tcdrain(data);
	}
	if (ok)
		say("MAPWALK-READY\n");
	else
		say("MAPWALK-ERROR setup incomplete\n");
	churn_start();
	watch();
}
