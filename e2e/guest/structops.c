/*
 * A STRUCT_OPS map registering a TCP congestion control, on every guest.
 *
 * structops_setup(f) (called while the maps' ground truth is written) finds in the
 * kernel's own BTF (/sys/kernel/btf/vmlinux, parsed here) the type ids of
 * `struct tcp_congestion_ops` and `struct bpf_struct_ops_tcp_congestion_ops`, the
 * offset of the latter's `data`, and the index and offset of the members `ssthresh`,
 * `undo_cwnd`, `cong_avoid` and `name`. It loads three BPF_PROG_TYPE_STRUCT_OPS
 * programs (attach_btf_id = the struct's id, expected_attach_type = the member's index):
 *
 *     mw_ssthresh     r0 = 1; exit
 *     mw_undo_cwnd    r0 = 1; exit
 *     mw_cong_avoid   r0 = 0; exit
 *
 * makes
 *
 *     mw_ca     STRUCT_OPS     4-byte key, value = sizeof the value struct, 1 max
 *
 * and updates key 0 with the struct named "mw_ca" and the programs' descriptors in
 * their slots, which registers it with the TCP stack (state INUSE). Its truth:
 * the `MAP` line and `HVAL <id> 00000000 <value hex>` (the value as
 * BPF_MAP_LOOKUP_ELEM returns it) go to `f` (section `bpf-maps`); section
 * `bpf-struct-ops` has
 *
 *     SOPS <map id> <value type id> <struct type id> <data offset>
 *     FUNC <map id> <member> <member index> <offset in the value> <prog id> <prog name>
 *
 * one FUNC line per function pointer given a program. Failures are said on the
 * console; the map and programs live as long as /init.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"


/* The kernel's BTF, read whole. */
static unsigned char *btf;
static size_t btf_len;
static const unsigned char *btf_types, *btf_strs;
static uint32_t types_len, strs_len;

#define KIND(info) (((info) >> 24) & 0x1f)
#define VLEN(info) ((info) & 0xffff)

static int read_btf(void)
{
	int fd = open("/sys/kernel/btf/vmlinux", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR open /sys/kernel/btf/vmlinux: %s\n", strerror(errno));
		return -1;
	}
	size_t cap = 16u << 20;
	btf = malloc(cap);
	if (!btf) {
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, btf + btf_len, cap - btf_len);
		if (n < 0) {
			say("MAPWALK-ERROR ERR read vmlinux BTF: %s\n", strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		btf_len += (size_t)n;
		if (btf_len == cap) {
			say("MAPWALK-ERROR ERR vmlinux BTF above %zu bytes\n", cap);
			close(fd);
			return -1;
		}
	}
	close(fd);
	uint32_t hdr_len, type_off, str_off;
	if (btf_len < 24 || btf[0] != 0x9f || btf[1] != 0xeb) {
		say("MAPWALK-ERROR ERR vmlinux BTF: bad header\n");
		return -1;
	}
	memcpy(&hdr_len, btf + 4, 4);
	memcpy(&type_off, btf + 8, 4);
	memcpy(&types_len, btf + 12, 4);
	memcpy(&str_off, btf + 16, 4);
	memcpy(&strs_len, btf + 20, 4);
	if ((size_t)hdr_len + type_off + types_len > btf_len ||
	    (size_t)hdr_len + str_off + strs_len > btf_len) {
		say("MAPWALK-ERROR ERR vmlinux BTF: sections past the end\n");
		return -1;
	}
	btf_types = btf + hdr_len + type_off;
	btf_strs = btf + hdr_len + str_off;
	return 0;
}

static const char *str_at(uint32_t off)
{
	return off < strs_len ? (const char *)btf_strs + off : "";
}

/* Bytes after the 12-byte header of a type of this kind and vlen. */
static size_t extra(uint32_t kind, uint32_t vlen)
{
	switch (kind) {
	case 1: /* INT */
	case 14: /* VAR */
	case 17: /* DECL_TAG */
		return 4;
	case 3: /* ARRAY */
		return 12;
	case 4: /* STRUCT */
	case 5: /* UNION */
	case 15: /* DATASEC */
	case 19: /* ENUM64 */
		return 12 * (size_t)vlen;
	case 6: /* ENUM */
	case 13: /* FUNC_PROTO */
		return 8 * (size_t)vlen;
	default:
		return 0;
	}
}

/* The id and header of the struct named `name`, or 0. */
static uint32_t find_struct(const char *name, const unsigned char **at)
{
	size_t off = 0;
	uint32_t id = 1;
	while (off + 12 <= types_len) {
		uint32_t name_off, info;
		memcpy(&name_off, btf_types + off, 4);
		memcpy(&info, btf_types + off + 4, 4);
		if (KIND(info) == 4 && strcmp(str_at(name_off), name) == 0) {
			*at = btf_types + off;
			return id;
		}
		off += 12 + extra(KIND(info), VLEN(info));
		id++;
	}
	return 0;
}

/* Index and byte offset of member `name` of the struct at `t`; -1 if absent. */
static int member(const unsigned char *t, const char *name, uint32_t *offset)
{
	uint32_t info;
	memcpy(&info, t + 4, 4);
	for (uint32_t i = 0; i < VLEN(info); i++) {
		const unsigned char *m = t + 12 + 12 * (size_t)i;
		uint32_t name_off, bits;
		memcpy(&name_off, m, 4);
		memcpy(&bits, m + 8, 4);
		if (strcmp(str_at(name_off), name) == 0) {
			/* kind_flag: the low 24 bits are the offset. */
			*offset = ((info >> 31) ? (bits & 0xffffff) : bits) / 8;
			return (int)i;
		}
	}
	return -1;
}

static int load_prog(const char *name, int r0, uint32_t struct_id, int index)
{
	struct bpf_insn insns[2];
	memset(insns, 0, sizeof insns);
	insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
	insns[0].imm = r0;
	insns[1].code = BPF_JMP | BPF_EXIT;
	static char log[16384];
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_STRUCT_OPS;
	a.expected_attach_type = (uint32_t)index;
	a.attach_btf_id = struct_id;
	a.insn_cnt = 2;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.license = (uint64_t)(uintptr_t)"GPL";
	a.log_level = 1;
	a.log_size = sizeof log;
	a.log_buf = (uint64_t)(uintptr_t)log;
	strncpy(a.prog_name, name, sizeof a.prog_name - 1);
	long fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0)
		say("MAPWALK-ERROR ERR load %s errno=%d (%s): %.200s\n", name, errno,
		    strerror(errno), log);
	return (int)fd;
}

