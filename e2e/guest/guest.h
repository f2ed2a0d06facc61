/*
 * What the files of the guest's /init share (init.c has main and the common tools;
 * every other .c file here is one feature, started from main with one call).
 */
#ifndef MAPWALK_GUEST_H
#define MAPWALK_GUEST_H

#include <linux/bpf.h>
#include <stddef.h>
#include <stdio.h>

/* The console (ttyS0, for one-line messages) and the data port (ttyS1, sections). */
extern int con;
extern int data;

/* printf to the console. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes all of p; 0 on success. */
int write_all(int fd, const char *p, size_t len);
/* Copies the file at path to the data port as section `name`; 0 on success. */
int section(const char *name, const char *path);
/* The value of `name=<unsigned>` on the kernel command line, or dflt. */
unsigned long cmdline_ulong(const char *name, unsigned long dflt);

/* The next byte of init.c's deterministic byte stream (the maps' known contents). */
unsigned char lcg_byte(void);
/* The raw bpf() syscall. */
long sys_bpf(int cmd, union bpf_attr *attr);
/* BPF_BTF_LOAD of a BTF object made of `types` and `strs` (which starts with "\0"):
 * its fd, or -1 (said on the console with the kernel's log, naming `who`). */
int btf_load(const char *who, const uint32_t *types, uint32_t type_len, const char *strs,
	     uint32_t str_len);

/* One map the guest makes; fd and id are filled by map_create. */
struct map_spec {
	const char *name;
	unsigned type, key_size, value_size, max_entries, flags;
	/* Hash maps: how many keys to insert (array maps fill every key). */
	unsigned fill;
	int fd;
	unsigned id;
};

/* BPF_MAP_CREATE then its id; 0 on success (failures are said on the console). */
int map_create(struct map_spec *m);
/* BPF_MAP_UPDATE_ELEM with BPF_ANY; 0 on success. */
int map_update(struct map_spec *m, const void *key, const void *value);
/* BPF_MAP_LOOKUP_ELEM; 0 on success. */
int map_lookup(struct map_spec *m, const void *key, void *value);
/* BPF_MAP_GET_NEXT_KEY; 0 found, 1 no next key, -1 error. */
int map_next_key(struct map_spec *m, const void *key, void *next);
/* The possible CPUs (read_possible_cpus fills it). */
extern unsigned ncpus;
int read_possible_cpus(void);
int is_percpu(unsigned type);
int is_hash(unsigned type);
/* Writes m's `MAP` line and every key it holds with its value, as `bpf-maps` has
 * them (VAL, HVAL, PVAL lines); 0 on success. */
int write_map_truth(FILE *f, struct map_spec *m);
/* Lower-case hex of n bytes. */
void hex(FILE *f, const unsigned char *p, size_t n);

/* progs.c: programs, a PROG_ARRAY and an ARRAY_OF_MAPS; their maps' truth goes to f,
 * the programs' to section `bpf-progs` (see there). 0 on success. */
int progs_setup(FILE *f);

/* storage.c: local-storage maps; their MAP lines go to f, their elements to section
 * `bpf-storage` (see there). 0 on success. */
int storage_setup(FILE *f);
/* objmaps.c: BLOOM_FILTER and the maps whose slots hold kernel objects; their truth
 * goes to f (see there). 0 on success. */
int objmaps_setup(FILE *f);
/* ringbuf.c: a RINGBUF and a USER_RINGBUF; their MAP lines go to f, their positions
 * and records to section `bpf-ringbuf` (see there). 0 on success. */
int ringbuf_setup(FILE *f);

/* arena.c: an ARENA with a few pages written (guests without the in-guest mapwalk
 * whose pages are 4 KiB); its truth goes to section `bpf-arena` (see there). 0 on success. */
int arena_setup(void);

/* stack.c: a STACK_TRACE map filled by a raw-tracepoint program; its truth goes to f
 * (see there). 0 on success. */
int stack_setup(FILE *f);

/* structops.c: a STRUCT_OPS map registering a TCP congestion control; its truth goes
 * to f and to section `bpf-struct-ops` (see there). 0 on success. */
int structops_setup(FILE *f);
/* queue.c: a QUEUE and a STACK map moved through pushes and pops; their MAP lines go
 * to f, their elements in pop order to section `bpf-queues` (see there). 0 on
 * success. */
int queue_setup(FILE *f);

/* inguest.c: with /bin/mapwalk present, its live view of every map sent to the host;
 * nothing without it. 0 on success (the runs' own statuses are the host's to judge). */
int inguest_mapwalk(void);
/* churn.c: `mapwalk.churn=1` (see there). */
int churn_setup(void);
void churn_start(void);

#endif
