//! Caps on every walk over guest data.
//!
//! Guest memory is hostile: a corrupt or malicious guest can build cycles, absurd sizes
//! and endless chains. Every loop that follows guest data counts against a cap named
//! here; crossing it gives [`crate::Error::LimitExceeded`], never a silent truncation.
//!
//! Structural caps that follow from the hardware or the kernel's data structures are
//! constants. Caps that a user with an unusual guest may need to raise are fields of
//! [`Limits`], with generous defaults.

/// Page-table levels a walk may descend (x86_64 5-level; aarch64 with 52-bit VAs).
pub const MAX_PT_LEVELS: u32 = 5;

/// Depth of an xarray: a 64-bit index consumed six bits per level.
pub const MAX_XA_DEPTH: usize = 11;

/// Times one xarray walk may start again from the root because the tree changed under
/// it (a running guest creating or destroying maps); see
/// [`XaWalk`](crate::walk::xarray::XaWalk). One more is [`crate::Error::Unstable`].
pub const XA_WALK_RESTARTS: u32 = 16;

/// Slots in one xarray node (`XA_CHUNK_SIZE`).
pub const XA_CHUNK_SIZE: usize = 64;

/// Bits of index consumed by one xarray level (`XA_CHUNK_SHIFT`).
pub const XA_CHUNK_SHIFT: u8 = 6;

/// Length of a BPF object name, terminator included (`BPF_OBJ_NAME_LEN`).
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// Maps one program may use (`MAX_USED_MAPS`): a larger `used_map_cnt` is corrupt.
pub const MAX_USED_MAPS: usize = 64;

/// Subprograms of one program whose JIT sizes are added up (`BPF_MAX_SUBPROGS`): a
/// larger `func_cnt` is corrupt.
pub const MAX_SUBPROGS: u32 = 256;

/// Largest `struct bpf_map` header the discovery reads in one piece.
pub const MAX_MAP_HEADER: usize = 1024;

/// Largest possible-CPU count (`NR_CPUS` of the biggest kernel configurations).
pub const MAX_CPUS: u32 = 8192;

/// Largest per-CPU value, `round_up(value_size, 8)`, of a per-CPU map
/// (`PCPU_MIN_UNIT_SIZE`: the kernel refuses bigger ones).
pub const PCPU_MIN_UNIT_SIZE: u32 = 32 << 10;

/// Largest `max_entries` of an array map (the kernel refuses more than `1 << 31`).
pub const MAX_ARRAY_ENTRIES: u32 = 1 << 31;

/// Buckets of a STACK_TRACE map (`roundup_pow_of_two(max_entries)`; the kernel refuses
/// more than `U32_MAX / 2 + 1`): a larger `n_buckets` is corrupt.
pub const MAX_STACK_BUCKETS: u32 = 1 << 31;

/// Function pointers of one STRUCT_OPS struct (the kernel's
/// `BPF_STRUCT_OPS_MAX_NR_MEMBERS`: a struct with more members is refused): the most
/// slots of a map's `links[]`.
pub const MAX_STRUCT_OPS_FUNCS: u32 = 64;

/// Size of one frame of a `BPF_F_STACK_BUILD_ID` STACK_TRACE map
/// (`sizeof(struct bpf_stack_build_id)`); a plain map's frame is one u64.
pub const STACK_BUILD_ID_FRAME: u32 = 32;

/// Elements a hash walk may visit beyond the map's `max_entries`: each CPU can be midway
/// through an update that holds one element more than the map's capacity (the new
/// element is linked before the old one is unlinked, and the fullness check races).
/// A walk visiting `max_entries + HTAB_EXTRA_ELEMS` elements ends with
/// [`crate::Error::LimitExceeded`].
pub const HTAB_EXTRA_ELEMS: u32 = MAX_CPUS;

/// Elements of one hash bucket a walk remembers having yielded, so that reading the
/// bucket again (it changed under the walk) does not yield them twice. A bucket that
/// must be read again after yielding more is reported as
/// [`crate::Error::Unstable`]. Real chains hold one or two elements
/// (`n_buckets >= max_entries`).
pub const HTAB_REREAD_SEEN: usize = 64;

