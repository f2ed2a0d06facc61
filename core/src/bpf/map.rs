//! Map discovery: every map of `map_idr`, with its metadata.

use core::fmt;
use core::iter::FusedIterator;

use crate::addr::Kva;
use crate::bpf::{MapFlags, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::{BpfMapLayout, KernelLayout};
use crate::limits::{BPF_OBJ_NAME_LEN, MAX_MAP_HEADER};
use crate::walk::xarray::{xa_load, XaWalk};

/// A map's name (`bpf_map.name`): up to 16 bytes, cut at the first NUL.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MapName {
    bytes: [u8; BPF_OBJ_NAME_LEN],
    len: u8,
}

impl MapName {
    /// The name from the raw field: the bytes before the first NUL (all 16 when a corrupt
    /// field has none).
    pub fn from_field(field: &[u8; BPF_OBJ_NAME_LEN]) -> Self {
        let len = field
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(BPF_OBJ_NAME_LEN);
        Self {
            bytes: *field,
            len: u8::try_from(len).unwrap_or(0),
        }
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The name as text, or `None` if it is not UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }
}

impl fmt::Debug for MapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_bytes().escape_ascii())
    }
}

impl fmt::Display for MapName {
    /// The name, with bytes that are not printable ASCII escaped. Width and alignment
    /// apply to names that need no escaping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(s) if s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => f.pad(s),
            _ => fmt::Display::fmt(&self.as_bytes().escape_ascii(), f),
        }
    }
}

