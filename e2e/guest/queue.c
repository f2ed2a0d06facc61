/*
 * A QUEUE and a STACK map, on every guest but the in-guest ones (with /bin/mapwalk:
 * their live dump must stay whole, and bpf() cannot list these maps without popping
 * them).
 *
 * queue_setup(f) makes
 *
 *     mw_queue   QUEUE   value 8 bytes, max 16 (a ring of 17 slots)
 *     mw_stackq  STACK   value 6 bytes, max 8 (a ring of 9 slots)
 *
 * and moves them through the kernel's push (BPF_MAP_UPDATE_ELEM, key NULL) and pop
 * (BPF_MAP_LOOKUP_AND_DELETE_ELEM) so that both rings hold their elements somewhere
 * other than from slot 0:
 *
 *   - mw_queue: push q0..q9, pop three (q0, q1, q2 must come back, in order; tail 3),
 *     push q10..q17 (head wraps: 18 mod 17 = 1); it holds q3..q17, 15 elements.
 *   - mw_stackq: push s0..s7 (full); one more push without BPF_EXIST must fail with
 *     E2BIG, one with BPF_EXIST replaces the oldest (tail 1, head 9 mod 9 = 0); it
 *     holds s1..s8, 8 elements, s8 on top.
 *
 * Element i of mw_queue is the little-endian u64 0x5100beef00000000 | i; element i of
 * mw_stackq the bytes 5c i a0 ~i 33 44. The MAP lines go to `f` (section `bpf-maps`,
 * no value lines: bpf() cannot list these maps); section `bpf-queues` holds, per map,
 *
 *     QS <id> name=<name> peek=<hex> pop=<hex>,<hex>,...
 *
 * `pop` being every element in the order pops would return them (computed from what
 * was pushed and popped; nothing is popped to write it) and `peek` what
 * BPF_MAP_LOOKUP_ELEM (key NULL) returned, which must be pop's first; then, for the
 * stack's push past max_entries,
 *
 *     FULL <id> errno=<errno of the push without BPF_EXIST>
 *
 * Failures (a pop or a peek that differs from the expected) are said on the console.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "guest.h"

/* The most elements either map holds. */
#define QS_MAX 16

static struct map_spec queue = { "mw_queue", BPF_MAP_TYPE_QUEUE, 0, 8, 16, 0, 0, -1, 0 };
static struct map_spec stackq = { "mw_stackq", BPF_MAP_TYPE_STACK, 0, 6, 8, 0, 0, -1, 0 };

static void queue_elem(unsigned i, unsigned char v[8])
{
	uint64_t x = 0x5100beef00000000ull | i;
	memcpy(v, &x, 8);
}

static void stack_elem(unsigned i, unsigned char v[6])
{
	const unsigned char b[6] = { 0x5c, (unsigned char)i, 0xa0, (unsigned char)~i, 0x33, 0x44 };
	memcpy(v, b, 6);
}

/* BPF_MAP_UPDATE_ELEM with key NULL: a push. The errno on failure, 0 on success. */
static int push(struct map_spec *m, const void *value, uint64_t flags)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.value = (uint64_t)(uintptr_t)value;
	a.flags = flags;
	return sys_bpf(BPF_MAP_UPDATE_ELEM, &a) == 0 ? 0 : errno;
}

/* BPF_MAP_LOOKUP_ELEM (peek) or BPF_MAP_LOOKUP_AND_DELETE_ELEM (pop), key NULL. */
static int take(struct map_spec *m, int cmd, void *value)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_fd = (unsigned)m->fd;
	a.value = (uint64_t)(uintptr_t)value;
	if (sys_bpf(cmd, &a) != 0) {
		say("MAPWALK-ERROR queue: %s %s errno=%d (%s)\n",
		    cmd == BPF_MAP_LOOKUP_ELEM ? "peek" : "pop", m->name, errno, strerror(errno));
		return -1;
	}
	return 0;
}

static int create(struct map_spec *m, FILE *f)
{
	if (map_create(m) != 0)
		return -1;
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", m->id,
		m->type, m->name, m->key_size, m->value_size, m->max_entries, m->flags);
	return 0;
}

