/*
 * A STACK_TRACE map holding real kernel stacks, on every guest.
 *
 * stack_setup(f) (called while the maps' ground truth is written) makes
 *
 *     mw_stacks     STACK_TRACE         4-byte keys, 256-byte values (32 frames), 16 max
 *
 * loads a BPF_PROG_TYPE_RAW_TRACEPOINT program that calls bpf_get_stackid(ctx,
 * mw_stacks, 0) (the kernel stack), attaches it to the raw tracepoint `sys_enter` with
 * BPF_RAW_TRACEPOINT_OPEN, makes a few system calls, and detaches it and frees the
 * program (closing both descriptors), so the map holds syscall-entry stacks and no longer
 * changes. The ground truth goes to `f` (section `bpf-maps`) as the hash maps have it:
 * the `MAP` line, then `HVAL <id> <key hex> <value hex>` for every key in
 * BPF_MAP_GET_NEXT_KEY order, the value as BPF_MAP_LOOKUP_ELEM returns it (the frames,
 * then zeros).
 *
 * Failures are said on the console; the map lives as long as /init.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "guest.h"


static struct map_spec stacks = { "mw_stacks", BPF_MAP_TYPE_STACK_TRACE, 4, 256, 16, 0, 0, -1, 0 };

/* The program: r6 = ctx; r2 = mw_stacks; r1 = r6; r3 = 0; call bpf_get_stackid;
 * r0 = 0; exit. */
static int load_prog(void)
{
	struct bpf_insn insns[8];
	memset(insns, 0, sizeof insns);
	insns[0].code = BPF_ALU64 | BPF_MOV | BPF_X; /* r6 = r1 */
	insns[0].dst_reg = 6;
	insns[0].src_reg = 1;
	insns[1].code = BPF_LD | BPF_DW | BPF_IMM; /* r2 = map ll */
	insns[1].dst_reg = 2;
	insns[1].src_reg = BPF_PSEUDO_MAP_FD;
	insns[1].imm = stacks.fd;
	insns[3].code = BPF_ALU64 | BPF_MOV | BPF_X; /* r1 = r6 */
	insns[3].dst_reg = 1;
	insns[3].src_reg = 6;
	insns[4].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r3 = 0 */
	insns[4].dst_reg = 3;
	insns[5].code = BPF_JMP | BPF_CALL;
	insns[5].imm = BPF_FUNC_get_stackid;
	insns[6].code = BPF_ALU64 | BPF_MOV | BPF_K; /* r0 = 0 */
	insns[7].code = BPF_JMP | BPF_EXIT;
	static char log[16384];
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_RAW_TRACEPOINT;
	a.insn_cnt = 8;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.license = (uint64_t)(uintptr_t)"GPL";
	a.log_level = 1;
	a.log_size = sizeof log;
	a.log_buf = (uint64_t)(uintptr_t)log;
	strncpy(a.prog_name, "mw_stackid", sizeof a.prog_name - 1);
	long fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0)
		say("MAPWALK-ERROR ERR load mw_stackid errno=%d (%s): %.200s\n", errno,
		    strerror(errno), log);
	return (int)fd;
}

int stack_setup(FILE *f)
{
	if (map_create(&stacks) != 0)
		return -1;
	int prog = load_prog();
	if (prog < 0)
		return -1;
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.raw_tracepoint.name = (uint64_t)(uintptr_t)"sys_enter";
	a.raw_tracepoint.prog_fd = (uint32_t)prog;
	long tp = sys_bpf(BPF_RAW_TRACEPOINT_OPEN, &a);
	if (tp < 0) {
		say("MAPWALK-ERROR ERR raw_tracepoint_open sys_enter errno=%d (%s)\n", errno,
		    strerror(errno));
		close(prog);
		return -1;
	}
	for (int i = 0; i < 4; i++)
		syscall(SYS_getppid);
	close((int)tp);
	close(prog);
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", stacks.id,
		stacks.type, stacks.name, stacks.key_size, stacks.value_size, stacks.max_entries,
		stacks.flags);
	static unsigned char value[256];
	uint32_t key = 0, next;
	const void *prev = NULL;
	unsigned n = 0;
	for (; n <= stacks.max_entries; n++) {
		int r = map_next_key(&stacks, prev, &next);
		if (r != 0) {
			if (r < 0)
				return -1;
			break;
		}
		key = next;
		prev = &key;
		if (map_lookup(&stacks, &key, value) != 0)
			return -1;
		fprintf(f, "HVAL %u ", stacks.id);
		hex(f, (const unsigned char *)&key, 4);
		fputc(' ', f);
		hex(f, value, sizeof value);
		fputc('\n', f);
	}
	if (n == 0) {
		say("MAPWALK-ERROR ERR mw_stacks holds no stack\n");
		return -1;
	}
	return 0;
}
