//! A read-only view of a kernel's BPF maps that does not say where the bytes come from.
//!
//! Proposed for sharing with the guest-memory backends: the renderer and the CLI take a
//! `&impl MapSource` and never learn whether a map was read through `bpf()` or out of a
//! guest's RAM. It lives here until the other backends implement it.

use std::ops::ControlFlow;

use mapwalk_core::MapInfo;

use crate::btf::BtfObject;
use crate::dump::DumpOptions;
use crate::error::Error;
use crate::map::{self, LiveMap};
use crate::value::ValueRef;

/// Read-only access to the BPF maps of one kernel.
pub trait MapSource {
    /// A handle on one map (for the live backend it keeps the map alive).
    type Map;
    /// The backend's error.
    type Error: std::error::Error + 'static;

    /// Every map, in id order.
    ///
    /// # Errors
    /// When the maps cannot be listed at all.
    fn maps(&self) -> Result<Vec<Self::Map>, Self::Error>;

    /// What is known about `map`, in the core's terms (addresses are 0 where the
    /// backend has none).
    fn info(&self, map: &Self::Map) -> MapInfo;

    /// Calls `f` with every key and value of `map`; `f` may stop early.
    ///
    /// # Errors
    /// When the map cannot be walked; entries already handed to `f` stay valid.
    fn for_each_entry(
        &self,
        map: &Self::Map,
        f: &mut dyn FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), Self::Error>;

    /// The raw BTF that describes `map`'s key and value types, or `None`.
    ///
    /// # Errors
    /// When the map has BTF but it cannot be read.
    fn btf(&self, map: &Self::Map) -> Result<Option<BtfObject>, Self::Error>;
}

/// The live host's maps, through `bpf()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveSource {
    /// How dumps walk maps.
    pub dump: DumpOptions,
}

impl MapSource for LiveSource {
    type Map = LiveMap;
    type Error = Error;

    fn maps(&self) -> Result<Vec<LiveMap>, Error> {
        map::maps()
    }

    fn info(&self, map: &LiveMap) -> MapInfo {
        map.info().to_core()
    }

    fn for_each_entry(
        &self,
        map: &LiveMap,
        f: &mut dyn FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        map.for_each_entry(self.dump, f).map(|_| ())
    }

    fn btf(&self, map: &LiveMap) -> Result<Option<BtfObject>, Error> {
        map.btf()
    }
}
