/*
 * An ARENA (Linux 6.9+), on the guests without the in-guest mapwalk (bpf() cannot
 * read an arena without allocating its pages, so a live dump would not be whole)
 * whose pages are 4 KiB.
 *
 * arena_setup() makes
 *
 *     mw_arena   ARENA   BPF_F_MMAPABLE, map_extra ARENA_ADDR (a fixed user address),
 *                        ARENA_PAGES pages (1 GiB)
 *
 * maps it at that address, writes known bytes into a few scattered pages (the user
 * faults allocate them), reads one more page without writing it (the fault allocates
 * it too: present, all zero), and leaves every other page absent. Section `bpf-arena`
 * is the truth:
 *
 *     ARENA id=<id> addr=<user address, hex> pages=<max_entries>
 *     PAGE <user address, hex> <the page's 4096 bytes, hex>     (each present page,
 *                                                               in address order)
 *
 * or, on a kernel that cannot make arenas (6.1), `NOARENA errno=<errno>`. The mapping
 * lives as long as /init.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest.h"


#define ARENA_MAP_TYPE 33 /* BPF_MAP_TYPE_ARENA */
#define ARENA_MMAPABLE (1U << 10) /* BPF_F_MMAPABLE */
#define ARENA_ADDR 0x3f0000000000ULL
#define ARENA_PAGES (1U << 18)
#define ARENA_PAGE 4096

/* Pages written (scattered over the arena), and the page only read. */
static const unsigned written[] = { 0, 1, 300, 5000, 200000, ARENA_PAGES - 1 };
#define READ_ONLY_PAGE 77U

static unsigned char fill(unsigned page, unsigned i)
{
	return (unsigned char)(page * 7u + i * 13u + 1u);
}

static int has(unsigned page)
{
	for (size_t i = 0; i < sizeof written / sizeof written[0]; i++)
		if (written[i] == page)
			return 1;
	return 0;
}

int arena_setup(void)
{
	/* Its page arithmetic is 4 KiB pages' (the 16 KiB arm64 guest has none). */
	if (access("/bin/mapwalk", X_OK) == 0 || sysconf(_SC_PAGESIZE) != 4096)
		return 0;
	FILE *s = fopen("/tmp/bpf-arena", "w");
	if (!s) {
		say("MAPWALK-ERROR open /tmp/bpf-arena: %s\n", strerror(errno));
		return -1;
	}
	union bpf_attr a;
	memset(&a, 0, sizeof a);
	a.map_type = ARENA_MAP_TYPE;
	a.max_entries = ARENA_PAGES;
	a.map_flags = ARENA_MMAPABLE;
	a.map_extra = ARENA_ADDR;
	strncpy(a.map_name, "mw_arena", sizeof a.map_name - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &a);
	int rc = 0;
	if (fd < 0) {
		fprintf(s, "NOARENA errno=%d\n", errno);
		goto out;
	}
	struct bpf_map_info info;
	memset(&info, 0, sizeof info);
	memset(&a, 0, sizeof a);
	a.info.bpf_fd = (unsigned)fd;
	a.info.info_len = sizeof info;
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) != 0) {
		say("MAPWALK-ERROR ERR info mw_arena: %s\n", strerror(errno));
		rc = -1;
		goto out;
	}
	size_t len = (size_t)ARENA_PAGES * ARENA_PAGE;
	unsigned char *p = mmap((void *)(uintptr_t)ARENA_ADDR, len, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_FIXED_NOREPLACE, (int)fd, 0);
	if (p == MAP_FAILED || (uintptr_t)p != ARENA_ADDR) {
		say("MAPWALK-ERROR mmap mw_arena: %s\n", strerror(errno));
		rc = -1;
		goto out;
	}
	for (size_t w = 0; w < sizeof written / sizeof written[0]; w++)
		for (unsigned i = 0; i < ARENA_PAGE; i++)
			p[(size_t)written[w] * ARENA_PAGE + i] = fill(written[w], i);
	/* A read fault allocates the page too. */
	volatile unsigned char sink = p[(size_t)READ_ONLY_PAGE * ARENA_PAGE + 5];
	(void)sink;
	fprintf(s, "ARENA id=%u addr=%llx pages=%u\n", info.id, ARENA_ADDR, ARENA_PAGES);
	for (unsigned page = 0; page < ARENA_PAGES; page++) {
		if (!has(page) && page != READ_ONLY_PAGE)
			continue;
		fprintf(s, "PAGE %llx ", ARENA_ADDR + (unsigned long long)page * ARENA_PAGE);
		hex(s, p + (size_t)page * ARENA_PAGE, ARENA_PAGE);
		fputc('\n', s);
	}
out:
	if (fclose(s) != 0 || section("bpf-arena", "/tmp/bpf-arena") != 0)
		rc = -1;
	return rc;
}
