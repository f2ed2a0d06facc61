/*
 * Programs and the maps that hold kernel objects, on every guest.
 *
 * progs_setup(f) (called while the maps' ground truth is written) makes:
 *
 *     known       SOCKET_FILTER  `r0 = 0; exit` (2 instructions)
 *     known_map   SOCKET_FILTER  `r1 = mw_inner ll; r0 = 0; exit`: uses mw_inner
 *     mw_inner    ARRAY          4-byte keys, 8-byte values, 2 entries (0x1111.., 0x2222..)
 *     mw_progs    PROG_ARRAY     4 slots: 1 -> known, 3 -> known_map
 *     mw_outer    ARRAY_OF_MAPS  3 slots: 2 -> mw_inner
 *     mw_lpm      LPM_TRIE       8-byte keys (prefix length, IPv4 address), 8-byte
 *                                values, 16 max: the six prefixes of lpm_prefixes[]
 *
 * It appends the four maps' ground truth to `f` (the `bpf-maps` section) as the other
 * maps have it: mw_inner with write_map_truth(), the slot maps as
 * `MAP` then `HVAL <id> <index hex> <value hex>` for each populated slot, the value
 * being what a lookup returns (the id of the program or map in the slot), mw_lpm as
 * `MAP` then `HVAL <id> <key hex> <value hex>` for every key GET_NEXT_KEY gives. Then it
 * writes section `bpf-progs`, one line per program, as BPF_OBJ_GET_INFO_BY_FD
 * describes it:
 *
 *     PROG id=<id> type=<n> name=<s> tag=<16 hex> gpl=<0|1> xlated=<bytes>
 *          jited=<bytes> uid=<n> btf=<id> maps=<id,id,..|->
 *
 * (one line). Failures are said on the console; the programs and maps live as long as
 * /init (their fds stay open).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "guest.h"

static struct map_spec inner = { "mw_inner", BPF_MAP_TYPE_ARRAY, 4, 8, 2, 0, 0, -1, 0 };
static struct map_spec prog_array = { "mw_progs", BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4, 0, 0, -1, 0 };
static struct map_spec outer = { "mw_outer", BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 3, 0, 0, -1, 0 };
static struct map_spec lpm = { "mw_lpm", BPF_MAP_TYPE_LPM_TRIE, 8, 8, 16, BPF_F_NO_PREALLOC, 0,
			       -1, 0 };
/* The kernel's own example trie (kernel/bpf/lpm_trie.c), a /8 and the default route;
 * the last one replaces an earlier value. */
static const struct {
	uint32_t prefixlen;
	unsigned char addr[4];
} lpm_prefixes[] = {
	{ 16, { 192, 168, 0, 0 } },   { 24, { 192, 168, 0, 0 } }, { 24, { 192, 168, 1, 0 } },
	{ 24, { 192, 168, 128, 0 } }, { 8, { 10, 0, 0, 0 } },     { 0, { 0, 0, 0, 0 } },
	{ 24, { 192, 168, 1, 0 } },
};

/* mw_lpm, filled; its truth: every key in GET_NEXT_KEY's order with its value. */
static int lpm_setup(FILE *f)
{
	if (map_create(&lpm) != 0)
		return -1;
	for (size_t i = 0; i < sizeof lpm_prefixes / sizeof lpm_prefixes[0]; i++) {
		unsigned char key[8];
		uint64_t v = 0x0101010101010101ULL * (i + 1);
		memcpy(key, &lpm_prefixes[i].prefixlen, 4);
		memcpy(key + 4, lpm_prefixes[i].addr, 4);
		if (map_update(&lpm, key, &v) != 0)
			return -1;
	}
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", lpm.id,
		lpm.type, lpm.name, lpm.key_size, lpm.value_size, lpm.max_entries, lpm.flags);
	unsigned char key[8], next[8], value[8];
	const void *prev = NULL;
	for (unsigned n = 0; n <= lpm.max_entries; n++) {
		int r = map_next_key(&lpm, prev, next);
		if (r != 0)
			return r < 0 ? -1 : 0;
		memcpy(key, next, sizeof key);
		prev = key;
		if (map_lookup(&lpm, key, value) != 0)
			return -1;
		fprintf(f, "HVAL %u ", lpm.id);
		hex(f, key, sizeof key);
		fputc(' ', f);
		hex(f, value, sizeof value);
		fputc('\n', f);
	}
	return 0;
}

struct prog {
	const char *name;
	int uses_inner;
	int fd;
};
static struct prog progs[] = { { "known", 0, -1 }, { "known_map", 1, -1 } };
#define NPROGS (sizeof progs / sizeof progs[0])

