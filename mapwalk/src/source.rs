//! One read-only view of a kernel's BPF maps, wherever the bytes come from.
//!
//! [`MapSource`] is what the renderer ([`crate::render`]) and the `mapwalk` CLI use: a
//! list of maps with their metadata ([`MapMeta`]), each map's BTF, its entries (keys
//! and values, per-CPU values with their CPU numbers) and, for the few sources that
//! allow it, a bounded write into one value. Two implementations:
//!
//! - [`LiveSource`]: the running host, through `bpf()` ([`mapwalk_live`]);
//! - [`MemorySource`]: a kernel in a RAM image or a memory dump, through the
//!   [`mapwalk_core`] walkers over a described kernel ([`crate::describe::Kernel`]).

use std::fmt;
use std::ops::ControlFlow;

use crate::btf::{BaseBtf, MapBtf};
use mapwalk_core::bpf::MapName;
use mapwalk_core::MapType;
pub use mapwalk_live::ValueRef;

/// What every source knows about one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapMeta {
    /// The map's id.
    pub id: u32,
    /// Its type.
    pub map_type: MapType,
    /// Its name.
    pub name: MapName,
    /// `map_flags`.
    pub flags: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// The id of its BTF object (live source only; 0 otherwise or when it has none).
    pub btf_id: u32,
    /// Whether the map has BTF at all.
    pub has_btf: bool,
    /// `btf_key_type_id`.
    pub btf_key_type_id: u32,
    /// `btf_value_type_id`.
    pub btf_value_type_id: u32,
    /// `btf_vmlinux_value_type_id`.
    pub btf_vmlinux_value_type_id: u32,
}

impl MapMeta {
    /// The metadata of a map read from memory.
    pub fn from_core(info: &mapwalk_core::MapInfo) -> Self {
        Self {
            id: info.id,
            map_type: info.map_type,
            name: info.name,
            flags: info.map_flags,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            // `btf->id` needs a read: `MemorySource` fills it in.
            btf_id: 0,
            has_btf: info.btf.0 != 0,
            btf_key_type_id: info.btf_key_type_id,
            btf_value_type_id: info.btf_value_type_id,
            btf_vmlinux_value_type_id: info.btf_vmlinux_value_type_id,
        }
    }

    /// The metadata of a live map.
    pub fn from_live(info: &mapwalk_live::LiveMapInfo) -> Self {
        Self {
            id: info.id,
            map_type: info.map_type,
            name: info.name,
            flags: info.map_flags,
            key_size: info.key_size,
            value_size: info.value_size,
            max_entries: info.max_entries,
            btf_id: info.btf_id,
            has_btf: info.btf_id != 0,
            btf_key_type_id: info.btf_key_type_id,
            btf_value_type_id: info.btf_value_type_id,
            btf_vmlinux_value_type_id: info.btf_vmlinux_value_type_id,
        }
    }

    /// The name as text (non-printable bytes escaped).
    pub fn name_string(&self) -> String {
        self.name.to_string()
    }
}

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

/// The callback of [`MapSource::for_each_entry`].
pub type EntryFn<'a> = dyn FnMut(&[u8], ValueRef<'_>) -> ControlFlow<()> + 'a;

/// Read access (and bounded writes) to the BPF maps of one kernel.
pub trait MapSource {
    /// Every map, in id order.
    ///
    /// # Errors
    /// When the maps cannot be listed.
    fn maps(&self) -> Result<Vec<MapMeta>, SourceError>;

    /// The map with id `id`, or `None`.
    ///
    /// # Errors
    /// When it cannot be looked up.
    fn map_by_id(&self, id: u32) -> Result<Option<MapMeta>, SourceError> {
        Ok(self.maps()?.into_iter().find(|m| m.id == id))
    }

