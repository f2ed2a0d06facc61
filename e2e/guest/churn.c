/*
 * `mapwalk.churn=1`: maps that change at full speed while the host reads them.
 *
 * churn_setup() (before READY) creates five maps:
 *
 *     mw_churn_hash  HASH          12-byte keys, 16-byte values, 4096 max
 *     mw_churn_lru   LRU_HASH       8-byte keys, 16-byte values, 1024 max
 *     mw_churn_pcpu  PERCPU_HASH    8-byte keys,  8-byte values,  512 max
 *     mw_churn_arr   ARRAY          4-byte keys, 16-byte values,   64 entries
 *     mw_churn_ctl   ARRAY          4-byte keys,  8-byte values,    1 entry
 *
 * and prints `MAPWALK-CHURN maps=<id>,<id>,<id>,<id> ctl=<id>` on the console.
 * churn_start() (after READY) forks one process per possible CPU; each updates and
 * deletes random keys of the four maps as fast as it can: keys of the HASH drawn from
 * 6,000 (so that about half are present), of the LRU_HASH from 2,048 (it evicts), of
 * the PERCPU_HASH from 1,024 (updates fail with E2BIG when it is full); every value
 * holds its key's number and a counter, so that a torn value can be told.
 *
 * When the host writes a non-zero value into key 0 of `mw_churn_ctl` (through guest
 * memory), every process stops; the first, once the others have, writes the maps'
 * contents, as `bpf-maps` has them, in section `churn-final` and prints
 * `MAPWALK-CHURN stopped ops=<n>` on the console. Nothing changes the maps after that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest.h"

static struct map_spec churn_maps[] = {
	{ "mw_churn_hash", BPF_MAP_TYPE_HASH, 12, 16, 4096, 0, 0, -1, 0 },
	{ "mw_churn_lru", BPF_MAP_TYPE_LRU_HASH, 8, 16, 1024, 0, 0, -1, 0 },
	{ "mw_churn_pcpu", BPF_MAP_TYPE_PERCPU_HASH, 8, 8, 512, 0, 0, -1, 0 },
	{ "mw_churn_arr", BPF_MAP_TYPE_ARRAY, 4, 16, 64, 0, 0, -1, 0 },
	{ "mw_churn_ctl", BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, 0, -1, 0 },
};
#define NCHURN 4
#define CTL 4
/* Keys drawn from: about half of the HASH's present at any time. */
static const unsigned key_space[NCHURN] = { 6000, 2048, 1024, 64 };

static int enabled;

int churn_setup(void)
{
	enabled = cmdline_ulong("mapwalk.churn", 0) != 0;
	if (!enabled)
		return 0;
	if (ncpus == 0 && read_possible_cpus() != 0)
		return -1;
	for (int i = 0; i <= CTL; i++)
		if (map_create(&churn_maps[i]) != 0)
			return -1;
	say("MAPWALK-CHURN maps=%u,%u,%u,%u ctl=%u\n", churn_maps[0].id, churn_maps[1].id,
	    churn_maps[2].id, churn_maps[3].id, churn_maps[CTL].id);
	return 0;
}

static int bpf_elem(int cmd, struct map_spec *m, const void *key, const void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)value;
	a.flags = BPF_ANY;
	return (int)sys_bpf(cmd, &a);
}

/* The key of number n for map i: the number in its first four bytes. */
static void make_key(int i, uint32_t n, unsigned char *key)
{
	memset(key, 0, churn_maps[i].key_size);
	memcpy(key, &n, 4);
	if (churn_maps[i].key_size >= 8)
		key[4] = (unsigned char)i ^ 0x5a;
}

static int stopped(void)
{
	uint32_t k = 0;
	uint64_t v = 0;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)churn_maps[CTL].fd;
	a.key = (uint64_t)(uintptr_t)&k;
	a.value = (uint64_t)(uintptr_t)&v;
	return sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) == 0 && v != 0;
}

/* One churning process: returns when the host says stop, with its operation count. */
static uint64_t churn(unsigned seed)
{
	static unsigned char value[8 * 64];
	unsigned char key[16];
	uint64_t x = 0x9e3779b97f4a7c15ULL * (seed + 1), ops = 0;
	for (;;) {
		if ((ops & 255) == 0 && stopped())
			return ops;
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		int i = (int)((x >> 33) % NCHURN);
		uint32_t n = (uint32_t)((x >> 40) % key_space[i]);
		make_key(i, n, key);
		struct map_spec *m = &churn_maps[i];
		int del = (x >> 20) & 1;
		if (del && m->type != BPF_MAP_TYPE_ARRAY) {
			bpf_elem(BPF_MAP_DELETE_ELEM, m, key, NULL);
		} else {
			/* Each copy (every CPU's for the per-CPU map): key number, counter. */
			size_t stride = (m->value_size + 7) / 8 * 8;
			size_t copies = m->type == BPF_MAP_TYPE_PERCPU_HASH ? ncpus : 1;
			for (size_t c = 0; c < copies && (c + 1) * stride <= sizeof value; c++) {
				uint32_t lo = n, hi = (uint32_t)ops;
				memcpy(value + c * stride, &lo, 4);
				memcpy(value + c * stride + 4, &hi, 4);
				if (m->value_size >= 16) {
					uint32_t tag = n ^ 0xa5a5a5a5u, seq = (uint32_t)ops ^ 0xa5a5a5a5u;
					memcpy(value + c * stride + 8, &tag, 4);
					memcpy(value + c * stride + 12, &seq, 4);
				}
			}
			bpf_elem(BPF_MAP_UPDATE_ELEM, m, key, value);
		}
		ops++;
	}
}

void churn_start(void)
{
	if (!enabled)
		return;
	/* One word per process: its operation count once it stopped (+1). */
	uint64_t *done = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (done == MAP_FAILED) {
		say("MAPWALK-ERROR churn mmap: %s\n", strerror(errno));
		return;
	}
	unsigned procs = ncpus < 1 ? 1 : ncpus > 64 ? 64 : ncpus;
	for (unsigned p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid < 0) {
			say("MAPWALK-ERROR churn fork: %s\n", strerror(errno));
			return;
		}
		if (pid > 0)
			continue;
		uint64_t ops = churn(p);
		__atomic_store_n(&done[p], ops + 1, __ATOMIC_SEQ_CST);
		if (p != 0)
			for (;;)
				pause();
		uint64_t total = 0;
		for (unsigned q = 0; q < procs; q++) {
			while (__atomic_load_n(&done[q], __ATOMIC_SEQ_CST) == 0)
				usleep(1000);
			total += done[q] - 1;
		}
		const char *path = "/tmp/churn-final";
		FILE *f = fopen(path, "w");
		int rc = f ? 0 : -1;
		if (f) {
			fprintf(f, "CPUS possible=%u\n", ncpus);
			for (int i = 0; i < NCHURN; i++)
				if (write_map_truth(f, &churn_maps[i]) != 0)
					rc = -1;
			if (fclose(f) != 0)
				rc = -1;
		}
		if (rc != 0 || section("churn-final", path) != 0)
			say("MAPWALK-ERROR churn-final\n");
		else
			say("MAPWALK-CHURN stopped ops=%llu\n", (unsigned long long)total);
		for (;;)
			pause();
	}
}
