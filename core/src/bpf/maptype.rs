//! `enum bpf_map_type` as an open set.

use core::fmt;

/// A BPF map type (`enum bpf_map_type`).
///
/// An open newtype rather than a Rust enum: a kernel newer than this crate may have map
/// types it does not know, and those are data to report, not a parse failure.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MapType(pub u32);

macro_rules! map_types {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $text:expr;)*) => {
        impl MapType {
            $($(#[$doc])* pub const $name: Self = Self($value);)*

            /// The name `bpftool` prints for this type (`"hash"`, `"array"`, ...), or `None`
            /// for a type this crate does not know.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

map_types! {
    /// `BPF_MAP_TYPE_UNSPEC`.
    UNSPEC = 0, "unspec";
    /// `BPF_MAP_TYPE_HASH`.
    HASH = 1, "hash";
    /// `BPF_MAP_TYPE_ARRAY`.
    ARRAY = 2, "array";
    /// `BPF_MAP_TYPE_PROG_ARRAY`.
    PROG_ARRAY = 3, "prog_array";
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY`.
    PERF_EVENT_ARRAY = 4, "perf_event_array";
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PERCPU_HASH = 5, "percpu_hash";
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PERCPU_ARRAY = 6, "percpu_array";
    /// `BPF_MAP_TYPE_STACK_TRACE`.
    STACK_TRACE = 7, "stack_trace";
    /// `BPF_MAP_TYPE_CGROUP_ARRAY`.
    CGROUP_ARRAY = 8, "cgroup_array";
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LRU_HASH = 9, "lru_hash";
    /// `BPF_MAP_TYPE_LRU_PERCPU_HASH`.
    LRU_PERCPU_HASH = 10, "lru_percpu_hash";
    /// `BPF_MAP_TYPE_LPM_TRIE`.
    LPM_TRIE = 11, "lpm_trie";
    /// `BPF_MAP_TYPE_ARRAY_OF_MAPS`.
    ARRAY_OF_MAPS = 12, "array_of_maps";
    /// `BPF_MAP_TYPE_HASH_OF_MAPS`.
    HASH_OF_MAPS = 13, "hash_of_maps";
    /// `BPF_MAP_TYPE_DEVMAP`.
    DEVMAP = 14, "devmap";
    /// `BPF_MAP_TYPE_SOCKMAP`.
    SOCKMAP = 15, "sockmap";
    /// `BPF_MAP_TYPE_CPUMAP`.
    CPUMAP = 16, "cpumap";
    /// `BPF_MAP_TYPE_XSKMAP`.
    XSKMAP = 17, "xskmap";
    /// `BPF_MAP_TYPE_SOCKHASH`.
    SOCKHASH = 18, "sockhash";
    /// `BPF_MAP_TYPE_CGROUP_STORAGE`.
    CGROUP_STORAGE = 19, "cgroup_storage";
    /// `BPF_MAP_TYPE_REUSEPORT_SOCKARRAY`.
    REUSEPORT_SOCKARRAY = 20, "reuseport_sockarray";
    /// `BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE`.
    PERCPU_CGROUP_STORAGE = 21, "percpu_cgroup_storage";
    /// `BPF_MAP_TYPE_QUEUE`.
    QUEUE = 22, "queue";
    /// `BPF_MAP_TYPE_STACK`.
    STACK = 23, "stack";
    /// `BPF_MAP_TYPE_SK_STORAGE`.
    SK_STORAGE = 24, "sk_storage";
    /// `BPF_MAP_TYPE_DEVMAP_HASH`.
    DEVMAP_HASH = 25, "devmap_hash";
    /// `BPF_MAP_TYPE_STRUCT_OPS`.
    STRUCT_OPS = 26, "struct_ops";
    /// `BPF_MAP_TYPE_RINGBUF`.
    RINGBUF = 27, "ringbuf";
    /// `BPF_MAP_TYPE_INODE_STORAGE`.
    INODE_STORAGE = 28, "inode_storage";
    /// `BPF_MAP_TYPE_TASK_STORAGE`.
    TASK_STORAGE = 29, "task_storage";
    /// `BPF_MAP_TYPE_BLOOM_FILTER`.
    BLOOM_FILTER = 30, "bloom_filter";
    /// `BPF_MAP_TYPE_USER_RINGBUF`.
    USER_RINGBUF = 31, "user_ringbuf";
    /// `BPF_MAP_TYPE_CGRP_STORAGE`.
    CGRP_STORAGE = 32, "cgrp_storage";
    /// `BPF_MAP_TYPE_ARENA`.
    ARENA = 33, "arena";
}

impl MapType {
    /// Whether values of this type are stored once per possible CPU.
    pub const fn is_percpu(self) -> bool {
        matches!(self.0, 5 | 6 | 10 | 21)
    }
}

impl fmt::Debug for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "MapType({n})"),
            None => write!(f, "MapType({:#x})", self.0),
        }
    }
}

impl fmt::Display for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.pad(n),
            None => write!(f, "MapType({:#x})", self.0),
        }
    }
}

/// `BPF_F_MMAPABLE`: an ARRAY whose values can be mmap'd (and are page-aligned).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn names_and_unknowns() {
        assert_eq!(MapType::HASH.name(), Some("hash"));
        assert_eq!(MapType(6).name(), Some("percpu_array"));
        assert_eq!(MapType(999).name(), None);
        assert_eq!(format!("{}", MapType(0x2a)), "MapType(0x2a)");
        assert_eq!(format!("{}", MapType::LRU_PERCPU_HASH), "lru_percpu_hash");
        assert!(MapType::PERCPU_ARRAY.is_percpu());
        assert!(!MapType::ARRAY.is_percpu());
    }
}
