/*
 * BLOOM_FILTER and the maps whose slots hold kernel objects, on every guest.
 *
 * objmaps_setup(f) (called while the maps' ground truth is written) makes, on every
 * guest:
 *
 *     mw_devmap     DEVMAP              4-byte keys, 8-byte values, 4 slots: 1 and 3 -> lo
 *     mw_devhash    DEVMAP_HASH         4-byte keys, 4-byte values, 8 max: keys 1, 9, 4
 *                                       -> lo (1 and 9 share a bucket)
 *     mw_cpumap     CPUMAP              4-byte keys, 4-byte values (qsize), one slot per
 *                                       possible CPU: CPU 0 -> qsize 192
 *     mw_sockmap    SOCKMAP             4-byte keys, 8-byte values, 4 slots: 0 and 2 -> a
 *                                       listening TCP socket each
 *     mw_sockhash   SOCKHASH            8-byte keys, 8-byte values, 4 max: two listeners
 *     mw_reuseport  REUSEPORT_SOCKARRAY 4-byte keys, 8-byte values, 2 slots: 1 -> a bound
 *                                       UDP socket with SO_REUSEPORT
 *
 * and, on guests without the in-guest mapwalk (whose live dump must be whole, and
 * bpf() cannot list these):
 *
 *     mw_bloom      BLOOM_FILTER        4-byte values, 64 max, 5 hashes, a random seed:
 *                                       the values 1 to 16 pushed
 *     mw_bloom6     BLOOM_FILTER        6-byte values, 8 max, 3 hashes, BPF_F_ZERO_SEED:
 *                                       three values pushed
 *     mw_cgroups    CGROUP_ARRAY        2 slots: 0 -> the cgroup2 root, 1 -> /mw
 *     mw_perf       PERF_EVENT_ARRAY    2 slots: CPU n's software BPF_OUTPUT event in
 *                                       slot n, for each possible CPU below 2
 *     mw_xskmap     XSKMAP              2 slots: 1 -> an AF_XDP socket bound to queue 0
 *                                       of lo (copy mode)
 *
 * The ground truth goes to `f` (section `bpf-maps`) as the other maps have it, the
 * `MAP` line's flags being the kernel's (a DEVMAP gains BPF_F_RDONLY_PROG):
 *   - the maps user space can look up: `HVAL <id> <key hex> <value hex>` for every
 *     populated slot, the value as BPF_MAP_LOOKUP_ELEM returns it (a socket map returns
 *     the socket's cookie);
 *   - CGROUP_ARRAY, PERF_EVENT_ARRAY and XSKMAP, whose lookups the kernel refuses:
 *     `OVAL <id> <key hex> <value hex>`, the value in mapwalk's own form
 *     (docs/object-maps.md): the cgroup id (u64, by name_to_handle_at), the event's
 *     type (u32), CPU (i32) and config (u64) as opened, the XDP socket's ifindex (u32)
 *     and queue (u32) as bound;
 *   - BLOOM_FILTER (`MAP ... extra=<hash count>`): `BLOOM <id> <value hex> <1|0>` for
 *     every value pushed, with whether a lookup (a membership test) finds it.
 *
 * Failures are said on the console; the maps, sockets and events live as long as /init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_xdp.h>
#include <linux/perf_event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest.h"


#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#ifndef BPF_F_ZERO_SEED
#define BPF_F_ZERO_SEED (1U << 6)
#endif

static struct map_spec devmap = { "mw_devmap", BPF_MAP_TYPE_DEVMAP, 4, 8, 4, 0, 0, -1, 0 };
static struct map_spec devhash = { "mw_devhash", BPF_MAP_TYPE_DEVMAP_HASH, 4, 4, 8, 0, 0, -1, 0 };
static struct map_spec cpumap = { "mw_cpumap", BPF_MAP_TYPE_CPUMAP, 4, 4, 1, 0, 0, -1, 0 };
static struct map_spec sockmap = { "mw_sockmap", BPF_MAP_TYPE_SOCKMAP, 4, 8, 4, 0, 0, -1, 0 };
static struct map_spec sockhash = { "mw_sockhash", BPF_MAP_TYPE_SOCKHASH, 8, 8, 4, 0, 0, -1, 0 };
static struct map_spec reuseport = { "mw_reuseport", BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 2,
				     0, 0, -1, 0 };
static struct map_spec bloom = { "mw_bloom", BPF_MAP_TYPE_BLOOM_FILTER, 0, 4, 64, 0, 0, -1, 0 };
static struct map_spec bloom6 = { "mw_bloom6", BPF_MAP_TYPE_BLOOM_FILTER, 0, 6, 8,
				  BPF_F_ZERO_SEED, 0, -1, 0 };
static struct map_spec cgroups = { "mw_cgroups", BPF_MAP_TYPE_CGROUP_ARRAY, 4, 4, 2, 0, 0, -1, 0 };
static struct map_spec perf = { "mw_perf", BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2, 0, 0, -1, 0 };
static struct map_spec xskmap = { "mw_xskmap", BPF_MAP_TYPE_XSKMAP, 4, 4, 2, 0, 0, -1, 0 };

static int fail(const char *what)
{
	say("MAPWALK-ERROR ERR objmaps %s errno=%d (%s)\n", what, errno, strerror(errno));
	return -1;
}

/* BPF_MAP_CREATE with `map_extra`, then the map's id and its flags as the kernel keeps
 * them (into m->flags). */
