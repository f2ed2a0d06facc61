//! One read-only view of a kernel's BPF maps, wherever the bytes come from.
//!
//! [`MapSource`] is what the renderer ([`crate::render`]) and the `mapwalk` CLI use: a
//! list of maps with their metadata ([`MapInfo`], the core's type, the same for every
//! source), each map's BTF, its entries (keys
//! and values, per-CPU values with their CPU numbers) and, for the few sources that
//! allow it, a bounded write into one value. Two implementations:
//!
//! - [`LiveSource`]: the running host, through `bpf()` ([`mapwalk_live`]);
//! - [`MemorySource`]: a kernel in a RAM image or a memory dump, through the
//!   [`mapwalk_core`] walkers over a described kernel ([`crate::describe::Kernel`]);
//! - [`SnapshotSource`]: a snapshot ([`crate::snapshot`]) of any of them.

mod live;
mod memory;
mod settle;
mod snapshot;
mod state;

use std::fmt;
use std::ops::ControlFlow;

use crate::btf::MapBtf;
pub use live::LiveSource;
pub use mapwalk_core::{MapInfo, MapType};
pub use mapwalk_live::ValueRef;
pub use memory::{GuestWrite, MemorySource};
pub use settle::Settle;
pub use snapshot::SnapshotSource;
pub use state::MapState;

/// Why a source could not do what was asked.
#[derive(Debug)]
pub enum SourceError {
    /// The live backend failed.
    Live(mapwalk_live::Error),
    /// A memory walker failed.
    Core(mapwalk_core::Error),
    /// No map matches the selector.
    NoSuchMap(String),
    /// Several maps match the selector.
    Ambiguous(String),
    /// The map's BTF could not be read or parsed.
    Btf(String),
    /// A write that does not fit in the value.
    OutOfBounds {
        /// The map's id.
        id: u32,
        /// The offset asked for.
        offset: u64,
        /// The bytes asked for.
        len: u64,
        /// The value's size.
        size: u32,
    },
    /// A key of the wrong size, or one that is not in the map.
    BadKey(String),
    /// An operation this source or map cannot do.
    Unsupported(String),
    /// The map changed under the read (a running guest) in a way that leaves no whole
    /// answer: more distinct keys than it can hold, or no two reads in a row that agree.
    Unstable(String),
    /// An error a snapshot recorded when it was taken, as it was shown then.
    Recorded(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Live(e) => write!(f, "{e}"),
            Self::Core(e) => write!(f, "{e}"),
            Self::NoSuchMap(s) => write!(f, "no map {s}"),
            Self::Ambiguous(s) => write!(f, "{s}"),
            Self::Btf(s) => write!(f, "map BTF: {s}"),
            Self::OutOfBounds {
                id,
                offset,
                len,
                size,
            } => write!(
                f,
                "write out of bounds: {len} bytes at offset {offset} do not fit in map {id}'s \
                 {size}-byte value; nothing was written"
            ),
            Self::BadKey(s) => write!(f, "{s}"),
            Self::Unsupported(s) => write!(f, "{s}"),
            Self::Unstable(s) => write!(f, "{s}"),
            Self::Recorded(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for SourceError {}

impl From<mapwalk_live::Error> for SourceError {
    fn from(e: mapwalk_live::Error) -> Self {
        Self::Live(e)
    }
}

impl From<mapwalk_core::Error> for SourceError {
    fn from(e: mapwalk_core::Error) -> Self {
        Self::Core(e)
    }
}

/// How the CLI names a map: `id:N`, an exact name, or a name suffix such as `.bss`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapSelector {
    /// `id:N`.
    Id(u32),
    /// A name, matched exactly first and as a suffix second.
    Name(String),
}

impl MapSelector {
    /// Parses `id:N` or a name.
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix("id:").map(str::trim).map(str::parse::<u32>) {
            Some(Ok(id)) => Self::Id(id),
            _ => Self::Name(s.to_owned()),
        }
    }
}

impl fmt::Display for MapSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => write!(f, "id:{id}"),
            Self::Name(n) => write!(f, "{n:?}"),
        }
    }
}

/// Every map a listing could read, and the ones it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapReport {
    /// The maps read, in id order.
    pub maps: Vec<MapInfo>,
    /// The maps that could not be read: their id when it is known, and why.
    pub errors: Vec<(Option<u32>, String)>,
}

/// The map types whose values [`MapSource::write`] can patch in place (plain data
/// under a key), unless the source says less.
pub const VALUE_MAP_TYPES: &[MapType] = &[
    MapType::ARRAY,
    MapType::HASH,
    MapType::LRU_HASH,
    MapType::PERCPU_ARRAY,
    MapType::PERCPU_HASH,
    MapType::LRU_PERCPU_HASH,
];

