/*
 * RINGBUF and USER_RINGBUF, on the guests without the in-guest mapwalk whose pages
 * are 4 KiB.
 *
 * ringbuf_setup(f) makes:
 *
 *     mw_ringbuf    RINGBUF        16 KiB. A socket filter run through BPF_PROG_TEST_RUN
 *                                  writes records with bpf_ringbuf_output (64 bytes
 *                                  each, then one of 37 bytes) and reserves and discards
 *                                  one with bpf_ringbuf_reserve + bpf_ringbuf_discard;
 *                                  the first 190 records are consumed (consumer_pos
 *                                  moved through the mapped consumer page), and the
 *                                  records written after run past the end of the data
 *                                  area: one of them wraps.
 *     mw_uringbuf   USER_RINGBUF   16 KiB, filled from user space as libbpf does
 *                                  (header written busy, producer_pos stored, then the
 *                                  busy bit cleared): a record of 15 bytes, a discarded
 *                                  one of 20, one of 33, and one of 9 left reserved
 *                                  (busy). The kernel never drains it.
 *
 * Their `MAP` lines go to `f`; section `bpf-ringbuf` has the truth, read back through
 * user space's own mapping of each ring as a consumer reads it:
 *
 *     RING <id> <size> <consumer_pos> <producer_pos> <the u64 after producer_pos>
 *     REC <id> <pos> <the record's header, then its data (none when busy), hex>
 *
 * the REC lines oldest first from consumer_pos, up to and including the first busy
 * record. The u64 after producer_pos is `pending_pos` on 6.8 and later (0 before).
 *
 * Failures are said on the console; the maps live as long as /init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"


#define RING_SIZE 16384u
#define PAGE 4096u
#define BUSY (1u << 31)
#define DISCARD (1u << 30)

static struct map_spec ring = { "mw_ringbuf", BPF_MAP_TYPE_RINGBUF, 0, 0, RING_SIZE, 0, 0, -1, 0 };
static struct map_spec uring = { "mw_uringbuf", BPF_MAP_TYPE_USER_RINGBUF, 0, 0, RING_SIZE,
				 0, 0, -1, 0 };

static int fail(const char *what)
{
	say("MAPWALK-ERROR ERR ringbuf %s errno=%d (%s)\n", what, errno, strerror(errno));
	return -1;
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	struct bpf_insn i;
	memset(&i, 0, sizeof i);
	i.code = code;
	i.dst_reg = dst;
	i.src_reg = src;
	i.off = off;
	i.imm = imm;
	return i;
}

/* Loads the socket filter insns[0..n) and runs it `repeat` times; 0 on success. */
static int run(const char *name, const struct bpf_insn *insns, unsigned n, unsigned repeat)
{
	static char log[4096];
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = n;
	a.license = (uint64_t)(uintptr_t)"GPL";
	a.log_level = 1;
	a.log_size = sizeof log;
	a.log_buf = (uint64_t)(uintptr_t)log;
	strncpy(a.prog_name, name, sizeof a.prog_name - 1);
	long fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (fd < 0) {
		say("MAPWALK-ERROR ERR ringbuf load %s errno=%d (%s): %.300s\n", name, errno,
		    strerror(errno), log);
		return -1;
	}
	static unsigned char pkt[64];
	memset(&a, 0, sizeof a);
	a.test.prog_fd = (unsigned)fd;
	a.test.data_in = (uint64_t)(uintptr_t)pkt;
	a.test.data_size_in = sizeof pkt;
	a.test.repeat = repeat;
	int rc = sys_bpf(BPF_PROG_TEST_RUN, &a) == 0 ? 0 : fail(name);
	close((int)fd);
	return rc;
}

/* r1 = the map (BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD). */
static unsigned ld_map(struct bpf_insn *p, int fd)
{
	p[0] = insn(BPF_LD | BPF_IMM | BPF_DW, 1, BPF_PSEUDO_MAP_FD, 0, fd);
	p[1] = insn(0, 0, 0, 0, 0);
	return 2;
}

/* bpf_ringbuf_output of `len` (<= 64) bytes of a stack buffer of 8 words from `seed`,
 * `repeat` times. */
static int output(unsigned len, uint32_t seed, unsigned repeat)
{
	struct bpf_insn p[32];
	unsigned n = 0;
	for (int j = 0; j < 8; j++) {
		seed = seed * 1103515245u + 12345u;
		p[n++] = insn(BPF_ST | BPF_MEM | BPF_DW, 10, 0, (int16_t)(-64 + 8 * j), (int32_t)seed);
	}
	n += ld_map(p + n, ring.fd);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, 2, 10, 0, 0);
	p[n++] = insn(BPF_ALU64 | BPF_ADD | BPF_K, 2, 0, 0, -64);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, (int32_t)len);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 4, 0, 0, 0);
	p[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_output);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
	p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return run("mw_rb_output", p, n, repeat);
}