static int create(struct map_spec *m, uint64_t map_extra)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = m->type;
	a.key_size = m->key_size;
	a.value_size = m->value_size;
	a.max_entries = m->max_entries;
	a.map_flags = m->flags;
	a.map_extra = map_extra;
	strncpy(a.map_name, m->name, sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0)
		return fail(m->name);
	m->fd = (int)fd;
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)m->fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0)
		return fail(m->name);
	m->id = info.id;
	m->flags = info.map_flags;
	return 0;
}

static void map_line(FILE *f, const struct map_spec *m)
{
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u", m->id, m->type,
		m->name, m->key_size, m->value_size, m->max_entries, m->flags);
}

static void value_line(FILE *f, const char *kind, const struct map_spec *m, const void *key,
		       const void *value, size_t value_len)
{
	fprintf(f, "%s %u ", kind, m->id);
	hex(f, key, m->key_size);
	fputc(' ', f);
	hex(f, value, value_len);
	fputc('\n', f);
}

/* BPF_MAP_LOOKUP_ELEM; 1 when the key is absent. */
static int lookup(const struct map_spec *m, const void *key, void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)value;
	if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) == 0)
		return 0;
	return errno == ENOENT ? 1 : -1;
}

/* `MAP` and an `HVAL` for every key GET_NEXT_KEY gives (a hole of an array is looked up
 * and skipped), as a lookup returns it. */
static int lookup_truth(FILE *f, struct map_spec *m)
{
	unsigned char key[8], next[8], value[8];
	map_line(f, m);
	fputc('\n', f);
	const void *prev = NULL;
	for (unsigned n = 0; n <= m->max_entries; n++) {
		int r = map_next_key(m, prev, next);
		if (r != 0)
			return r < 0 ? -1 : 0;
		memcpy(key, next, m->key_size);
		prev = key;
		r = lookup(m, key, value);
		if (r < 0)
			return fail(m->name);
		if (r == 0)
			value_line(f, "HVAL", m, key, value, m->value_size);
	}
	return 0;
}

static int update(struct map_spec *m, const void *key, const void *value)
{
	return map_update(m, key, value);
}