/* The QS line: the expected pop order `want` (n elements), and the peeked value,
 * which must equal want[0]. */
static int truth(FILE *s, struct map_spec *m, const unsigned char *want, unsigned n)
{
	unsigned char peek[8];
	if (take(m, BPF_MAP_LOOKUP_ELEM, peek) != 0)
		return -1;
	int rc = 0;
	if (n == 0 || memcmp(peek, want, m->value_size) != 0) {
		say("MAPWALK-ERROR queue: peek %s is not the expected first pop\n", m->name);
		rc = -1;
	}
	fprintf(s, "QS %u name=%s peek=", m->id, m->name);
	hex(s, peek, m->value_size);
	fputs(" pop=", s);
	for (unsigned i = 0; i < n; i++) {
		if (i)
			fputc(',', s);
		hex(s, want + i * m->value_size, m->value_size);
	}
	fputc('\n', s);
	return rc;
}

static int fill_queue(FILE *f, FILE *s)
{
	unsigned char v[8], got[8], want[QS_MAX * 8];
	if (create(&queue, f) != 0)
		return -1;
	int rc = 0;
	for (unsigned i = 0; i < 10; i++) {
		queue_elem(i, v);
		if (push(&queue, v, BPF_ANY) != 0)
			rc = -1;
	}
	for (unsigned i = 0; i < 3; i++) {
		queue_elem(i, v);
		if (take(&queue, BPF_MAP_LOOKUP_AND_DELETE_ELEM, got) != 0)
			rc = -1;
		else if (memcmp(got, v, 8) != 0) {
			say("MAPWALK-ERROR queue: pop %u of mw_queue is not q%u\n", i, i);
			rc = -1;
		}
	}
	for (unsigned i = 10; i < 18; i++) {
		queue_elem(i, v);
		if (push(&queue, v, BPF_ANY) != 0)
			rc = -1;
	}
	/* Oldest first: q3..q17. */
	for (unsigned i = 3; i < 18; i++)
		queue_elem(i, want + (i - 3) * 8);
	if (rc != 0)
		say("MAPWALK-ERROR queue: a push or pop of mw_queue failed\n");
	if (truth(s, &queue, want, 15) != 0)
		rc = -1;
	return rc;
}

static int fill_stack(FILE *f, FILE *s)
{
	unsigned char v[6], want[QS_MAX * 6];
	if (create(&stackq, f) != 0)
		return -1;
	int rc = 0;
	for (unsigned i = 0; i < 8; i++) {
		stack_elem(i, v);
		if (push(&stackq, v, BPF_ANY) != 0)
			rc = -1;
	}
	stack_elem(8, v);
	int full = push(&stackq, v, BPF_ANY);
	if (full != E2BIG) {
		say("MAPWALK-ERROR queue: push to a full mw_stackq gave errno %d, not E2BIG\n",
		    full);
		rc = -1;
	}
	if (push(&stackq, v, BPF_EXIST) != 0) {
		say("MAPWALK-ERROR queue: push with BPF_EXIST to a full mw_stackq failed\n");
		rc = -1;
	}
	/* Newest first: s8..s1 (s0, the oldest, was replaced). */
	for (unsigned i = 0; i < 8; i++)
		stack_elem(8 - i, want + i * 6);
	if (truth(s, &stackq, want, 8) != 0)
		rc = -1;
	fprintf(s, "FULL %u errno=%d\n", stackq.id, full);
	return rc;
}

int queue_setup(FILE *f)
{
	if (access("/bin/mapwalk", X_OK) == 0)
		return 0;
	FILE *s = fopen("/tmp/bpf-queues", "w");
	if (!s) {
		say("MAPWALK-ERROR queue: /tmp/bpf-queues: %s\n", strerror(errno));
		return -1;
	}
	int rc = 0;
	if (fill_queue(f, s) != 0)
		rc = -1;
	if (fill_stack(f, s) != 0)
		rc = -1;
	if (fclose(s) != 0 || section("bpf-queues", "/tmp/bpf-queues") != 0)
		rc = -1;
	return rc;
}
