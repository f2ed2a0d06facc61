//! Synthetic guests: page tables, xarrays and BPF map objects laid into a byte buffer.
//!
//! The core's own tests, the fuzz targets and the benchmarks walk guests built here, and
//! so can your tests: enable the `synth` feature. A builder works on data its caller
//! chose, so it panics on misuse (a full buffer, an address outside it); the walkers it
//! feeds never panic.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::as_conversions,
    reason = "a test-data builder: its inputs are the caller's own, and misuse should fail loudly"
)]

mod pgtable;
mod ram;
mod xarray;

pub use pgtable::{Aarch64PageTables, X86PageTables};
pub use ram::SynthRam;
pub use xarray::{
    alloc_xa_node, build_xarray, build_xarray_with_nodes, xa_node_entry, xa_node_size, SynthXaNode,
    SynthXarray, KERNEL_XARRAY_LAYOUT, XA_NODE_ALIGN, XA_NODE_SIZE,
};

mod guest;

pub use guest::{
    default_layout, BuiltElem, BuiltHtab, BuiltMap, BuiltObject, BuiltProg, BuiltStorage,
    BuiltStorageElem, EntrySpec, GuestBuilder, MapSpec, Placement, ProgSpec, RingSpec, SlotObject,
    StorageElemSpec, StructOpsSpec, SynthArch, SynthSymbols, SyntheticGuest,
};

mod changing;
mod faulty;

pub use changing::{Change, ChangingRam};
pub use faulty::FaultyMem;