/* A TCP socket listening on a port of the kernel's choosing, on any address. */
static int tcp_listener(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	if (s < 0 || bind(s, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(s, 4) != 0)
		return fail("tcp listener");
	return s;
}

static int sockets_setup(FILE *f)
{
	if (create(&sockmap, 0) != 0 || create(&sockhash, 0) != 0 || create(&reuseport, 0) != 0)
		return -1;
	for (uint32_t slot = 0; slot < 4; slot += 2) {
		int s = tcp_listener();
		uint64_t fd = (uint64_t)s;
		if (s < 0 || update(&sockmap, &slot, &fd) != 0)
			return -1;
	}
	for (uint64_t k = 0x11; k <= 0x22; k += 0x11) {
		int s = tcp_listener();
		uint64_t fd = (uint64_t)s;
		if (s < 0 || update(&sockhash, &k, &fd) != 0)
			return -1;
	}
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	if (u < 0 || setsockopt(u, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
	    bind(u, (struct sockaddr *)&sin, sizeof sin) != 0)
		return fail("udp reuseport socket");
	uint32_t slot = 1;
	uint64_t fd = (uint64_t)u;
	if (update(&reuseport, &slot, &fd) != 0)
		return -1;
	/* The lookups give each socket its cookie, which memory then holds. */
	return lookup_truth(f, &sockmap) || lookup_truth(f, &sockhash) || lookup_truth(f, &reuseport)
		       ? -1
		       : 0;
}

static int devices_setup(FILE *f)
{
	cpumap.max_entries = ncpus;
	if (create(&devmap, 0) != 0 || create(&devhash, 0) != 0 || create(&cpumap, 0) != 0)
		return -1;
	uint32_t lo[2] = { 1, 0 }; /* ifindex 1, no program */
	for (uint32_t slot = 1; slot < 4; slot += 2)
		if (update(&devmap, &slot, lo) != 0)
			return -1;
	static const uint32_t keys[] = { 1, 9, 4 };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (update(&devhash, &keys[i], lo) != 0)
			return -1;
	uint32_t cpu = 0, qsize = 192;
	if (update(&cpumap, &cpu, &qsize) != 0)
		return -1;
	return lookup_truth(f, &devmap) || lookup_truth(f, &devhash) || lookup_truth(f, &cpumap)
		       ? -1
		       : 0;
}

/* The values pushed into the filters. */
static const unsigned char bloom6_values[][6] = {
	{ 'm', 'a', 'p', 'w', 'l', 'k' },
	{ 0, 0, 0, 0, 0, 1 },
	{ 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa },
};

static int bloom_truth(FILE *f, struct map_spec *m, uint64_t hashes, const void *values,
		       size_t count)
{
	map_line(f, m);
	fprintf(f, " extra=%llu\n", (unsigned long long)hashes);
	for (size_t i = 0; i < count; i++) {
		const unsigned char *v = (const unsigned char *)values + i * m->value_size;
		unsigned char probe[8];
		memcpy(probe, v, m->value_size);
		/* A bloom filter's lookup takes the value and tests membership. */
		int r = lookup(m, NULL, probe);
		if (r < 0)
			return fail(m->name);
		fprintf(f, "BLOOM %u ", m->id);
		hex(f, v, m->value_size);
		fprintf(f, " %d\n", r == 0);
	}
	return 0;
}

static int bloom_setup(FILE *f)
{
	if (create(&bloom, 0) != 0 || create(&bloom6, 3) != 0)
		return -1;
	uint32_t values[16];
	for (uint32_t i = 0; i < 16; i++) {
		values[i] = i + 1;
		/* A push: BPF_MAP_UPDATE_ELEM with no key. */
		if (update(&bloom, NULL, &values[i]) != 0)
			return -1;
	}
	for (size_t i = 0; i < sizeof bloom6_values / sizeof bloom6_values[0]; i++)
		if (update(&bloom6, NULL, bloom6_values[i]) != 0)
			return -1;
	return bloom_truth(f, &bloom, 5, values, 16) ||
			       bloom_truth(f, &bloom6, 3, bloom6_values,
					   sizeof bloom6_values / sizeof bloom6_values[0])
		       ? -1
		       : 0;
}

/* The cgroup2 id of the directory at `path` (its file handle). */
static int cgroup_id(const char *path, uint64_t *id)
{
	_Alignas(8) unsigned char buf[sizeof(struct file_handle) + 8];
	struct file_handle *fh = (struct file_handle *)buf;
	int mount_id;
	fh->handle_bytes = 8;
	if (name_to_handle_at(AT_FDCWD, path, fh, &mount_id, 0) != 0 || fh->handle_bytes != 8)
		return fail("name_to_handle_at on cgroup2");
	memcpy(id, fh->f_handle, 8);
	return 0;
}

static int cgroups_setup(FILE *f)
{
	static const char *const dirs[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/mw" };
	if (mount("none", dirs[0], "cgroup2", 0, NULL) != 0 && errno != EBUSY)
		return fail("mount cgroup2");
	if (mkdir(dirs[1], 0755) != 0 && errno != EEXIST)
		return fail("mkdir cgroup");
	if (create(&cgroups, 0) != 0)
		return -1;
	map_line(f, &cgroups);
	fputc('\n', f);
	for (uint32_t slot = 0; slot < 2; slot++) {
		int fd = open(dirs[slot], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		uint32_t v = (uint32_t)fd;
		uint64_t id;
		if (fd < 0 || update(&cgroups, &slot, &v) != 0 || cgroup_id(dirs[slot], &id) != 0)
			return fail("cgroup slot");
		value_line(f, "OVAL", &cgroups, &slot, &id, sizeof id);
	}
	return 0;
}

static int perf_setup(FILE *f)
{
	if (create(&perf, 0) != 0)
		return -1;
	map_line(f, &perf);
	fputc('\n', f);
	for (uint32_t cpu = 0; cpu < 2 && cpu < ncpus; cpu++) {
		struct perf_event_attr attr;
		memset(&attr, 0, sizeof attr);
		attr.type = PERF_TYPE_SOFTWARE;
		attr.size = sizeof attr;
		attr.config = PERF_COUNT_SW_BPF_OUTPUT;
		attr.sample_type = PERF_SAMPLE_RAW;
		attr.wakeup_events = 1;
		long fd = syscall(SYS_perf_event_open, &attr, -1, (int)cpu, -1, PERF_FLAG_FD_CLOEXEC);
		uint32_t v = (uint32_t)fd;
		if (fd < 0 || update(&perf, &cpu, &v) != 0)
			return fail("perf event slot");
		unsigned char value[16];
		uint32_t type = attr.type;
		int32_t on = (int32_t)cpu;
		uint64_t config = attr.config;
		memcpy(value, &type, 4);
		memcpy(value + 4, &on, 4);
		memcpy(value + 8, &config, 8);
		value_line(f, "OVAL", &perf, &cpu, value, sizeof value);
	}
	return 0;
}

/* An AF_XDP socket with the smallest UMEM and rings, bound to queue 0 of `lo` in copy
 * mode (which any device has). */
static int xsk_socket(void)
{
	enum { FRAMES = 16, FRAME = 4096 };
	int s = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("AF_XDP socket");
	void *area = mmap(NULL, FRAMES * FRAME, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return fail("UMEM area");
	struct xdp_umem_reg reg;
	memset(&reg, 0, sizeof reg);
	reg.addr = (uint64_t)(uintptr_t)area;
	reg.len = FRAMES * FRAME;
	reg.chunk_size = FRAME;
	int n = FRAMES;
	if (setsockopt(s, SOL_XDP, XDP_UMEM_REG, &reg, sizeof reg) != 0 ||
	    setsockopt(s, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof n) != 0 ||
	    setsockopt(s, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof n) != 0 ||
	    setsockopt(s, SOL_XDP, XDP_RX_RING, &n, sizeof n) != 0)
		return fail("AF_XDP rings");
	struct sockaddr_xdp sxdp;
	memset(&sxdp, 0, sizeof sxdp);
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_ifindex = 1;
	sxdp.sxdp_queue_id = 0;
	sxdp.sxdp_flags = XDP_COPY;
	if (bind(s, (struct sockaddr *)&sxdp, sizeof sxdp) != 0)
		return fail("AF_XDP bind to lo");
	return s;
}

static int xsk_setup(FILE *f)
{
	if (create(&xskmap, 0) != 0)
		return -1;
	int s = xsk_socket();
	uint32_t slot = 1, v = (uint32_t)s;
	if (s < 0 || update(&xskmap, &slot, &v) != 0)
		return -1;
	map_line(f, &xskmap);
	fputc('\n', f);
	uint32_t value[2] = { 1, 0 }; /* lo, queue 0 */
	value_line(f, "OVAL", &xskmap, &slot, value, sizeof value);
	return 0;
}

int objmaps_setup(FILE *f)
{
	if (devices_setup(f) != 0 || sockets_setup(f) != 0)
		return -1;
	/* bpf() cannot list these: a guest whose live dump must be whole has none. */
	if (access("/bin/mapwalk", X_OK) == 0)
		return 0;
	if (bloom_setup(f) != 0 || cgroups_setup(f) != 0 || perf_setup(f) != 0 ||
	    xsk_setup(f) != 0)
		return -1;
	return 0;
}
