//! BPF maps: discovery through `map_idr`, metadata, and value access.
//!
//! [`Bpf`] ties together the kernel memory, the layout and the address of `map_idr`.
//! [`Bpf::maps`] walks every map in id order; [`Bpf::map_by_id`], [`Bpf::find_by_name`]
//! and [`Bpf::find_by_suffix`] pick one. Values are read through per-type handles such
//! as [`ArrayMap`].

mod array;
mod map;
mod maptype;

pub use array::ArrayMap;
#[cfg(feature = "alloc")]
pub use map::MapList;
pub use map::{read_map_info, Bpf, MapInfo, MapName, Maps};
pub use maptype::{MapType, BPF_F_MMAPABLE};