    /// The map `sel` names: by id; else the one whose name is exactly it; else the one
    /// whose name ends with it. Several maps of the same name are an error.
    ///
    /// # Errors
    /// [`SourceError::NoSuchMap`], [`SourceError::Ambiguous`], or a listing error.
    fn find(&self, sel: &MapSelector) -> Result<MapMeta, SourceError> {
        let name = match sel {
            MapSelector::Id(id) => {
                return self
                    .map_by_id(*id)?
                    .ok_or_else(|| SourceError::NoSuchMap(sel.to_string()))
            }
            MapSelector::Name(n) => n.as_bytes(),
        };
        let maps = self.maps()?;
        let exact: Vec<&MapMeta> = maps.iter().filter(|m| m.name.as_bytes() == name).collect();
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
    fn btf(&self, map: &MapMeta) -> Result<Option<MapBtf>, SourceError>;

    /// Calls `f` with every key and value of `map`; `f` may stop early.
    ///
    /// # Errors
    /// When the map cannot be walked (entries already handed to `f` stay valid).
    fn for_each_entry(&self, map: &MapMeta, f: &mut EntryFn<'_>) -> Result<(), SourceError>;

    /// Writes `data` at `offset` in the value at `key` (every CPU's copy of a per-CPU
    /// value). Refuses anything outside the value; never writes part of `data`.
    ///
    /// # Errors
    /// [`SourceError::OutOfBounds`], [`SourceError::BadKey`],
    /// [`SourceError::Unsupported`], or the backend's error.
    fn write(&self, map: &MapMeta, key: &[u8], offset: u64, data: &[u8])
        -> Result<(), SourceError>;
}

/// Checks that `len` bytes at `offset` lie inside `map`'s value.
///
/// # Errors
/// [`SourceError::OutOfBounds`].
pub fn check_bounds(map: &MapMeta, offset: u64, len: usize) -> Result<(), SourceError> {
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

fn check_key(map: &MapMeta, key: &[u8]) -> Result<(), SourceError> {
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

// ---------------------------------------------------------------------------------------
// The live host.

/// The live host's maps, through `bpf()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveSource {
    /// How dumps walk maps.
    pub dump: mapwalk_live::DumpOptions,
}

impl LiveSource {
    fn open(&self, map: &MapMeta) -> Result<mapwalk_live::LiveMap, SourceError> {
        mapwalk_live::LiveMap::open(map.id)?
            .ok_or_else(|| SourceError::NoSuchMap(format!("id:{} (it went away)", map.id)))
    }
}

/// Parses program or module BTF, on top of vmlinux BTF when it is split.
fn parse_live_btf(obj: &mapwalk_live::BtfObject) -> Result<MapBtf, SourceError> {
    let standalone = if obj.kernel && obj.name != "vmlinux" {
        None
    } else {
        crate::btf::parse(&obj.bytes).ok()
    };
    if let Some(b) = standalone {
        return Ok(b);
    }
    let base = std::fs::read("/sys/kernel/btf/vmlinux")
        .map_err(|e| e.to_string())
        .and_then(|b| BaseBtf::new(b).map_err(|e| e.to_string()))
        .map_err(|e| SourceError::Btf(format!("/sys/kernel/btf/vmlinux: {e}")))?;
    MapBtf::split(obj.bytes.clone(), &base)
        .map_err(|e| SourceError::Btf(format!("BTF object {}: {e}", obj.id)))
}

impl MapSource for LiveSource {
    fn maps(&self) -> Result<Vec<MapMeta>, SourceError> {
        let mut out = Vec::new();
        for id in mapwalk_live::map_ids() {
            if let Some(m) = mapwalk_live::LiveMap::open(id?)? {
                out.push(MapMeta::from_live(m.info()));
            }
        }
        Ok(out)
    }

    fn map_by_id(&self, id: u32) -> Result<Option<MapMeta>, SourceError> {
        Ok(mapwalk_live::LiveMap::open(id)?.map(|m| MapMeta::from_live(m.info())))
    }

    fn btf(&self, map: &MapMeta) -> Result<Option<MapBtf>, SourceError> {
        if map.btf_id == 0 {
            return Ok(None);
        }
        match mapwalk_live::btf_by_id(map.btf_id)? {
            None => Ok(None),
            Some(obj) => parse_live_btf(&obj).map(Some),
        }
    }

    fn for_each_entry(&self, map: &MapMeta, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
        let live = self.open(map)?;
        live.for_each_entry(self.dump, f)?;
        Ok(())
    }

    fn write(
        &self,
        map: &MapMeta,
        key: &[u8],
        offset: u64,
        data: &[u8],
    ) -> Result<(), SourceError> {
        check_bounds(map, offset, data.len())?;
        check_key(map, key)?;
        let live = self.open(map)?;
        let current = live.lookup(key)?.ok_or_else(|| {
            SourceError::BadKey(format!(
                "map {} has no entry at key {}; nothing was written",
                map.id,
                crate::render::hex_spaced(key)
            ))
        })?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let patch = |v: &mut Vec<u8>| {
            if let Some(dst) = v.get_mut(start..start.saturating_add(data.len())) {
                dst.copy_from_slice(data);
            }
        };
        match current {
            mapwalk_live::Value::Single(mut v) => {
                patch(&mut v);
                live.update(key, &v, mapwalk_live::Update::Exist)?;
            }
            mapwalk_live::Value::PerCpu(copies) => {
                let mut values: Vec<Vec<u8>> = copies.into_iter().map(|c| c.bytes).collect();
                values.iter_mut().for_each(patch);
                let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                live.update_percpu(key, &refs, mapwalk_live::Update::Exist)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// A kernel in memory.

pub use memory::{GuestWrite, MemorySource};

mod memory {
    use super::*;
    use crate::describe::Kernel;
    use mapwalk_core::bpf::{Bpf, CpuCopy, PerCpuOffsets};
    use mapwalk_core::{KernelRead, KernelView, Kva, PhysRead};

    /// Largest program BTF read out of guest memory.
    const MAX_PROG_BTF: u64 = 64 << 20;

    /// Whether (and how) a memory backend can be written.
    pub trait GuestWrite: PhysRead + Sized {
        /// Writes `data` at `offset` in ARRAY `map`'s value at index `key`.
        ///
        /// # Errors
        /// [`SourceError::Unsupported`] for read-only memory; the walker's error.
        fn write_array(
            bpf: &Bpf<'_, KernelView<Self>>,
            map: &mapwalk_core::MapInfo,
            key: u32,
            offset: u64,
            data: &[u8],
        ) -> Result<(), SourceError>;
    }

    impl GuestWrite for mapwalk_file::RamFile {
        fn write_array(
            bpf: &Bpf<'_, KernelView<Self>>,
            map: &mapwalk_core::MapInfo,
            key: u32,
            offset: u64,
            data: &[u8],
        ) -> Result<(), SourceError> {
            if !bpf.mem().mem().is_writable() {
                return Err(SourceError::Unsupported(
                    "the RAM file was opened read-only".into(),
                ));
            }
            bpf.write_array_value(map, key, offset, data)?;
            Ok(())
        }
    }

    impl GuestWrite for mapwalk_file::ElfCore {
        fn write_array(
            _: &Bpf<'_, KernelView<Self>>,
            _: &mapwalk_core::MapInfo,
            _: u32,
            _: u64,
            _: &[u8],
        ) -> Result<(), SourceError> {
            Err(SourceError::Unsupported(
                "an ELF core is read-only; writes need --ram".into(),
            ))
        }
    }

    /// The maps of a kernel in guest memory.
    #[derive(Debug)]
    pub struct MemorySource<M> {
        kernel: Kernel<M>,
        offsets: Option<Result<PerCpuOffsets<Vec<u64>>, String>>,
    }

    impl<M: PhysRead> MemorySource<M> {
        /// The maps of a described kernel.
        pub fn new(kernel: Kernel<M>) -> Self {
            let offsets = kernel.per_cpu_offset.map(|pco| {
                let cpus = kernel
                    .possible_cpus()
                    .ok_or("no nr_cpu_ids symbol: the possible CPUs are unknown")?;
                PerCpuOffsets::read_vec(&kernel.view, pco, cpus).map_err(|e| e.to_string())
            });
            Self { kernel, offsets }
        }

        /// The described kernel.
        pub fn kernel(&self) -> &Kernel<M> {
            &self.kernel
        }

        fn bpf(&self) -> Bpf<'_, KernelView<M>> {
            Bpf::new(&self.kernel.view, &self.kernel.layout, self.kernel.map_idr)
        }

        fn info(&self, map: &MapMeta) -> Result<mapwalk_core::MapInfo, SourceError> {
            self.bpf()
                .map_by_id(map.id)?
                .ok_or_else(|| SourceError::NoSuchMap(format!("id:{}", map.id)))
        }

        fn offsets(&self) -> Result<&PerCpuOffsets<Vec<u64>>, SourceError> {
            match &self.offsets {
                Some(Ok(o)) => Ok(o),
                Some(Err(e)) => Err(SourceError::Unsupported(format!(
                    "per-CPU values: cannot read __per_cpu_offset: {e}"
                ))),
                None => Err(SourceError::Unsupported(
                    "per-CPU values: the kernel description has no __per_cpu_offset".into(),
                )),
            }
        }

        fn read_u64(&self, at: Kva) -> Result<u64, SourceError> {
            Ok(self.kernel.view.read_kernel_u64(at)?)
        }

        /// [`MapMeta::from_core`] plus the id of the map's `struct btf` (`btf->id`), as
        /// `BPF_OBJ_GET_INFO_BY_FD` reports it for a live map. When it cannot be read the
        /// id stays 0, with a warning (the map itself is still listed and dumped).
        fn meta(&self, info: &mapwalk_core::MapInfo) -> MapMeta {
            let mut meta = MapMeta::from_core(info);
            if info.btf.0 != 0 {
                let id = self.btf_object().and_then(|at| {
                    Ok(self
                        .kernel
                        .view
                        .read_kernel_u32(add(info.btf, u64::from(at.id))?)?)
                });
                match id {
                    Ok(id) => meta.btf_id = id,
                    Err(e) => eprintln!(
                        "mapwalk: warning: map {}: cannot read the id of its BTF: {e}",
                        info.id
                    ),
                }
            }
            meta
        }

        fn btf_object(&self) -> Result<crate::btf::BtfObjectLayout, SourceError> {
            self.kernel
                .btf_object
                .clone()
                .map_err(|e| SourceError::Btf(e.to_string()))
        }
    }

    fn add(at: Kva, off: u64) -> Result<Kva, SourceError> {
        at.checked_add(off)
            .ok_or(SourceError::Core(mapwalk_core::Error::AddrOverflow {
                addr: at.0,
                len: off,
            }))
    }

    fn values_of<'a>(
        stride: usize,
        size: usize,
        copies: &'a [u8],
        cpus: &'a [u32],
    ) -> ValueRef<'a> {
        ValueRef::per_cpu(copies, stride, size, cpus)
    }

    impl<M: PhysRead + GuestWrite> MapSource for MemorySource<M> {
        fn maps(&self) -> Result<Vec<MapMeta>, SourceError> {
            let list = self.bpf().collect_maps()?;
            if let Some((id, e)) = list.errors.first() {
                eprintln!(
                    "mapwalk: warning: {} map(s) could not be read (first: {}{e})",
                    list.errors.len(),
                    id.map(|i| format!("id {i}: ")).unwrap_or_default()
                );
            }
            Ok(list.maps.iter().map(|m| self.meta(m)).collect())
        }

        fn map_by_id(&self, id: u32) -> Result<Option<MapMeta>, SourceError> {
            Ok(self.bpf().map_by_id(id)?.as_ref().map(|m| self.meta(m)))
        }

        fn btf(&self, map: &MapMeta) -> Result<Option<MapBtf>, SourceError> {
            let info = self.info(map)?;
            if info.btf.0 == 0 {
                return Ok(None);
            }
            let at = self.btf_object()?;
            let data = self.read_u64(add(info.btf, at.data.into())?)?;
            let size_at = add(info.btf, at.data_size.into())?;
            let size = u64::from(self.kernel.view.read_kernel_u32(size_at)?);
            let base = self.read_u64(add(info.btf, at.base_btf.into())?)?;
            if size == 0 || size > MAX_PROG_BTF {
                return Err(SourceError::Btf(format!(
                    "map {}: struct btf says data_size {size}",
                    map.id
                )));
            }
            let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
            self.kernel.view.read_kernel(Kva(data), &mut bytes)?;
            let parsed = if base != 0 {
                let vmlinux = self
                    .kernel
                    .btf
                    .base()
                    .map_err(|e| SourceError::Btf(format!("map {}: base BTF: {e}", map.id)))?;
                MapBtf::split(bytes, vmlinux)
            } else {
                MapBtf::new(bytes)
            };
            parsed
                .map(Some)
                .map_err(|e| SourceError::Btf(format!("map {}: {e}", map.id)))
        }

        fn for_each_entry(&self, map: &MapMeta, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
            let info = self.info(map)?;
            let bpf = self.bpf();
            let mem = &self.kernel.view;
            let vsize = usize::try_from(info.value_size).unwrap_or(0);
            let stride = vsize.next_multiple_of(8);
            match info.map_type {
                MapType::ARRAY => {
                    let arr = bpf.array(&info)?;
                    let mut value = vec![0u8; vsize];
                    for key in 0..info.max_entries {
                        arr.read(mem, key, 0, &mut value)?;
                        if f(&key.to_le_bytes(), ValueRef::Single(&value)).is_break() {
                            break;
                        }
                    }
                }
                MapType::HASH | MapType::LRU_HASH => {
                    let h = bpf.htab(&info)?;
                    let mut key = vec![0u8; usize::try_from(info.key_size).unwrap_or(0)];
                    let mut value = vec![0u8; vsize];
                    let mut walk = h.walk(mem);
                    while let Some(item) = walk.next_into(&mut key, &mut value) {
                        item?;
                        if f(&key, ValueRef::Single(&value)).is_break() {
                            break;
                        }
                    }
                }
                MapType::PERCPU_ARRAY => {
                    let offsets = self.offsets()?;
                    let arr = bpf.percpu_array(&info)?;
                    let cpus: Vec<u32> = (0..offsets.possible()).collect();
                    let mut copies = vec![0u8; stride.saturating_mul(cpus.len())];
                    for item in arr.walk(mem) {
                        let e = item?;
                        for (&cpu, chunk) in cpus.iter().zip(copies.chunks_mut(stride.max(1))) {
                            let dst = chunk.get_mut(..vsize).unwrap_or_default();
                            if let CpuCopy::NoSuchCpu = offsets.read_copy(mem, e.pptr, cpu, dst)? {
                                dst.fill(0);
                            }
                        }
                        let key = e.key.to_le_bytes();
                        if f(&key, values_of(stride, vsize, &copies, &cpus)).is_break() {
                            break;
                        }
                    }
                }
                MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH => {
                    let offsets = self.offsets()?;
                    let h = bpf.percpu_htab(&info, offsets, None)?;
                    let cpus: Vec<u32> = (0..offsets.possible()).collect();
                    let mut key = vec![0u8; usize::try_from(info.key_size).unwrap_or(0)];
                    let mut copies = vec![0u8; stride.saturating_mul(cpus.len())];
                    let mut walk = h.walk(mem);
                    while let Some(item) = walk.next_into(&mut key, &mut []) {
                        let entry = item?;
                        for (&cpu, chunk) in cpus.iter().zip(copies.chunks_mut(stride.max(1))) {
                            let dst = chunk.get_mut(..vsize).unwrap_or_default();
                            if let CpuCopy::NoSuchCpu =
                                walk.copy_cpu_value(offsets, &entry, cpu, dst)?
                            {
                                dst.fill(0);
                            }
                        }
                        if f(&key, values_of(stride, vsize, &copies, &cpus)).is_break() {
                            break;
                        }
                    }
                }
                t => {
                    return Err(SourceError::Unsupported(format!(
                        "map {} of type {t}: dumps from memory support array, hash, lru_hash, \
                         percpu_array, percpu_hash and lru_percpu_hash",
                        map.id
                    )))
                }
            }
            Ok(())
        }

        fn write(
            &self,
            map: &MapMeta,
            key: &[u8],
            offset: u64,
            data: &[u8],
        ) -> Result<(), SourceError> {
            check_bounds(map, offset, data.len())?;
            check_key(map, key)?;
            let info = self.info(map)?;
            if info.map_type != MapType::ARRAY {
                return Err(SourceError::Unsupported(format!(
                    "map {} is a {}: writes to guest memory support ARRAY maps only",
                    map.id, info.map_type
                )));
            }
            let index = <[u8; 4]>::try_from(key)
                .map(u32::from_le_bytes)
                .map_err(|_| SourceError::BadKey("array keys are 4 bytes".into()))?;
            if index >= info.max_entries {
                return Err(SourceError::BadKey(format!(
                    "index {index} is past map {}'s {} entries; nothing was written",
                    map.id, info.max_entries
                )));
            }
            M::write_array(&self.bpf(), &info, index, offset, data)
        }
    }
}
