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

/// Slots in one xarray node (`XA_CHUNK_SIZE`).
pub const XA_CHUNK_SIZE: usize = 64;

/// Bits of index consumed by one xarray level (`XA_CHUNK_SHIFT`).
pub const XA_CHUNK_SHIFT: u8 = 6;

/// Length of a BPF object name, terminator included (`BPF_OBJ_NAME_LEN`).
pub const BPF_OBJ_NAME_LEN: usize = 16;

/// Largest `struct bpf_map` header the discovery reads in one piece.
pub const MAX_MAP_HEADER: usize = 1024;

/// Largest possible-CPU count (`NR_CPUS` of the biggest kernel configurations).
pub const MAX_CPUS: u32 = 8192;

/// Caps a user may raise. The defaults suit any real kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Xarray nodes visited by one walk (default 65,536: a million ids need ~16,400).
    pub xa_nodes: u32,
    /// Maps yielded by one discovery walk (default 1,048,576).
    pub maps: u32,
    /// Largest value an allocating reader copies in one piece (default 256 MiB).
    pub value_size: u64,
    /// Buckets of one hash map (default 2^28).
    pub htab_buckets: u32,
    /// Elements of one hash bucket's chain (default 65,536).
    pub bucket_chain: u32,
}

impl Limits {
    /// The default caps.
    pub const DEFAULT: Self = Self {
        xa_nodes: 1 << 16,
        maps: 1 << 20,
        value_size: 256 << 20,
        htab_buckets: 1 << 28,
        bucket_chain: 1 << 16,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
