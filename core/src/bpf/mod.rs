//! BPF maps: discovery through `map_idr`, metadata, and value access.
//!
//! [`MapInfo`] is a map's metadata, the same for every source (memory, or the running
//! kernel's `bpf()`); its memory part holds the kernel addresses the walkers start from.
//! [`Bpf`] ties together the kernel memory, the layout and the address of `map_idr`.
//! [`Bpf::maps`] walks every map in id order; [`Bpf::map_by_id`], [`Bpf::find_by_name`]
//! and [`Bpf::find_by_suffix`] pick one. Values are read through per-type handles:
//! [`ArrayMap`] (ARRAY), [`PerCpuArrayMap`] (PERCPU_ARRAY) and [`HtabMap`] (HASH,
//! LRU_HASH, PERCPU_HASH, LRU_PERCPU_HASH). Per-CPU values are found through
//! [`PerCpuOffsets`]. [`Bpf::for_each_entry`] walks any of these types, picking the
//! handle by the map's type. [`Bpf::map_btf`] finds where a map's BTF lies.
//! [`ProgIdr::progs`] walks every program of `prog_idr` ([`ProgInfo`]).
//! [`Bpf::for_each_storage_elem`] walks a local-storage map with each element's owner
//! ([`storage`]). [`Bpf::for_each_arena_page`] walks the pages an ARENA has.
//! ([`storage`]). [`Bpf::for_each_stack`] walks a STACK_TRACE map's stored stacks.
//! [`Bpf::struct_ops_value`] reads a STRUCT_OPS map's struct as a lookup returns it.

mod arena;
mod array;
mod bloom;
mod btf;
#[cfg(test)]
mod churn_tests;
mod entries;
mod fdmaps;
mod flags;
mod htab;
mod lpm;
mod map;
mod maptype;
mod objmaps;
mod percpu;
mod prog;
mod progtype;
mod queue;
mod ringbuf;
mod stackmap;
#[cfg(test)]
mod stackmap_tests;
pub mod storage;
mod structops;
#[cfg(test)]
mod structops_tests;

pub use arena::{Arena, ARENA_FORM_VERSION, ARENA_GUARD_SZ, ARENA_PAGE_SIZE};
pub use array::ArrayMap;
pub use bloom::{
    bloom_bitset_mask, BloomFilter, BLOOM_FORM_VERSION, BLOOM_HEADER_LEN, BLOOM_MAX_HASH_FUNCS,
};
pub use btf::BtfObject;
pub use entries::{
    EntryBufferLens, EntryValue, PerCpuCopies, PerCpuCopiesIter, WALKABLE_MAP_TYPES,
};
pub use fdmaps::FD_MAP_TYPES;
pub use flags::MapFlags;
#[cfg(any(feature = "alloc", test))]
pub use htab::{HtabEntries, PerCpuHtabEntries};
pub use htab::{
    HtabEntry, HtabMap, HtabPos, HtabValue, HtabWalk, PptrDecision, PptrEvidence, PptrPlacement,
    ELEM_BUF, HEAD_BATCH_BYTES,
};
pub use lpm::{LPM_DATA_SIZE_MAX, LPM_MAX_DEPTH, LPM_TREE_NODE_FLAG_IM};
#[cfg(any(feature = "alloc", test))]
pub use map::MapList;
pub use map::{read_map_info, Bpf, MapInfo, MapName, Maps};
pub use maptype::{MapType, BPF_F_MMAPABLE};
pub use objmaps::{object_value_size, OBJECT_MAP_TYPES};
#[cfg(any(feature = "alloc", test))]
pub use percpu::PerCpuValue;
pub use percpu::{
    CpuCopy, PerCpuArrayEntry, PerCpuArrayMap, PerCpuArrayWalk, PerCpuOffsets, PossibleCpus,
};
#[cfg(any(feature = "alloc", test))]
pub use prog::ProgList;
pub use prog::{read_prog_id, read_prog_info, ProgIdr, ProgInfo, Progs, BPF_TAG_SIZE};
pub use progtype::ProgType;
pub use ringbuf::{
    Ringbuf, RingbufRecord, RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_FORM_VERSION,
    RINGBUF_HDR_SZ, RINGBUF_HEADER_LEN, RINGBUF_MAP_TYPES, RINGBUF_MAX_RECORDS,
};
pub use stackmap::stack_frame_size;
pub use storage::{StorageOwner, StorageWalkStats, STORAGE_MAP_TYPES};
pub use structops::{
    StructOpsProg, StructOpsState, STRUCT_OPS_STATE_INIT, STRUCT_OPS_STATE_INUSE,
    STRUCT_OPS_STATE_READY, STRUCT_OPS_STATE_TOBEFREE,
};
