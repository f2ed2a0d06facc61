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
//!   [`mapwalk_core`] walkers over a described kernel ([`crate::describe::Kernel`]).

use std::fmt;
use std::ops::ControlFlow;

use crate::btf::{BaseBtf, MapBtf};
pub use mapwalk_core::MapInfo;
use mapwalk_core::MapType;
pub use mapwalk_live::ValueRef;

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
    fn maps(&self) -> Result<Vec<MapInfo>, SourceError>;

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

    /// Writes `data` at `offset` in the value at `key` (every CPU's copy of a per-CPU
    /// value). Refuses anything outside the value; never writes part of `data`.
    ///
    /// # Errors
    /// [`SourceError::OutOfBounds`], [`SourceError::BadKey`],
    /// [`SourceError::Unsupported`], or the backend's error.
    fn write(&self, map: &MapInfo, key: &[u8], offset: u64, data: &[u8])
        -> Result<(), SourceError>;
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

fn check_key(map: &MapInfo, key: &[u8]) -> Result<(), SourceError> {
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
    fn open(&self, map: &MapInfo) -> Result<mapwalk_live::LiveMap, SourceError> {
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
    fn maps(&self) -> Result<Vec<MapInfo>, SourceError> {
        let mut out = Vec::new();
        for id in mapwalk_live::map_ids() {
            if let Some(m) = mapwalk_live::LiveMap::open(id?)? {
                out.push(*m.info());
            }
        }
        Ok(out)
    }

    fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>, SourceError> {
        Ok(mapwalk_live::LiveMap::open(id)?.map(|m| *m.info()))
    }

    fn btf(&self, map: &MapInfo) -> Result<Option<MapBtf>, SourceError> {
        if map.btf_id == 0 {
            return Ok(None);
        }
        match mapwalk_live::btf_by_id(map.btf_id)? {
            None => Ok(None),
            Some(obj) => parse_live_btf(&obj).map(Some),
        }
    }

    fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
        let live = self.open(map)?;
        live.for_each_entry(self.dump, f)?;
        Ok(())
    }

    fn write(
        &self,
        map: &MapInfo,
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
    use mapwalk_core::bpf::{Bpf, EntryValue, PerCpuOffsets, WALKABLE_MAP_TYPES};
    use mapwalk_core::{KernelView, PhysRead};

    /// Whether (and how) a memory backend can be written.
    pub trait GuestWrite: PhysRead + Sized {
        /// Writes `data` at `offset` in ARRAY `map`'s value at index `key`.
        ///
        /// # Errors
        /// [`SourceError::Unsupported`] for read-only memory; the walker's error.
        fn write_array(
            bpf: &Bpf<'_, KernelView<Self>>,
            map: &MapInfo,
            key: u32,
            offset: u64,
            data: &[u8],
        ) -> Result<(), SourceError>;
    }

    impl GuestWrite for mapwalk_file::RamFile {
        fn write_array(
            bpf: &Bpf<'_, KernelView<Self>>,
            map: &MapInfo,
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
            _: &MapInfo,
            _: u32,
            _: u64,
            _: &[u8],
        ) -> Result<(), SourceError> {
            Err(SourceError::Unsupported(
                "an ELF core is read-only; writes need --ram".into(),
            ))
        }
    }

    impl GuestWrite for mapwalk_kvm::GuestRam {
        fn write_array(
            bpf: &Bpf<'_, KernelView<Self>>,
            map: &MapInfo,
            key: u32,
            offset: u64,
            data: &[u8],
        ) -> Result<(), SourceError> {
            if !bpf.mem().mem().is_writable() {
                return Err(SourceError::Unsupported(
                    "the guest RAM was mapped read-only".into(),
                ));
            }
            bpf.write_array_value(map, key, offset, data)?;
            Ok(())
        }
    }

    #[cfg(feature = "vm-memory")]
    impl<G: vm_memory::GuestMemoryBackend + ?Sized> GuestWrite
        for mapwalk_kvm::vm_memory::VmMemory<'_, G>
    {
        fn write_array(
            bpf: &Bpf<'_, KernelView<Self>>,
            map: &MapInfo,
            key: u32,
            offset: u64,
            data: &[u8],
        ) -> Result<(), SourceError> {
            bpf.write_array_value(map, key, offset, data)?;
            Ok(())
        }
    }

    impl GuestWrite for mapwalk_kvm::ProcessRam {
        fn write_array(
            _: &Bpf<'_, KernelView<Self>>,
            _: &MapInfo,
            _: u32,
            _: u64,
            _: &[u8],
        ) -> Result<(), SourceError> {
            Err(SourceError::Unsupported(
                "a VMM process read from outside is read-only; writes need --ram".into(),
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

        /// Forgets every cached translation, so the next walk sees the guest's page
        /// tables as they are now. Call it once per pause of a running guest: the
        /// description (symbols, layout, placement) stays valid for the whole boot; the
        /// page tables do not.
        pub fn refresh(&self) {
            self.kernel.view.invalidate();
        }

        fn bpf(&self) -> Bpf<'_, KernelView<M>> {
            Bpf::new(&self.kernel.view, &self.kernel.layout, self.kernel.map_idr)
        }

        fn info(&self, map: &MapInfo) -> Result<MapInfo, SourceError> {
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
    }

    impl<M: PhysRead + GuestWrite> MapSource for MemorySource<M> {
        fn maps(&self) -> Result<Vec<MapInfo>, SourceError> {
            let list = self.bpf().collect_maps()?;
            if let Some((id, e)) = list.errors.first() {
                eprintln!(
                    "mapwalk: warning: {} map(s) could not be read (first: {}{e})",
                    list.errors.len(),
                    id.map(|i| format!("id {i}: ")).unwrap_or_default()
                );
            }
            Ok(list.maps)
        }

        fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>, SourceError> {
            Ok(self.bpf().map_by_id(id)?)
        }

        fn btf(&self, map: &MapInfo) -> Result<Option<MapBtf>, SourceError> {
            let info = self.info(map)?;
            let btf_err = |e: mapwalk_core::Error| SourceError::Btf(format!("map {}: {e}", map.id));
            let Some(obj) = self.bpf().map_btf(&info).map_err(btf_err)? else {
                return Ok(None);
            };
            let bytes = obj.to_vec(&self.kernel.view).map_err(btf_err)?;
            let parsed = if obj.is_split() {
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

        fn for_each_entry(&self, map: &MapInfo, f: &mut EntryFn<'_>) -> Result<(), SourceError> {
            let info = self.info(map)?;
            let bpf = self.bpf();
            let offsets =
                if info.map_type.is_percpu() && WALKABLE_MAP_TYPES.contains(&info.map_type) {
                    Some(self.offsets()?)
                } else {
                    None
                };
            let possible = offsets.map_or(0, |o| o.possible());
            let unsupported = |e| match e {
                e @ mapwalk_core::Error::UnsupportedMapType { .. } => {
                    SourceError::Unsupported(e.to_string())
                }
                e => SourceError::Core(e),
            };
            let lens = bpf
                .entry_buffer_lens(&info, possible)
                .map_err(unsupported)?;
            let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
            let cpus: Vec<u32> = (0..possible).collect();
            bpf.for_each_entry(&info, offsets, &mut key, &mut value, |k, v| match v {
                EntryValue::Single(v) => f(k, ValueRef::Single(v)),
                EntryValue::PerCpu(c) => f(
                    k,
                    ValueRef::per_cpu(c.as_bytes(), c.stride(), c.value_size(), &cpus),
                ),
            })
            .map_err(unsupported)?;
            Ok(())
        }

        fn write(
            &self,
            map: &MapInfo,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::describe::{Kernel, Symbols};
    use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
    use mapwalk_core::{KernelView, Kva, MapFlags, Pa};
    use mapwalk_file::RamFile;

    /// A RAM file holding `g`'s memory, removed when dropped.
    struct RamImage(std::path::PathBuf);

    impl RamImage {
        fn new(g: &SyntheticGuest, name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("mapwalk-source-{}-{name}", std::process::id()));
            assert_eq!(g.ram.base(), Pa(0), "an identity-layout RAM file");
            std::fs::write(&path, g.ram.bytes()).unwrap();
            Self(path)
        }
    }

    impl Drop for RamImage {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A guest with one map of each walkable type, a ring buffer, and an array with
    /// split BTF (id 42) describing its `u64` values.
    fn guest() -> (SyntheticGuest, Vec<u8>) {
        let mut b = GuestBuilder::x86_64(false).possible_cpus(2);
        b.add_map(
            MapSpec::array(1, "arr", 8, 3).with_values(|k| u64::from(k + 5).to_le_bytes().to_vec()),
        )
        .add_map(MapSpec::hash(2, "hash", 4, 4, 8).entry(b"abcd", b"wxyz"))
        .add_map(
            MapSpec::new(3, MapType::PERCPU_ARRAY, "parr", 4, 4, 2)
                .with_cpu_values(2, |k, cpu| vec![k as u8, cpu as u8, 0, 9]),
        )
        .add_map(
            MapSpec::new(4, MapType::LRU_PERCPU_HASH, "phash", 8, 4, 4)
                .percpu_entry(&[3; 8], vec![vec![1; 4], vec![2; 4]]),
        )
        .add_map(MapSpec::new(5, MapType::RINGBUF, "rb", 0, 0, 4096))
        .add_map({
            let mut s = MapSpec::array(6, "typed", 8, 1).mmapable();
            s.btf_ids = (1, 1);
            s
        });
        let mut g = b.build();
        let mut raw = crate::btf::testing::Builder::new();
        raw.int("u64", 8);
        let raw = raw.bytes();
        // The map's `struct btf`, standalone (base_btf NULL), in free RAM.
        let l = g.layout.btf_object.unwrap();
        let dm = g.addrs.direct_map.unwrap().virt.0;
        let obj = g.ram.alloc(256, 64);
        let data = g.ram.alloc(raw.len() as u64, 8);
        g.ram.write(data, &raw);
        g.ram.write_u64(Pa(obj.0 + u64::from(l.data)), dm + data.0);
        g.ram
            .write_u32(Pa(obj.0 + u64::from(l.data_size)), raw.len() as u32);
        g.ram.write_u32(Pa(obj.0 + u64::from(l.id)), 42);
        let typed = g.maps.iter().find(|m| m.id == 6).unwrap().kva;
        let field = g.pa_of(Kva(typed.0 + u64::from(g.layout.bpf_map.btf)));
        g.ram.write_u64(field, dm + obj.0);
        (g, raw)
    }

    fn source(g: &SyntheticGuest, ram: &RamImage, per_cpu: bool) -> MemorySource<RamFile> {
        let file = RamFile::options().writable(true).open(&ram.0).unwrap();
        MemorySource::new(Kernel {
            view: KernelView::new(file, g.paging, g.addrs),
            layout: g.layout,
            btf: crate::btf::KernelBtf::new(Vec::new()),
            symbols: Symbols::default(),
            map_idr: g.map_idr,
            per_cpu_offset: per_cpu.then_some(g.symbols.per_cpu_offset),
            nr_cpu_ids: Some(g.symbols.nr_cpu_ids),
            release: None,
            warnings: Vec::new(),
            vmcoreinfo: None,
            phys_base: g.phys_base,
            page_offset_base: g.addrs.direct_map.unwrap().virt.0,
            slide: 0,
        })
    }

    /// Every entry as (key, [(cpu, value)]) with CPU `u32::MAX` for a single value.
    #[allow(clippy::type_complexity)]
    fn entries(
        src: &dyn MapSource,
        map: &MapInfo,
    ) -> Result<Vec<(Vec<u8>, Vec<(u32, Vec<u8>)>)>, SourceError> {
        let mut out = Vec::new();
        src.for_each_entry(map, &mut |k, v| {
            let v = match v {
                ValueRef::Single(v) => vec![(u32::MAX, v.to_vec())],
                ValueRef::PerCpu(p) => p.iter().map(|(cpu, v)| (cpu, v.to_vec())).collect(),
            };
            out.push((k.to_vec(), v));
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    #[test]
    fn memory_maps_list_dump_and_give_their_btf() {
        let (g, raw) = guest();
        let ram = RamImage::new(&g, "list");
        let src = source(&g, &ram, true);
        let maps = src.maps().unwrap();
        let ids: Vec<u32> = maps.iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        let typed = src.find(&MapSelector::parse("typed")).unwrap();
        assert_eq!(
            (
                typed.btf_id,
                typed.map_flags,
                typed.has_btf(),
                typed.from_memory()
            ),
            (42, MapFlags::MMAPABLE, true, true)
        );
        assert_eq!(maps[0].btf_id, 0);

        let single = |v: &[u8]| vec![(u32::MAX, v.to_vec())];
        assert_eq!(
            entries(&src, &maps[0]).unwrap(),
            (0..3u32)
                .map(|k| (
                    k.to_le_bytes().to_vec(),
                    single(&u64::from(k + 5).to_le_bytes())
                ))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            entries(&src, &maps[1]).unwrap(),
            [(b"abcd".to_vec(), single(b"wxyz"))]
        );
        assert_eq!(
            entries(&src, &maps[2]).unwrap(),
            (0..2u8)
                .map(|k| {
                    let cpus = (0..2u8).map(|c| (u32::from(c), vec![k, c, 0, 9])).collect();
                    (u32::from(k).to_le_bytes().to_vec(), cpus)
                })
                .collect::<Vec<_>>()
        );
        assert_eq!(
            entries(&src, &maps[3]).unwrap(),
            [(vec![3; 8], vec![(0, vec![1; 4]), (1, vec![2; 4])])]
        );
        match entries(&src, &maps[4]) {
            Err(SourceError::Unsupported(msg)) => {
                assert!(msg.contains("ringbuf"), "{msg}");
            }
            other => panic!("{other:?}"),
        }

        let btf = src.btf(&typed).unwrap().unwrap();
        let t = btf.type_by_id(1, 0).unwrap();
        assert_eq!(t.kind, crate::btf::Kind::INT);
        assert_eq!(t.size(), Some(8));
        assert!(src.btf(&maps[0]).unwrap().is_none());
        assert!(!raw.is_empty());
    }

    #[test]
    fn per_cpu_maps_without_offsets_say_why() {
        let (g, _) = guest();
        let ram = RamImage::new(&g, "nopcpu");
        let src = source(&g, &ram, false);
        let maps = src.maps().unwrap();
        match entries(&src, &maps[2]) {
            Err(SourceError::Unsupported(msg)) => {
                assert!(msg.contains("__per_cpu_offset"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        // The other types do not need them.
        assert_eq!(entries(&src, &maps[0]).unwrap().len(), 3);
    }
}