/* bpf_ringbuf_reserve of `len` bytes, then bpf_ringbuf_discard. */
static int reserve_discard(unsigned len)
{
	struct bpf_insn p[16];
	unsigned n = ld_map(p, ring.fd);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, (int32_t)len);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, 0);
	p[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_reserve);
	p[n++] = insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3, 0);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, 1, 0, 0, 0);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 2, 0, 0, 0);
	p[n++] = insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_ringbuf_discard);
	p[n++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
	p[n++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return run("mw_rb_discard", p, n, 1);
}

static int create(struct map_spec *m)
{
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = m->type;
	a.max_entries = m->max_entries;
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
	fprintf(f, "MAP id=%u type=%u name=%s key=%u value=%u max=%u flags=%u\n", m->id, m->type,
		m->name, m->key_size, m->value_size, m->max_entries, m->flags);
}

/* The RING and REC lines of `m`, read through `cons` (the consumer page) and `prod`
 * (the producer page, the data pages twice after it), as a consumer reads. */
static void truth(FILE *s, const struct map_spec *m, const volatile uint64_t *cons,
		  const unsigned char *prod)
{
	uint64_t c = __atomic_load_n(cons, __ATOMIC_ACQUIRE);
	uint64_t p = __atomic_load_n((const uint64_t *)prod, __ATOMIC_ACQUIRE);
	uint64_t after = __atomic_load_n((const uint64_t *)(prod + 8), __ATOMIC_ACQUIRE);
	fprintf(s, "RING %u %u %llu %llu %llu\n", m->id, RING_SIZE, (unsigned long long)c,
		(unsigned long long)p, (unsigned long long)after);
	const unsigned char *data = prod + PAGE;
	for (uint64_t pos = c; pos < p;) {
		const unsigned char *hdr = data + (pos & (RING_SIZE - 1));
		uint32_t word = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
		uint32_t len = word & ~(BUSY | DISCARD);
		fprintf(s, "REC %u %llu ", m->id, (unsigned long long)pos);
		/* The data pages are mapped twice: a record that wraps is contiguous. */
		hex(s, hdr, 8 + ((word & BUSY) ? 0 : len));
		fputc('\n', s);
		if (word & BUSY)
			break;
		pos += (len + 8 + 7) & ~7ull;
	}
}

static int kernel_ring(FILE *f, FILE *s)
{
	if (create(&ring) != 0)
		return -1;
	map_line(f, &ring);
	volatile uint64_t *cons =
		mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ring.fd, 0);
	unsigned char *prod = mmap(NULL, PAGE + 2 * RING_SIZE, PROT_READ, MAP_SHARED, ring.fd, PAGE);
	if (cons == MAP_FAILED || prod == MAP_FAILED)
		return fail("mmap mw_ringbuf");
	/* 200 records of 64 bytes (72 with the header): 14,400 bytes. */
	if (output(64, 1, 200) != 0)
		return -1;
	/* The first 190 consumed, as a consumer would. */
	__atomic_store_n(cons, 190ull * 72, __ATOMIC_RELEASE);
	/* One of 37 bytes (48), one reserved and discarded (24 + 8), then 30 of 64: the
	 * producer goes past 16,384, and a record wraps. */
	if (output(37, 2, 1) != 0 || reserve_discard(24) != 0 || output(64, 3, 30) != 0)
		return -1;
	truth(s, &ring, cons, prod);
	return 0;
}

/* A user-space record of `len` bytes at the producer position, committed as `final`
 * (the length, with DISCARD, or with BUSY to leave it reserved). */
static void user_record(unsigned char *prod, uint32_t len, unsigned char fill, uint32_t final)
{
	uint64_t p = __atomic_load_n((uint64_t *)prod, __ATOMIC_ACQUIRE);
	unsigned char *hdr = prod + PAGE + (p & (RING_SIZE - 1));
	uint32_t busy = len | BUSY, pg_off = 0;
	memcpy(hdr + 4, &pg_off, 4);
	__atomic_store_n((uint32_t *)hdr, busy, __ATOMIC_RELEASE);
	for (uint32_t i = 0; i < len; i++)
		hdr[8 + i] = (unsigned char)(fill + i);
	__atomic_store_n((uint64_t *)prod, p + ((len + 8 + 7) & ~7u), __ATOMIC_RELEASE);
	__atomic_store_n((uint32_t *)hdr, final, __ATOMIC_RELEASE);
}

static int user_ring(FILE *f, FILE *s)
{
	if (create(&uring) != 0)
		return -1;
	map_line(f, &uring);
	volatile uint64_t *cons = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, uring.fd, 0);
	unsigned char *prod =
		mmap(NULL, PAGE + 2 * RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, uring.fd, PAGE);
	if (cons == MAP_FAILED || prod == MAP_FAILED)
		return fail("mmap mw_uringbuf");
	user_record(prod, 15, 0x10, 15);
	user_record(prod, 20, 0x40, 20 | DISCARD);
	user_record(prod, 33, 0x80, 33);
	user_record(prod, 9, 0xc0, 9 | BUSY);
	truth(s, &uring, cons, prod);
	return 0;
}

int ringbuf_setup(FILE *f)
{
	/* A guest whose live dump is compared from inside has none; nor one whose pages
	 * are not 4 KiB (the 16 KiB arm64 guest), the size this ring is laid out for. */
	if (access("/bin/mapwalk", X_OK) == 0 || sysconf(_SC_PAGESIZE) != 4096)
		return 0;
	FILE *s = fopen("/tmp/bpf-ringbuf", "w");
	if (!s)
		return fail("open /tmp/bpf-ringbuf");
	int rc = kernel_ring(f, s) != 0 || user_ring(f, s) != 0 ? -1 : 0;
	if (fclose(s) != 0 || section("bpf-ringbuf", "/tmp/bpf-ringbuf") != 0)
		rc = -1;
	return rc;
}