/// The callback of [`MapSource::for_each_entry`].
pub type EntryFn<'a> = dyn FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()> + 'a;

/// Read access (and bounded writes) to the BPF maps of one kernel.
pub trait MapSource {
    /// Every map, in id order.
    ///
    /// # Errors
    /// When the maps cannot be listed.
    fn maps(&self) -> Result<Vec<MapInfo>, SourceError>;

    /// Every map that could be read, with the ones that could not (which
    /// [`maps`](Self::maps) leaves out). The default: [`maps`](Self::maps), no errors.
    ///
    /// # Errors
    /// When the maps cannot be listed at all.
    fn maps_report(&self) -> Result<MapReport, SourceError> {
        Ok(MapReport {
            maps: self.maps()?,
            errors: Vec::new(),
        })
    }

    /// Every BPF program of the kernel, with the ones that could not be read (see
    /// [`crate::progs`]). The default: unsupported.
    ///
    /// # Errors
    /// When the programs cannot be listed at all.
    fn progs(&self) -> Result<crate::progs::ProgReport, SourceError> {
        Err(SourceError::Unsupported(
            "this source cannot list programs".into(),
        ))
    }

    /// Which kernel and boot this source reads; the default: unknown.
    fn kernel_identity(&self) -> crate::snapshot::KernelIdentity {
        crate::snapshot::KernelIdentity::default()
    }

    /// The kernel's symbols, to name the frames of STACK_TRACE maps
    /// ([`DumpWriter::stacks`](crate::render::DumpWriter::stacks)); the default: none.
    fn symbolizer(&self) -> Option<&crate::stack::KernelSymbolizer> {
        None
    }

    /// STRUCT_OPS `map`'s value decoded through the kernel's BTF, each function pointer
    /// with the program (id, name) behind it ([`crate::struct_ops`]), for a map that
    /// [`crate::struct_ops::decodable`] accepts; `Ok(None)` from a source that does not
    /// decode (the default).
    ///
    /// # Errors
    /// When the map, the kernel's BTF or the programs cannot be read, or the map is
    /// not one `decodable` accepts.
    fn struct_ops(
        &self,
        map: &MapInfo,
    ) -> Result<Option<crate::struct_ops::StructOps>, SourceError> {
        let _ = map;
        Ok(None)
    }

    /// Forgets what was cached of a memory that may have changed since (the
    /// translations of a running guest), before it is read again; the default: nothing.
    fn refresh(&self) {}

    /// What is known of `map` beyond its metadata (frozen, memory charged); the
    /// default: nothing.
    fn state(&self, map: &MapInfo) -> MapState {
        let _ = map;
        MapState::default()
    }

    /// The map with id `id`, or `None`.
    ///
    /// # Errors
    /// When it cannot be looked up.
    fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>, SourceError> {
        Ok(self.maps()?.into_iter().find(|m| m.id == id))
    }