/// What is known about one map, wherever it was read: out of memory (`struct bpf_map`,
/// through [`Bpf`]) or from the running kernel (`BPF_OBJ_GET_INFO_BY_FD`).
///
/// The fields up to [`btf_vmlinux_value_type_id`](Self::btf_vmlinux_value_type_id) mean
/// the same for every source. The last two, [`kva`](Self::kva) and [`btf`](Self::btf),
/// are the **memory part**: kernel addresses that only a memory source knows. They are
/// [`Kva::NULL`] when the map did not come from memory (see
/// [`from_memory`](Self::from_memory)); the walkers need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapInfo {
    /// The map's id (from memory: its index in `map_idr`, checked against `bpf_map.id`).
    pub id: u32,
    /// `map_type`.
    pub map_type: MapType,
    /// `name`.
    pub name: MapName,
    /// `map_flags`, unknown bits included.
    pub map_flags: MapFlags,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size` (per CPU, for per-CPU maps).
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// The id of the map's BTF object (`btf->id`, the `btf_id` of
    /// `BPF_OBJ_GET_INFO_BY_FD`); 0 when the map has no BTF. From memory it is read
    /// through [`KernelLayout::btf_object`], and stays 0 when that group is absent
    /// ([`has_btf`](Self::has_btf) still tells).
    pub btf_id: u32,
    /// `btf_key_type_id`.
    pub btf_key_type_id: u32,
    /// `btf_value_type_id`.
    pub btf_value_type_id: u32,
    /// `btf_vmlinux_value_type_id` (zero when the kernel has no such field).
    pub btf_vmlinux_value_type_id: u32,
    /// Memory part: the kernel address of the map's `struct bpf_map` (and of the struct
    /// that embeds it). [`Kva::NULL`] when the map was not read out of memory.
    pub kva: Kva,
    /// Memory part: `bpf_map.btf`, the address of the map's `struct btf`.
    /// [`Kva::NULL`] when the map has no BTF or was not read out of memory.
    pub btf: Kva,
}

impl MapInfo {
    /// Whether the memory part is filled: the map was read out of memory, and the
    /// walkers can find its contents.
    pub fn from_memory(&self) -> bool {
        self.kva != Kva::NULL
    }

    /// Whether the map has BTF (a BTF id, or a `struct btf` in memory).
    pub fn has_btf(&self) -> bool {
        self.btf_id != 0 || self.btf != Kva::NULL
    }

    /// Bytes between two CPUs' copies of a per-CPU value: `round_up(value_size, 8)`.
    pub fn percpu_stride(&self) -> u64 {
        u64::from(self.value_size).next_multiple_of(8)
    }
}

/// One past the last byte of `struct bpf_map` that discovery reads.
fn header_span(l: &BpfMapLayout) -> u64 {
    let ends = [
        (l.map_type, 4),
        (l.key_size, 4),
        (l.value_size, 4),
        (l.max_entries, 4),
        (l.map_flags, 4),
        (l.id, 4),
        (l.name, 16),
        (l.btf, 8),
        (l.btf_key_type_id, 4),
        (l.btf_value_type_id, 4),
        (l.btf_vmlinux_value_type_id.unwrap_or(0), 4),
    ];
    ends.iter()
        .map(|&(off, len)| u64::from(off).saturating_add(len))
        .max()
        .unwrap_or(0)
}

/// A little-endian field out of a header buffer.
fn field<const N: usize>(buf: &[u8], off: u32) -> [u8; N] {
    let start = usize::try_from(off).unwrap_or(usize::MAX);
    buf.get(start..start.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

fn u32_at(buf: &[u8], off: u32) -> u32 {
    u32::from_le_bytes(field(buf, off))
}

/// Reads the `struct bpf_map` at `kva`, found at index `id` of `map_idr`.
///
/// Leaves [`MapInfo::btf_id`] 0: that needs `struct btf` offsets, and discovery through
/// [`Bpf`] fills it.
///
/// # Errors
/// A read error, [`Error::LimitExceeded`] when the layout puts fields past
/// [`MAX_MAP_HEADER`], or [`Error::Corrupt`] when the map's own `id` field disagrees with
/// its index.
pub fn read_map_info<K: KernelRead + ?Sized>(
    mem: &K,
    layout: &BpfMapLayout,
    id: u32,
    kva: Kva,
) -> Result<MapInfo> {
    let span = header_span(layout);
    let mut buf = [0u8; MAX_MAP_HEADER];
    let header = usize::try_from(span)
        .ok()
        .and_then(|n| buf.get_mut(..n))
        .ok_or(Error::LimitExceeded {
            what: "struct bpf_map header bytes",
            limit: crate::mem::len_u64(MAX_MAP_HEADER),
            at: span,
        })?;
    mem.read_kernel(kva, header)?;
    let header = &*header;
    let own_id = u32_at(header, layout.id);
    if own_id != id {
        return Err(Error::Corrupt {
            what: "bpf_map.id (disagrees with the map's index in map_idr)",
            at: kva,
            value: u64::from(own_id),
        });
    }
    Ok(MapInfo {
        id,
        kva,
        map_type: MapType(u32_at(header, layout.map_type)),
        map_flags: MapFlags::from_bits_retain(u32_at(header, layout.map_flags)),
        key_size: u32_at(header, layout.key_size),
        value_size: u32_at(header, layout.value_size),
        max_entries: u32_at(header, layout.max_entries),
        name: MapName::from_field(&field(header, layout.name)),
        btf: Kva(u64::from_le_bytes(field(header, layout.btf))),
        btf_key_type_id: u32_at(header, layout.btf_key_type_id),
        btf_value_type_id: u32_at(header, layout.btf_value_type_id),
        btf_vmlinux_value_type_id: layout
            .btf_vmlinux_value_type_id
            .map_or(0, |off| u32_at(header, off)),
        btf_id: 0,
    })
}

/// [`read_map_info`], then the id of the map's `struct btf` when `layout` says where
/// `struct btf` keeps it.
fn read_map(
    mem: &(impl KernelRead + ?Sized),
    layout: &KernelLayout,
    id: u32,
    kva: Kva,
) -> Result<MapInfo> {
    let mut info = read_map_info(mem, &layout.bpf_map, id, kva)?;
    if let (Some(l), false) = (layout.btf_object, info.btf == Kva::NULL) {
        info.btf_id = crate::bpf::btf::read_btf_id(mem, &l, info.btf)?;
    }
    Ok(info)
}

/// Checks that an `map_idr` slot holds what can be a `struct bpf_map *` and returns it.
fn map_pointer(index: u64, entry: u64) -> Result<(u32, Kva)> {
    let id = u32::try_from(index).map_err(|_| Error::Corrupt {
        what: "map_idr index (above the 32-bit id range)",
        at: Kva(entry),
        value: index,
    })?;
    // Kernel objects are at least 8-byte aligned and live in the upper half.
    if entry & 7 != 0 || entry >> 63 == 0 {
        return Err(Error::Corrupt {
            what: "map_idr entry (not a kernel pointer)",
            at: Kva(entry),
            value: index,
        });
    }
    Ok((id, Kva(entry)))
}

/// All maps of `map_idr`, in id order.
///
/// Yields one `Result` per map, with its [`MapInfo::btf_id`] read from its `struct btf`
/// when the layout has [`KernelLayout::btf_object`]. An error confined to one map (its
/// `struct bpf_map` or the id of its `struct btf` cannot be read, or it contradicts its
/// id) is yielded and the walk goes on with the next
/// map. An error in the tree itself (a corrupt xarray node, a cap crossed) is yielded
/// and ends the walk: the iterator is fused. [`current_id`](Self::current_id) says which
/// map the last item was about.
#[derive(Debug)]
pub struct Maps<'a, K: ?Sized> {
    mem: &'a K,
    layout: &'a KernelLayout,
    /// `map_idr`'s xarray.
    xarray: Kva,
    walk: XaWalk<'a, K>,
    yielded: u32,
    current: Option<u32>,
    done: bool,
}

impl<'a, K: KernelRead + ?Sized> Maps<'a, K> {
    /// The id of the map the last item was about, if it was about one map.
    pub fn current_id(&self) -> Option<u32> {
        self.current
    }

    /// Whether index `index` of `map_idr` no longer holds `entry`, read afresh.
    fn gone(&self, index: u64, entry: u64) -> bool {
        let off = u64::from(self.layout.xarray.xa_head);
        let now = self
            .xarray
            .checked_add(off)
            .ok_or(Error::AddrOverflow {
                addr: self.xarray.0,
                len: off,
            })
            .and_then(|at| self.mem.read_kernel_u64(at))
            .and_then(|head| xa_load(self.mem, &self.layout.xarray, head, index));
        matches!(now, Ok(now) if now != Some(entry))
    }
}

impl<K: KernelRead + ?Sized> Iterator for Maps<'_, K> {
    type Item = Result<MapInfo>;

    fn next(&mut self) -> Option<Self::Item> {
        // Each pass takes one entry of the walk, which its caps bound.
        loop {
            if self.done {
                return None;
            }
            self.current = None;
            let entry = match self.walk.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Some(Ok(entry)) => entry,
            };
            let limit = self.mem.limits().maps;
            if self.yielded >= limit {
                self.done = true;
                return Some(Err(Error::LimitExceeded {
                    what: "maps in map_idr",
                    limit: u64::from(limit),
                    at: entry.index,
                }));
            }
            self.yielded = self.yielded.saturating_add(1);
            let (id, kva) = match map_pointer(entry.index, entry.entry) {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            match read_map(self.mem, self.layout, id, kva) {
                // The map was destroyed while it was read (a running guest): it is no
                // longer in map_idr, so it is not listed, as a walk a moment later
                // would not list it.
                Err(_) if self.gone(entry.index, entry.entry) => continue,
                r => {
                    self.current = Some(id);
                    return Some(r);
                }
            }
        }
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for Maps<'_, K> {}

/// BPF maps of one kernel: where `map_idr` is and how the kernel lays out its structs.
#[derive(Debug, Clone, Copy)]
pub struct Bpf<'a, K: ?Sized> {
    pub(crate) mem: &'a K,
    pub(crate) layout: &'a KernelLayout,
    map_idr: Kva,
}

impl<'a, K: KernelRead + ?Sized> Bpf<'a, K> {
    /// The maps of the kernel in `mem`, whose `map_idr` (a kernel-image symbol) is at
    /// `map_idr`.
    pub fn new(mem: &'a K, layout: &'a KernelLayout, map_idr: Kva) -> Self {
        Self {
            mem,
            layout,
            map_idr,
        }
    }

    /// The kernel memory.
    pub fn mem(&self) -> &'a K {
        self.mem
    }

    /// The layout.
    pub fn layout(&self) -> &'a KernelLayout {
        self.layout
    }

    fn xarray(&self) -> Result<Kva> {
        self.map_idr
            .checked_add(u64::from(self.layout.idr.idr_rt))
            .ok_or(Error::AddrOverflow {
                addr: self.map_idr.0,
                len: u64::from(self.layout.idr.idr_rt),
            })
    }

    fn head(&self) -> Result<u64> {
        let xa = self.xarray()?;
        let at = xa
            .checked_add(u64::from(self.layout.xarray.xa_head))
            .ok_or(Error::AddrOverflow {
                addr: xa.0,
                len: u64::from(self.layout.xarray.xa_head),
            })?;
        self.mem.read_kernel_u64(at)
    }

    /// `map_idr.idr_next`: the id the kernel will try next. Live ids may be above it
    /// after the ids wrapped; discovery does not rely on it.
    ///
    /// # Errors
    /// A read error.
    pub fn idr_next(&self) -> Result<u32> {
        let at = self
            .map_idr
            .checked_add(u64::from(self.layout.idr.idr_next))
            .ok_or(Error::AddrOverflow {
                addr: self.map_idr.0,
                len: u64::from(self.layout.idr.idr_next),
            })?;
        self.mem.read_kernel_u32(at)
    }

    /// Every map, in id order (see [`Maps`]).
    ///
    /// # Errors
    /// When `map_idr` itself cannot be read.
    pub fn maps(&self) -> Result<Maps<'a, K>> {
        let xarray = self.xarray()?;
        Ok(Maps {
            mem: self.mem,
            layout: self.layout,
            xarray,
            walk: XaWalk::from_xarray(self.mem, self.layout.xarray, xarray)?,
            yielded: 0,
            current: None,
            done: false,
        })
    }

    /// The map with id `id`, found by a direct lookup in `map_idr`.
    ///
    /// # Errors
    /// A read error, or a corrupt tree or map.
    pub fn map_by_id(&self, id: u32) -> Result<Option<MapInfo>> {
        let head = self.head()?;
        match xa_load(self.mem, &self.layout.xarray, head, u64::from(id))? {
            None => Ok(None),
            Some(entry) => {
                let (id, kva) = map_pointer(u64::from(id), entry)?;
                read_map(self.mem, self.layout, id, kva).map(Some)
            }
        }
    }

    /// The first map (lowest id) for which `pred` holds.
    ///
    /// Maps that cannot be read are passed over; if no map matches and one could not be
    /// read, that error is returned, since the unreadable one might have matched.
    ///
    /// # Errors
    /// An error that ended the walk, or the first per-map error when nothing matched.
    pub fn find(&self, mut pred: impl FnMut(&MapInfo) -> bool) -> Result<Option<MapInfo>> {
        let mut first_err = None;
        for item in self.maps()? {
            match item {
                Ok(info) if pred(&info) => return Ok(Some(info)),
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(None), Err)
    }

    /// The first map whose name is exactly `name`.
    ///
    /// # Errors
    /// As [`find`](Self::find).
    pub fn find_by_name(&self, name: &str) -> Result<Option<MapInfo>> {
        self.find(|m| m.name.as_bytes() == name.as_bytes())
    }

    /// The first map whose name ends with `suffix` (such as `".bss"`: libbpf names a
    /// program's global-data maps `<prefix>.bss`, `.data`, `.rodata`).
    ///
    /// # Errors
    /// As [`find`](Self::find).
    pub fn find_by_suffix(&self, suffix: &str) -> Result<Option<MapInfo>> {
        self.find(|m| m.name.as_bytes().ends_with(suffix.as_bytes()))
    }

    /// Every map collected into a `Vec`, with the per-map errors beside them.
    ///
    /// # Errors
    /// When the walk itself fails (a corrupt tree, a cap crossed, `map_idr` unreadable).
    #[cfg(any(feature = "alloc", test))]
    pub fn collect_maps(&self) -> Result<MapList> {
        let mut maps = alloc::vec::Vec::new();
        let mut errors = alloc::vec::Vec::new();
        let mut it = self.maps()?;
        while let Some(item) = it.next() {
            match item {
                Ok(m) => maps.push(m),
                Err(e) => match it.current_id() {
                    Some(id) => errors.push((Some(id), e)),
                    None if it.done => return Err(e),
                    None => errors.push((None, e)),
                },
            }
        }
        Ok(MapList { maps, errors })
    }
}

/// Every map of a kernel, and the maps that could not be read.
#[cfg(any(feature = "alloc", test))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapList {
    /// The maps that were read, in id order.
    pub maps: alloc::vec::Vec<MapInfo>,
    /// The per-map errors, with the id of the map when it is known.
    pub errors: alloc::vec::Vec<(Option<u32>, Error)>,
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::kernel::KernelView;
    use crate::limits::Limits;
    use crate::synth::{GuestBuilder, MapSpec, SynthArch};

    fn ids<K: KernelRead>(bpf: &Bpf<'_, K>) -> Vec<u32> {
        bpf.maps().unwrap().map(|m| m.unwrap().id).collect()
    }

    fn sample(arch: SynthArch) -> crate::synth::SyntheticGuest {
        let mut b = GuestBuilder::new(arch);
        b.add_map(MapSpec::array(1, "first", 8, 2))
            .add_map(MapSpec::new(2, MapType::HASH, "flows", 16, 64, 4096))
            .add_map(MapSpec::new(5, MapType::PERCPU_ARRAY, "pcpu", 4, 8, 16).vmalloc())
            .add_map(MapSpec::array(64, "prog.bss", 128, 1).vmalloc())
            .add_map(MapSpec::array(4097, "prog.data", 16, 1))
            .add_map(MapSpec::new(70_000, MapType(77), "future", 4, 4, 1));
        b.build()
    }

    #[test]
    fn discovers_every_map_with_its_metadata() {
        for arch in [
            SynthArch::X86_64 { five_level: false },
            SynthArch::X86_64 { five_level: true },
            SynthArch::Aarch64 { granule_shift: 12 },
            SynthArch::Aarch64 { granule_shift: 14 },
            SynthArch::Aarch64 { granule_shift: 16 },
            SynthArch::Aarch64Lpa2 { granule_shift: 12 },
            SynthArch::Aarch64Lpa2 { granule_shift: 14 },
        ] {
            let g = sample(arch);
            let view = g.view();
            let bpf = Bpf::new(&view, &g.layout, g.map_idr);
            let maps: Vec<MapInfo> = bpf.maps().unwrap().map(Result::unwrap).collect();
            assert_eq!(
                maps.iter().map(|m| m.id).collect::<Vec<_>>(),
                [1, 2, 5, 64, 4097, 70_000],
                "{arch:?}"
            );
            let flows = maps[1];
            assert_eq!(flows.map_type, MapType::HASH);
            assert_eq!(
                (flows.key_size, flows.value_size, flows.max_entries),
                (16, 64, 4096)
            );
            assert_eq!(flows.name.as_str(), Some("flows"));
            assert_eq!(flows.kva, g.maps[1].kva);
            assert_eq!(maps[5].map_type, MapType(77));
            assert_eq!(maps[3].name.as_str(), Some("prog.bss"));
        }
    }

    #[test]
    fn ids_above_idr_next_are_found_after_a_wrap() {
        let mut b = GuestBuilder::x86_64(false).idr_next(3);
        b.add_map(MapSpec::array(2, "low", 4, 1))
            .add_map(MapSpec::array(0x7fff_fff0, "high", 4, 1));
        let g = b.build();
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        assert_eq!(bpf.idr_next().unwrap(), 3);
        assert_eq!(ids(&bpf), [2, 0x7fff_fff0]);
    }

    #[test]
    fn finds_by_id_name_and_suffix() {
        let g = sample(SynthArch::X86_64 { five_level: false });
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        assert_eq!(
            bpf.map_by_id(4097).unwrap().unwrap().name.as_str(),
            Some("prog.data")
        );
        assert_eq!(bpf.map_by_id(4096).unwrap(), None);
        assert_eq!(bpf.map_by_id(u32::MAX).unwrap(), None);
        assert_eq!(bpf.find_by_name("flows").unwrap().unwrap().id, 2);
        assert_eq!(bpf.find_by_name("flow").unwrap(), None);
        assert_eq!(bpf.find_by_suffix(".bss").unwrap().unwrap().id, 64);
        assert_eq!(bpf.find_by_suffix(".rodata").unwrap(), None);
    }

    #[test]
    fn empty_idr_has_no_maps() {
        let g = GuestBuilder::x86_64(false).build();
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        assert_eq!(ids(&bpf), Vec::<u32>::new());
        assert_eq!(bpf.find_by_name("x").unwrap(), None);
    }

    #[test]
    fn a_corrupt_map_is_reported_and_the_walk_goes_on() {
        let mut g = sample(SynthArch::X86_64 { five_level: false });
        // Map 2 claims to be map 3.
        let id_pa = g.pa_of(Kva(g.maps[1].kva.0 + u64::from(g.layout.bpf_map.id)));
        g.ram.write_u32(id_pa, 3);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let items: Vec<Result<MapInfo>> = bpf.maps().unwrap().collect();
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[1],
            Err(Error::Corrupt {
                what: "bpf_map.id (disagrees with the map's index in map_idr)",
                at: g.maps[1].kva,
                value: 3
            })
        );
        assert_eq!(items[2].as_ref().unwrap().id, 5);
        // A search that does not find its map reports the unreadable one.
        assert_eq!(
            bpf.find_by_name("nothing").unwrap_err(),
            items[1].unwrap_err()
        );
        assert_eq!(bpf.find_by_name("prog.data").unwrap().unwrap().id, 4097);
    }

    #[test]
    fn an_unmapped_map_is_an_error_for_that_map() {
        let mut g = sample(SynthArch::X86_64 { five_level: false });
        // Point the idr slot of map 5 (vmalloc'd) at an unmapped vmalloc address.
        let old = g.maps[2].kva.0;
        let bytes = g.ram.bytes_mut();
        let needle = old.to_le_bytes();
        let pos = bytes.windows(8).position(|w| w == needle).unwrap();
        bytes[pos..pos + 8].copy_from_slice(&(old + (64 << 20)).to_le_bytes());
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let items: Vec<Result<MapInfo>> = bpf.maps().unwrap().collect();
        assert!(
            matches!(items[2], Err(Error::NotMapped { .. })),
            "{:?}",
            items[2]
        );
        assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 5);
    }

    #[test]
    fn a_failing_backend_is_an_error_for_the_map_it_holds() {
        let g = sample(SynthArch::X86_64 { five_level: false });
        let victim = g.pa_of(g.maps[4].kva);
        let mem = crate::synth::FaultyMem::new(g.ram.as_ram(), victim, 1, crate::PhysErrorKind::Io);
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let items: Vec<Result<MapInfo>> = bpf.maps().unwrap().collect();
        assert_eq!(items.len(), 6);
        assert!(
            matches!(items[4], Err(Error::Phys { kind: crate::PhysErrorKind::Io, pa, .. }) if pa == victim),
            "{:?}",
            items[4]
        );
        assert_eq!(items[5].as_ref().unwrap().id, 70_000);
        assert!(mem.failed() >= 1);
    }

    #[test]
    fn a_non_pointer_entry_is_corrupt() {
        assert!(matches!(map_pointer(1, 0x1234), Err(Error::Corrupt { .. })));
        assert!(matches!(
            map_pointer(1, 0xffff_8880_0000_0004),
            Err(Error::Corrupt { .. })
        ));
        assert!(matches!(
            map_pointer(1 << 32, 0xffff_8880_0000_0000),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(
            map_pointer(9, 0xffff_8880_0000_0040).unwrap(),
            (9, Kva(0xffff_8880_0000_0040))
        );
    }

    #[test]
    fn the_map_cap_holds_at_and_fails_past_its_limit() {
        let g = sample(SynthArch::X86_64 { five_level: false });
        let at = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(Limits {
            maps: 6,
            ..Limits::DEFAULT
        });
        assert_eq!(ids(&Bpf::new(&at, &g.layout, g.map_idr)).len(), 6);
        let below = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(Limits {
            maps: 5,
            ..Limits::DEFAULT
        });
        let items: Vec<Result<MapInfo>> = Bpf::new(&below, &g.layout, g.map_idr)
            .maps()
            .unwrap()
            .collect();
        assert_eq!(items.len(), 6);
        assert_eq!(
            items[5],
            Err(Error::LimitExceeded {
                what: "maps in map_idr",
                limit: 5,
                at: 70_000
            })
        );
    }

    #[test]
    fn names_are_cut_at_nul_and_escaped() {
        let mut f = [0u8; 16];
        f[..3].copy_from_slice(b"a\xffb");
        let n = MapName::from_field(&f);
        assert_eq!(n.as_bytes(), b"a\xffb");
        assert_eq!(n.as_str(), None);
        assert_eq!(alloc::format!("{n}"), "a\\xffb");
        let full = MapName::from_field(&[b'x'; 16]);
        assert_eq!(full.as_bytes().len(), 16);
    }

    #[test]
    fn collect_maps_separates_per_map_errors() {
        let mut g = sample(SynthArch::X86_64 { five_level: true });
        let id_pa = g.pa_of(Kva(g.maps[0].kva.0 + u64::from(g.layout.bpf_map.id)));
        g.ram.write_u32(id_pa, 99);
        let view = g.view();
        let MapList { maps, errors } = Bpf::new(&view, &g.layout, g.map_idr)
            .collect_maps()
            .unwrap();
        assert_eq!(maps.len(), 5);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, Some(1));
    }
}
