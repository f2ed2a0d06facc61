//! BPF maps: discovery through `map_idr`, metadata, and value access.

mod maptype;

pub use maptype::{MapType, BPF_F_MMAPABLE};

/// Placeholder until the map walker lands.
#[derive(Debug)]
pub struct MapInfo;
/// Placeholder.
#[derive(Debug)]
pub struct Bpf;