static uint32_t prog_id(int fd)
{
	struct bpf_prog_info info;
	memset(&info, 0, sizeof info);
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (uint32_t)fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0)
		return 0;
	return info.id;
}

/* A minimal BTF object (one `int`): BPF_MAP_CREATE wants a BTF fd with any
 * btf_vmlinux_value_type_id. */
static int load_btf(void)
{
	static const char strs[] = "\0int";
	static const uint32_t types[] = { 1, 1u << 24, 4, 1u << 24 | 32 }; /* [1] int */
	return btf_load("struct_ops", types, sizeof types, strs, sizeof strs);
}

static struct map_spec ca = { "mw_ca", BPF_MAP_TYPE_STRUCT_OPS, 4, 0, 1, 0, 0, -1, 0 };

static const struct {
	const char *member, *prog;
	int r0;
} funcs[] = {
	{ "ssthresh", "mw_ssthresh", 1 },
	{ "undo_cwnd", "mw_undo_cwnd", 1 },
	{ "cong_avoid", "mw_cong_avoid", 0 },
};
#define NFUNCS (sizeof funcs / sizeof funcs[0])

int structops_setup(FILE *f)
{
	if (read_btf() != 0)
		return -1;
	const unsigned char *t, *vt;
	uint32_t struct_id = find_struct("tcp_congestion_ops", &t);
	uint32_t value_id = find_struct("bpf_struct_ops_tcp_congestion_ops", &vt);
	uint32_t data_off, name_off;
	if (struct_id == 0 || value_id == 0 || member(vt, "data", &data_off) < 0 ||
	    member(t, "name", &name_off) < 0) {
		say("MAPWALK-ERROR ERR vmlinux BTF: no tcp_congestion_ops struct_ops types\n");
		return -1;
	}
	uint32_t value_size;
	memcpy(&value_size, vt + 8, 4);
	unsigned char *value = calloc(1, value_size);
	if (!value)
		return -1;
	int fds[NFUNCS], index[NFUNCS];
	uint32_t off[NFUNCS];
	for (size_t i = 0; i < NFUNCS; i++) {
		index[i] = member(t, funcs[i].member, &off[i]);
		if (index[i] < 0) {
			say("MAPWALK-ERROR ERR tcp_congestion_ops has no %s\n", funcs[i].member);
			return -1;
		}
		fds[i] = load_prog(funcs[i].prog, funcs[i].r0, struct_id, index[i]);
		if (fds[i] < 0)
			return -1;
		uint64_t slot = (uint64_t)fds[i];
		memcpy(value + data_off + off[i], &slot, 8);
	}
	memcpy(value + data_off + name_off, "mw_ca", 5);

	int btf_fd = load_btf();
	if (btf_fd < 0)
		return -1;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = BPF_MAP_TYPE_STRUCT_OPS;
	a.btf_fd = (uint32_t)btf_fd;
	a.key_size = 4;
	a.value_size = value_size;
	a.max_entries = 1;
	a.btf_vmlinux_value_type_id = value_id;
	strncpy(a.map_name, ca.name, sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR create mw_ca errno=%d (%s)\n", errno, strerror(errno));
		return -1;
	}
	ca.fd = (int)fd;
	ca.value_size = value_size;
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (uint32_t)ca.fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0)
		return -1;
	ca.id = info.id;
	uint32_t key = 0;
	if (map_update(&ca, &key, value) != 0)
		return -1;

	/* The truth: the lookup's bytes, and the programs. */
	if (map_lookup(&ca, &key, value) != 0)
		return -1;
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", ca.id, ca.type,
		ca.name, ca.key_size, ca.value_size, ca.max_entries, ca.flags);
	fprintf(f, "HVAL %u 00000000 ", ca.id);
	hex(f, value, value_size);
	fputc('\n', f);
	FILE *s = fopen("/tmp/bpf-struct-ops", "w");
	if (!s)
		return -1;
	fprintf(s, "SOPS %u %u %u %u\n", ca.id, value_id, struct_id, data_off);
	for (size_t i = 0; i < NFUNCS; i++)
		fprintf(s, "FUNC %u %s %d %u %u %s\n", ca.id, funcs[i].member, index[i],
			data_off + off[i], prog_id(fds[i]), funcs[i].prog);
	free(value);
	if (fclose(s) != 0 || section("bpf-struct-ops", "/tmp/bpf-struct-ops") != 0)
		return -1;
	return 0;
}