    /// The map `sel` names: by id; else the one whose name is exactly it; else the one
    /// whose name ends with it. Several maps of the same name are an error.
    ///
    /// # Errors
    /// [`SourceError::NoSuchMap`], [`SourceError::Ambiguous`], or a listing error.
    fn find(&self, sel: &MapSelector) -> Result<MapInfo, SourceError> {
        let name = match sel {
            MapSelector::Id(id) => {
                return self
                    .map_by_id(*id)?
                    .ok_or_else(|| SourceError::NoSuchMap(sel.to_string()))
            }
            MapSelector::Name(n) => n.as_bytes(),
        };
        let maps = self.maps()?;
        let exact: Vec<&MapInfo> = maps.iter().filter(|m| m.name.as_bytes() == name).collect();
        let found = if exact.is_empty() {
            maps.iter()
                .filter(|m| m.name.as_bytes().ends_with(name))
                .collect()
        } else {
            exact
        };
        match found.as_slice() {
            [] => Err(SourceError::NoSuchMap(sel.to_string())),
            [one] => Ok(**one),
            many => Err(SourceError::Ambiguous(format!(
                "{} names {} maps (ids {}); pick one with id:N",
                sel,
                many.len(),
                many.iter()
                    .map(|m| m.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The BTF that describes `map`'s key and value type ids, or `None`.
    ///
    /// # Errors
    /// [`SourceError::Btf`] when the map has BTF that cannot be read or parsed.
    fn btf(&self, map: &MapInfo) -> Result<Option<MapBtf>, SourceError>;

    /// Calls `f` with every key and value of `map`; `f` may stop early.
    ///
    /// # Errors
    /// When the map cannot be walked (entries already handed to `f` stay valid).
    fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError>;

    /// Calls `f` with the value at `key`, as `bpftool map lookup` shows it; `Ok(false)`
    /// when the map has no entry there. The default walks the map to the key.
    ///
    /// # Errors
    /// [`SourceError::BadKey`] for a key of the wrong size; the walk's error.
    fn lookup(
        &self,
        map: &MapInfo,
        key: &[u8],
        f: &mut dyn FnMut(ValueRef<'_>),
    ) -> Result<bool, SourceError> {
        check_keyed(map)?;
        check_key(map, key)?;
        let mut found = false;
        self.for_each_entry(map, &mut |k, v| {
            if k == key {
                f(v);
                found = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        })?;
        Ok(found)
    }

    /// The key after `key` in the order this source walks `map`, as
    /// `BPF_MAP_GET_NEXT_KEY` answers: the first key when `key` is `None` or not in the
    /// map, `None` after the last one.
    ///
    /// # Errors
    /// [`SourceError::BadKey`] for a key of the wrong size; the walk's error.
    fn next_key(&self, map: &MapInfo, key: Option<&[u8]>) -> Result<Option<Vec<u8>>, SourceError> {
        check_keyed(map)?;
        if let Some(k) = key {
            check_key(map, k)?;
        }
        let (mut first, mut seen, mut next) = (None, false, None);
        self.for_each_entry(map, &mut |k, _| {
            if seen {
                next = Some(k.to_vec());
                return ControlFlow::Break(());
            }
            if first.is_none() {
                first = Some(k.to_vec());
            }
            seen = key == Some(k);
            ControlFlow::Continue(())
        })?;
        Ok(if seen { next } else { first })
    }

    /// Whether this source can write `map`'s values: [`SourceError::Unsupported`]
    /// naming the map's type when it cannot. The default: the types of
    /// [`VALUE_MAP_TYPES`].
    ///
    /// # Errors
    /// [`SourceError::Unsupported`].
    fn check_writable(&self, map: &MapInfo) -> Result<(), SourceError> {
        if VALUE_MAP_TYPES.contains(&map.map_type) {
            return Ok(());
        }
        Err(SourceError::Unsupported(format!(
            "map {} is of type {}: its values cannot be written (writes support {})",
            map.id,
            map.map_type,
            type_names(VALUE_MAP_TYPES)
        )))
    }

    /// Writes `data` at `offset` in the value at `key` (every CPU's copy of a per-CPU
    /// value). Refuses anything outside the value; never writes part of `data`.
    ///
    /// # Errors
    /// [`SourceError::OutOfBounds`], [`SourceError::BadKey`],
    /// [`SourceError::Unsupported`], or the backend's error.
    fn write(&self, map: &MapInfo, key: &[u8], offset: u64, data: &[u8])
        -> Result<(), SourceError>;
}

/// `array, hash and lru_hash`.
pub(crate) fn type_names(types: &[MapType]) -> String {
    let names: Vec<String> = types.iter().map(ToString::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Checks that `len` bytes at `offset` lie inside `map`'s value.
///
/// # Errors
/// [`SourceError::OutOfBounds`].
pub fn check_bounds(map: &MapInfo, offset: u64, len: usize) -> Result<(), SourceError> {
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    match offset.checked_add(len) {
        Some(end) if len > 0 && end <= u64::from(map.value_size) => Ok(()),
        _ => Err(SourceError::OutOfBounds {
            id: map.id,
            offset,
            len,
            size: map.value_size,
        }),
    }
}

/// Refuses key lookups in a local-storage map: its "key" is a file descriptor of the
/// owner in the caller's process, which means nothing to a reader from outside.
pub(crate) fn check_keyed(map: &MapInfo) -> Result<(), SourceError> {
    if mapwalk_core::bpf::STORAGE_MAP_TYPES.contains(&map.map_type) {
        return Err(SourceError::Unsupported(format!(
            "map {} is of type {}: local storage is looked up by a file descriptor of its \
             owner (a pidfd, socket, file or cgroup), not by a key; `dump` lists every \
             element with its owner (docs/local-storage.md)",
            map.id, map.map_type
        )));
    }
    Ok(())
}

pub(crate) fn check_key(map: &MapInfo, key: &[u8]) -> Result<(), SourceError> {
    if usize::try_from(map.key_size).ok() != Some(key.len()) {
        return Err(SourceError::BadKey(format!(
            "map {} has {}-byte keys; the key given has {} bytes",
            map.id,
            map.key_size,
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod ringbuf_tests;
#[cfg(test)]
mod settle_tests;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
#[path = "tests.rs"]
mod tests;
