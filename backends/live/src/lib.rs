#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]

mod btf;
pub mod cpus;
pub mod dump;
pub mod error;
mod map;
pub mod mmap;
pub mod sys;
mod value;

pub use btf::{btf_by_id, BtfObject};
pub use cpus::HostCpus;
pub use dump::{Dump, DumpMode, DumpOptions, DumpStats, Walk};
pub use error::{Errno, Error, Result};
pub use map::{map_ids, maps, LiveMap, MapIds, Update};
pub use mapwalk_core::{Kva, MapFlags, MapInfo, MapType};
pub use mmap::{ArenaAddr, ArenaView, MmapArray, Record, RingbufSnapshot, RingbufView};
pub use value::{CpuValue, Entry, PerCpuRef, Value, ValueRef};