static int load(struct prog *p)
{
	struct bpf_insn insns[4];
	unsigned n = 0;
	memset(insns, 0, sizeof insns);
	if (p->uses_inner) {
		/* r1 = map ll (BPF_LD | BPF_DW | BPF_IMM, src BPF_PSEUDO_MAP_FD). */
		insns[0].code = BPF_LD | BPF_DW | BPF_IMM;
		insns[0].dst_reg = 1;
		insns[0].src_reg = BPF_PSEUDO_MAP_FD;
		insns[0].imm = inner.fd;
		n = 2;
	}
	insns[n].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 0 */
	insns[n + 1].code = BPF_JMP | BPF_EXIT;
	n += 2;
	static char log[16384];
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insn_cnt = n;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.license = (uint64_t)(uintptr_t)"GPL";
	a.log_level = 1;
	a.log_size = sizeof log;
	a.log_buf = (uint64_t)(uintptr_t)log;
	strncpy(a.prog_name, p->name, sizeof a.prog_name - 1);
	long fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR load %s errno=%d (%s): %.200s\n", p->name, errno,
		    strerror(errno), log);
		return -1;
	}
	p->fd = (int)fd;
	return 0;
}

/* An ARRAY_OF_MAPS needs its inner map's fd at creation. */
static int create_outer(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = outer.type;
	a.key_size = outer.key_size;
	a.value_size = outer.value_size;
	a.max_entries = outer.max_entries;
	a.inner_map_fd = (unsigned)inner.fd;
	strncpy(a.map_name, outer.name, sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR create %s errno=%d (%s)\n", outer.name, errno, strerror(errno));
		return -1;
	}
	outer.fd = (int)fd;
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)outer.fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0)
		return -1;
	outer.id = info.id;
	return 0;
}

/* BPF_MAP_LOOKUP_ELEM, quiet: an empty slot (ENOENT) is not an error here. */
static int lookup_raw(struct map_spec *m, const void *key, void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.key = (uint64_t)(uintptr_t)key;
	a.value = (uint64_t)(uintptr_t)value;
	return (int)sys_bpf(BPF_MAP_LOOKUP_ELEM, &a);
}

/* `MAP` and one `HVAL` per populated slot, as a lookup returns it (an object id). */
static int slots_truth(FILE *f, struct map_spec *m)
{
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", m->id, m->type,
		m->name, m->key_size, m->value_size, m->max_entries, m->flags);
	for (uint32_t k = 0; k < m->max_entries; k++) {
		uint32_t id;
		if (lookup_raw(m, &k, &id) != 0) {
			if (errno == ENOENT)
				continue;
			say("MAPWALK-ERROR ERR lookup %s errno=%d (%s)\n", m->name, errno,
			    strerror(errno));
			return -1;
		}
		fprintf(f, "HVAL %u ", m->id);
		hex(f, (const unsigned char *)&k, 4);
		fputc(' ', f);
		hex(f, (const unsigned char *)&id, 4);
		fputc('\n', f);
	}
	return 0;
}

static int prog_truth(FILE *f, struct prog *p)
{
	uint32_t map_ids[64];
	struct bpf_prog_info info;
	memset(&info, 0, sizeof info);
	info.nr_map_ids = 64;
	info.map_ids = (uint64_t)(uintptr_t)map_ids;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)p->fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0) {
		say("MAPWALK-ERROR ERR prog info %s errno=%d\n", p->name, errno);
		return -1;
	}
	fprintf(f, "PROG id=%u type=%u name=%s tag=", info.id, info.type, info.name);
	hex(f, info.tag, sizeof info.tag);
	fprintf(f, " gpl=%u xlated=%u jited=%u uid=%u btf=%u maps=", info.gpl_compatible,
		info.xlated_prog_len, info.jited_prog_len, info.created_by_uid, info.btf_id);
	if (info.nr_map_ids == 0)
		fputc('-', f);
	for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++)
		fprintf(f, "%s%u", i ? "," : "", map_ids[i]);
	fputc('\n', f);
	return 0;
}

int progs_setup(FILE *f)
{
	if (map_create(&inner) != 0 || map_create(&prog_array) != 0)
		return -1;
	for (uint32_t k = 0; k < inner.max_entries; k++) {
		uint64_t v = 0x1111111111111111ULL * (k + 1);
		if (map_update(&inner, &k, &v) != 0)
			return -1;
	}
	for (size_t i = 0; i < NPROGS; i++)
		if (load(&progs[i]) != 0)
			return -1;
	if (create_outer() != 0)
		return -1;
	uint32_t k1 = 1, k3 = 3, k2 = 2;
	uint32_t v1 = (uint32_t)progs[0].fd, v3 = (uint32_t)progs[1].fd, v2 = (uint32_t)inner.fd;
	if (map_update(&prog_array, &k1, &v1) != 0 || map_update(&prog_array, &k3, &v3) != 0 ||
	    map_update(&outer, &k2, &v2) != 0)
		return -1;
	if (write_map_truth(f, &inner) != 0 || slots_truth(f, &prog_array) != 0 ||
	    slots_truth(f, &outer) != 0 || lpm_setup(f) != 0)
		return -1;
	const char *path = "/tmp/bpf-progs";
	FILE *p = fopen(path, "w");
	if (!p)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < NPROGS; i++)
		if (prog_truth(p, &progs[i]) != 0)
			rc = -1;
	if (fclose(p) != 0 || rc != 0)
		return -1;
	return section("bpf-progs", path);
}