/// Elements of a per-CPU hash map looked at to decide where its elements hold their
/// per-CPU pointer (see [`crate::bpf::PptrPlacement`]).
pub const PPTR_PROBE_ELEMS: usize = 8;

/// Largest `data_size` of a map's `struct btf` (64 MiB: a vmlinux BTF is a few MiB,
/// a program's far less). A bigger one is refused before anything is read.
pub const MAX_BTF_DATA_SIZE: u32 = 64 << 20;

/// Largest `bucket_log` of a local-storage map: the kernel gives it
/// `roundup_pow_of_two(num_possible_cpus())` buckets (at least 2), so at most
/// [`MAX_CPUS`] = `1 << 13`. A bigger one is refused before any bucket is read.
pub const STORAGE_MAX_BUCKET_LOG: u32 = 13;

/// Largest `value_size` of a local-storage map (`BPF_LOCAL_STORAGE_MAX_VALUE_SIZE` is
/// below `U16_MAX`).
pub const STORAGE_MAX_VALUE_SIZE: u32 = 0xffff;

/// Elements of one local-storage bucket a walk remembers having handed over, so that
/// reading the bucket again (it changed under the walk) does not hand them over twice.
/// A bucket that must be read again after more is [`crate::Error::Unstable`].
pub const STORAGE_REREAD_SEEN: usize = 64;

/// Longest cgroup name read (`NAME_MAX`: a cgroup is a directory of cgroupfs).
pub const CGROUP_NAME_MAX: usize = 255;

/// Pages of the largest ARENA (`max_entries`): the kernel's 4 GiB in 4 KiB pages.
pub const ARENA_MAX_PAGES: u32 = 1 << 20;

/// Caps a user may raise. The defaults suit any real kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Xarray nodes visited by one walk (default 65,536: a million ids need ~16,400).
    pub xa_nodes: u32,
    /// Maps yielded by one discovery walk (default 1,048,576).
    pub maps: u32,
    /// Programs yielded by one walk of `prog_idr` (default 1,048,576).
    pub progs: u32,
    /// Largest value an allocating reader copies in one piece (default 256 MiB).
    pub value_size: u64,
    /// Buckets of one hash map (default 2^28); a map with more is refused before its
    /// bucket array is read.
    pub htab_buckets: u32,
    /// Elements of one hash bucket's chain (default 65,536); the element past it is an
    /// error for that bucket, and the walk goes on with the next one.
    pub bucket_chain: u32,
    /// Reads of one hash bucket when its chain changes under the walk (default 16): a
    /// running kernel moves elements between buckets and frees them while they are
    /// read, and the walk reads such a bucket again, as the kernel's own lockless
    /// lookups do. A bucket still changing after this many reads is an
    /// [`crate::Error::Unstable`] error for that bucket; the walk goes on.
    pub bucket_reads: u32,
    /// Elements one walk of a local-storage map visits (default 2^24), re-reads of a
    /// bucket included. Local-storage maps have no `max_entries` (it is 0): each owner
    /// holds at most one element of a map, so this bounds the owners, and ends any
    /// cycle the back links did not catch.
    pub storage_elems: u32,
    /// Pages of one ARENA the page walk looks at (default 2^20, a whole 4 GiB arena):
    /// each present page, and each absent stretch skipped at once, counts one.
    pub arena_pages: u32,
    /// Bytes of present ARENA pages one walk hands over (default 64 MiB, 16,384
    /// pages): an arena can hold 4 GiB, and a walk that would hand more ends with
    /// [`crate::Error::LimitExceeded`] before the page past the cap.
    pub arena_bytes: u64,
}

impl Limits {
    /// The default caps.
    pub const DEFAULT: Self = Self {
        xa_nodes: 1 << 16,
        maps: 1 << 20,
        progs: 1 << 20,
        value_size: 256 << 20,
        htab_buckets: 1 << 28,
        bucket_chain: 1 << 16,
        bucket_reads: 16,
        storage_elems: 1 << 24,
        arena_pages: 1 << 20,
        arena_bytes: 64 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
