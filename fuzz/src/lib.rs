//! The fuzz targets of mapwalk (the core's walkers, and the parsers of guest and file
//! input), as plain functions over bytes.
//!
//! Each module is one target: `fuzz_targets/<name>.rs` only calls `<name>::run(data)`.
//! Keeping the bodies here lets the seed-corpus generator (`examples/gen_corpus.rs`)
//! encode inputs with the same field order the targets decode, and lets
//! `cargo test` replay the corpus and the saved regressions on a stable toolchain.
//!
//! # Input shape
//! Every input starts with a small header of scalars, decoded with
//! [`arbitrary::Unstructured`] (little-endian integers; a `bool` is the low bit of a
//! byte; missing bytes read as zero). A `mode` byte then picks one of two memories:
//! - **raw**: the rest of the input *is* guest RAM, at a fuzz-chosen physical base,
//!   with fuzz-chosen roots and geometry. Shallow, but nothing about it is assumed.
//! - **synthetic**: a small synthetic guest built once per process ([`guest`]), whose
//!   RAM the input mutates ([`Mutated`]): a few XOR/overwrite patches at fuzz-chosen
//!   offsets inside the regions the walkers read (the kernel image variables, and the
//!   heap of page tables, xarray nodes and map objects), plus the rest of the input
//!   overwriting the RAM at a fuzz-chosen offset. This reaches the deep paths: a walk
//!   that is valid up to the one corrupted node. The `htab` and `percpu` targets use
//!   [`hash_guest`]s, which add hash and per-CPU maps and three possible CPUs.
//!
//! All-zero header bytes mean "synthetic guest, first choice of everything, no
//! mutation": a seed of a few zero bytes already walks a whole, valid guest.
//!
//! # What counts
//! Results are ignored (errors are formatted, to exercise `Display`), except for a few
//! differential checks whose failure is a bug by the core's own documentation:
//! - a cached translation equals an uncached one ([`mapwalk_core::arch::translate_cached`]);
//! - every entry [`XaWalk`](mapwalk_core::walk::xarray::XaWalk) yields is what
//!   `xa_load` returns for its index, and after a walk that ended without error,
//!   `xa_load` finds nothing at any index that the walk did not yield (at that index,
//!   or at a lower one for a multi-index entry);
//! - walks are fused: after `None` or an error, `None` forever;
//! - every map that discovery yields is what `map_by_id` returns, and every program the
//!   `prog_idr` walk yields (in id order) is what `prog_by_id` returns;
//! - an ARRAY value written inside one page reads back;
//! - a kernel read across pages equals the bytes gathered page by page, and each piece
//!   of a batched read equals its own read;
//! - a hash walk's `next_into` and its iterator agree, and the copies of an element
//!   (from the walk's buffer, from the guest) agree;
//! - PERCPU_ARRAY pointers, per-CPU copies and whole per-CPU values agree however read.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::synth::{GuestBuilder, MapSpec, SynthArch, SyntheticGuest};
use mapwalk_core::{
    Kva, Limits, MapType, Pa, Paging, PhysErrorKind, PhysRange, PhysRead, PhysWrite, Ram,
};

pub mod arena;
pub mod array;
pub mod btf_layout;
pub mod btf_synth;
pub mod discovery;
pub mod elf_core;
pub mod htab;
pub mod kallsyms;
pub mod ksymtab;
pub mod kvm_regions;
pub mod objmaps;
pub mod percpu;
pub mod pgtable_aarch64;
pub mod pgtable_x86_64;
pub mod progs;
pub mod ram_layout;
pub mod render;
pub mod ringbuf;
pub mod snapshot;
pub mod stackmap;
pub mod storage;
pub mod structops;
pub mod vmcoreinfo;
pub mod xarray;

/// The direct-map base of the raw-mode kernel views.
pub const RAW_DIRECT_MAP: u64 = 0xffff_8880_0000_0000;

/// Iterations any single walk in a target may take before the target declares it
/// endless (a fused walk must end well before: every cap in [`limits`] is far below).
pub const WALK_GUARD: u32 = 1 << 20;

/// Decoding: the `arbitrary` result.
pub type Res<T> = arbitrary::Result<T>;

/// Encoding side of the decoders: appends scalars the way `Unstructured` reads them.
#[derive(Debug, Default, Clone)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// A `u8`.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    /// A `u16`, little-endian.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u32`, little-endian.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `u64`, little-endian.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A `bool` (one byte).
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.0.push(u8::from(v));
        self
    }
    /// Raw bytes (the tail).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
}

/// Caps chosen by the fuzzer: small, so that a hostile tree costs microseconds and
/// every cap can be crossed. Fields a newer core adds keep their defaults.
///
/// Reads 8 bytes.
pub fn limits(u: &mut Unstructured<'_>) -> Res<Limits> {
    let xa_nodes = u.arbitrary::<u16>()?;
    let maps = u.arbitrary::<u16>()?;
    let value_size = u.arbitrary::<u32>()?;
    Ok(Limits {
        // 0 means "the default of the fuzz targets", so that a zero seed walks freely.
        xa_nodes: if xa_nodes == 0 {
            256
        } else {
            u32::from(xa_nodes % 1024)
        },
        maps: if maps == 0 {
            1024
        } else {
            u32::from(maps % 4096)
        },
        value_size: if value_size == 0 {
            1 << 16
        } else {
            u64::from(value_size % (1 << 20))
        },
        ..Limits::DEFAULT
    })
}

/// Formats a value with `Display` and `Debug`, so that formatting code runs too.
pub fn sink<E: std::fmt::Display + std::fmt::Debug>(e: &E) {
    thread_local! {
        static BUF: RefCell<String> = const { RefCell::new(String::new()) };
    }
    BUF.with(|b| {
        let mut b = b.borrow_mut();
        b.clear();
        let _ = write!(b, "{e} {e:?}");
        std::hint::black_box(b.len());
    });
}

/// The synthetic guests the targets start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestKind {
    /// x86_64, 4-level paging.
    X86Four,
    /// x86_64, 5-level paging.
    X86Five,
    /// aarch64, 4 KiB granule.
    A64Granule4K,
    /// aarch64, 16 KiB granule.
    A64Granule16K,
    /// aarch64, 64 KiB granule.
    A64Granule64K,
    /// aarch64, LPA2 (TCR_EL1.DS = 1), 4 KiB granule, 52-bit VAs: five levels.
    A64Lpa2Granule4K,
    /// aarch64, LPA2, 16 KiB granule, 52-bit VAs.
    A64Lpa2Granule16K,
}

impl GuestKind {
    /// Every kind, in selector order.
    pub const ALL: [Self; 7] = [
        Self::X86Four,
        Self::X86Five,
        Self::A64Granule4K,
        Self::A64Granule16K,
        Self::A64Granule64K,
        Self::A64Lpa2Granule4K,
        Self::A64Lpa2Granule16K,
    ];

    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|&k| k == self)
            .expect("every kind is listed")
    }

    /// The kind a selector byte picks among `kinds`.
    pub fn pick(kinds: &[Self], selector: u8) -> Self {
        kinds[usize::from(selector) % kinds.len()]
    }

    fn arch(self) -> SynthArch {
        match self {
            Self::X86Four => SynthArch::X86_64 { five_level: false },
            Self::X86Five => SynthArch::X86_64 { five_level: true },
            Self::A64Granule4K => SynthArch::Aarch64 { granule_shift: 12 },
            Self::A64Granule16K => SynthArch::Aarch64 { granule_shift: 14 },
            Self::A64Granule64K => SynthArch::Aarch64 { granule_shift: 16 },
            Self::A64Lpa2Granule4K => SynthArch::Aarch64Lpa2 { granule_shift: 12 },
            Self::A64Lpa2Granule16K => SynthArch::Aarch64Lpa2 { granule_shift: 14 },
        }
    }
}

/// The x86_64 kinds.
pub const X86_KINDS: [GuestKind; 2] = [GuestKind::X86Four, GuestKind::X86Five];
/// The aarch64 kinds.
pub const A64_KINDS: [GuestKind; 5] = [
    GuestKind::A64Granule4K,
    GuestKind::A64Granule16K,
    GuestKind::A64Granule64K,
    GuestKind::A64Lpa2Granule4K,
    GuestKind::A64Lpa2Granule16K,
];

/// A synthetic guest with the places worth mutating and the addresses worth reading.
#[derive(Debug)]
pub struct Guest {
    /// The guest.
    pub g: SyntheticGuest,
    /// Physical ranges the walkers read: the image variables (`map_idr` and friends)
    /// and the heap of page tables, xarray nodes and map objects.
    pub regions: Vec<PhysRange>,
    /// Kernel addresses that the page tables map: `map_idr`, map objects and their
    /// values, the ends of the direct map, vmalloc pages.
    pub vas: Vec<Kva>,
}

impl Guest {
    /// `g` with [`heap_regions`] (the image page of `image_var`, then the heap) to
    /// mutate and its maps' objects as the addresses to read.
    pub fn with_heap(g: SyntheticGuest, image_var: Kva) -> Self {
        let regions = heap_regions(&g, Some(image_var));
        let vas = g.maps.iter().map(|m| m.kva).collect();
        Self { g, regions, vas }
    }
}

/// The physical ranges of `g` worth mutating: the page holding the image variable
/// `image_var` (`map_idr`, `prog_idr`), when given, and the heap of page tables, xarray
/// nodes and objects (from the page-table root to the last page in use).
pub fn heap_regions(g: &SyntheticGuest, image_var: Option<Kva>) -> Vec<PhysRange> {
    let root = match g.paging {
        Paging::X86_64(p) => p.root(),
        Paging::Aarch64(p) => p.root(),
    };
    let used = g
        .ram
        .bytes()
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    let heap_end = g.ram.base().0 + (used as u64).next_multiple_of(0x1000);
    let image = image_var.map(|v| PhysRange {
        start: g.pa_of(v).page_base(12),
        len: 0x1000,
    });
    image
        .into_iter()
        .chain([PhysRange {
            start: root,
            len: heap_end - root.0,
        }])
        .collect()
}

/// The maps of every synthetic guest: ARRAYs in the direct map, vmalloc'd and
/// mmapable (so values span pages reached only through page tables), a HASH header,
/// and ids spread so that `map_idr` has three levels.
pub fn standard_maps() -> Vec<MapSpec> {
    vec![
        MapSpec::array(1, "counters", 8, 16)
            .with_values(|k| (u64::from(k) * 1000 + 7).to_le_bytes().to_vec()),
        MapSpec::array(9, "prog.bss", 24, 2)
            .vmalloc()
            .with_values(|k| vec![0x5a ^ k as u8; 24]),
        MapSpec::new(12, MapType::HASH, "flows", 16, 32, 64),
        MapSpec::array(70, "big_mmap", 4096, 3)
            .mmapable()
            .with_values(|k| vec![k as u8 + 1; 4096]),
        MapSpec::array(4097, "far", 4, 1).with_values(|_| 0xfeed_f00du32.to_le_bytes().to_vec()),
    ]
}

/// Hash and per-CPU maps, on top of [`standard_maps`], for the `htab` and `percpu`
/// targets: HASH with a three-element chain, LRU_HASH with a value size that is not a
/// multiple of 8, PERCPU_HASH with both pointer placements, LRU_PERCPU_HASH, and
/// PERCPU_ARRAYs in the first per-CPU chunk and in a vmalloc'd one.
pub fn hash_maps() -> Vec<MapSpec> {
    use mapwalk_core::bpf::PptrPlacement;
    let cpu_values = |n: u64| {
        (0..POSSIBLE_CPUS)
            .map(|c| (n * 100 + c).to_le_bytes().to_vec())
            .collect()
    };
    let mut flows = MapSpec::hash(20, "flows", 4, 8, 16);
    for k in 0..6u32 {
        flows = flows.entry(&k.to_le_bytes(), &(u64::from(k) * 70).to_le_bytes());
    }
    for k in 100..103u32 {
        flows = flows.entry_in_bucket(5, &k.to_le_bytes(), &u64::from(k).to_le_bytes());
    }
    let mut lru = MapSpec::new(21, MapType::LRU_HASH, "lru", 8, 12, 8);
    for k in 0..4u64 {
        lru = lru.entry(&k.to_le_bytes(), &[k as u8; 12]);
    }
    let pkts_old = MapSpec::new(22, MapType::PERCPU_HASH, "pkts_old", 6, 8, 8)
        .pptr_placement(PptrPlacement::KeySize)
        .percpu_entry(b"\x0a\0\0\x01\x00\x50", cpu_values(1))
        .percpu_entry(b"\x0a\0\0\x02\x00\x50", cpu_values(2))
        .percpu_entry_in_bucket(3, b"\x0a\0\0\x03\x01\xbb", cpu_values(3));
    let pkts_new = MapSpec::new(23, MapType::PERCPU_HASH, "pkts_new", 6, 8, 4)
        .pptr_placement(PptrPlacement::Aligned)
        .percpu_vmalloc()
        .percpu_entry(b"\xc0\xa8\0\x01\x00\x35", cpu_values(4))
        .percpu_entry(b"\xc0\xa8\0\x02\x00\x35", cpu_values(5));
    let lru_pc = MapSpec::new(24, MapType::LRU_PERCPU_HASH, "lru_pc", 8, 8, 4)
        .percpu_entry(&7u64.to_le_bytes(), cpu_values(6));
    let cnt = MapSpec::new(25, MapType::PERCPU_ARRAY, "cnt", 4, 8, 4)
        .with_cpu_values(POSSIBLE_CPUS as u32, |k, c| {
            (u64::from(k) * 10 + u64::from(c)).to_le_bytes().to_vec()
        });
    let big = MapSpec::new(26, MapType::PERCPU_ARRAY, "big", 4, 40, 3)
        .percpu_vmalloc()
        .with_cpu_values(POSSIBLE_CPUS as u32, |k, c| vec![(k * 16 + c) as u8; 40]);
    let mut maps = standard_maps();
    maps.extend([flows, lru, pkts_old, pkts_new, lru_pc, cnt, big]);
    maps
}

/// Possible CPUs of the hash guests.
pub const POSSIBLE_CPUS: u64 = 3;

fn build(kind: GuestKind, hash: bool) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    if hash {
        b = b.possible_cpus(POSSIBLE_CPUS as u32);
    }
    for spec in if hash { hash_maps() } else { standard_maps() } {
        b.add_map(spec);
    }
    let g = b.build();
    let regions = heap_regions(&g, Some(g.map_idr));
    let mut vas = vec![g.map_idr];
    let array = g.layout.array.expect("the default layout has bpf_array");
    for m in &g.maps {
        vas.push(m.kva);
        vas.push(Kva(m.kva.0 + u64::from(array.value)));
    }
    if let Some(dm) = g.addrs.direct_map {
        vas.push(dm.virt);
        vas.push(Kva(dm.virt.0 + dm.len - 8));
    }
    vas.extend(g.vmalloc_pages.keys().take(8).map(|&va| Kva(va)));
    Guest { g, regions, vas }
}

/// The synthetic guest of `kind` with [`standard_maps`], built on first use.
pub fn guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    GUESTS[kind.index()].get_or_init(|| build(kind, false))
}

/// The synthetic guest of `kind` with [`hash_maps`] and [`POSSIBLE_CPUS`] CPUs, built
/// on first use.
pub fn hash_guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    GUESTS[kind.index()].get_or_init(|| build(kind, true))
}

/// A kernel address near one the guest maps: `vas[pick] + delta`, or `delta` itself
/// when `absolute`.
pub fn pick_va(vas: &[Kva], pick: u8, delta: u32, absolute: u64) -> Kva {
    if absolute != 0 {
        return Kva(absolute);
    }
    let base = vas[usize::from(pick) % vas.len()];
    // A signed delta: reaches the pages before and after.
    Kva(base.0.wrapping_add(i64::from(delta as i32) as u64))
}

/// Guest RAM seen through fuzz-chosen mutations: a read returns the synthetic guest's
/// bytes with the patches laid over them; a write adds a patch. The guest itself is
/// never changed, so it is built only once per process.
#[derive(Debug)]
pub struct Mutated<'g> {
    ram: Ram<&'g [u8]>,
    patches: RefCell<Vec<(u64, Vec<u8>)>>,
}

/// Patches decoded per input, at most.
pub const MAX_PATCHES: u8 = 16;

impl<'g> Mutated<'g> {
    /// The guest's RAM with the mutations the rest of `u` describes (consumes all of
    /// it): `count: u8` patches of `region: u8, offset: u32, len: u8, xor: bool,
    /// value: u64`, then `tail_region: u8, tail_offset: u32`, then the tail bytes.
    pub fn new(guest: &'g Guest, u: &mut Unstructured<'_>) -> Res<Self> {
        let ram = guest.g.ram.as_ram();
        let mut patches = Vec::new();
        let count = u.arbitrary::<u8>()? % (MAX_PATCHES + 1);
        for _ in 0..count {
            let region = u.arbitrary::<u8>()?;
            let offset = u.arbitrary::<u32>()?;
            let len = usize::from(u.arbitrary::<u8>()? % 8) + 1;
            let xor = u.arbitrary::<bool>()?;
            let value = u.arbitrary::<u64>()?.to_le_bytes();
            let pa = Self::place(guest, region, offset);
            let mut bytes = value[..len].to_vec();
            if xor {
                let mut old = vec![0u8; len];
                if ram.read_phys(pa, &mut old).is_err() {
                    continue;
                }
                for (b, o) in bytes.iter_mut().zip(old) {
                    *b ^= o;
                }
            }
            patches.push((pa.0, bytes));
        }
        let region = u.arbitrary::<u8>()?;
        let offset = u.arbitrary::<u32>()?;
        let n = u.len();
        let tail = u.bytes(n)?;
        if !tail.is_empty() {
            patches.push((Self::place(guest, region, offset).0, tail.to_vec()));
        }
        Ok(Self {
            ram,
            patches: RefCell::new(patches),
        })
    }

    /// The guest's RAM unchanged.
    pub fn pristine(guest: &'g Guest) -> Self {
        Self {
            ram: guest.g.ram.as_ram(),
            patches: RefCell::new(Vec::new()),
        }
    }

    fn place(guest: &Guest, region: u8, offset: u32) -> Pa {
        let r = guest.regions[usize::from(region) % guest.regions.len()];
        Pa(r.start.0 + u64::from(offset) % r.len)
    }

    /// Encodes mutations for [`new`](Self::new): `(region, offset, len, xor, value)`
    /// patches, then the tail at `(region, offset)`.
    pub fn encode(e: &mut Enc, patches: &[(u8, u32, u8, bool, u64)], tail: (u8, u32, &[u8])) {
        e.u8(patches.len() as u8);
        for &(region, offset, len, xor, value) in patches {
            e.u8(region).u32(offset).u8(len).bool(xor).u64(value);
        }
        e.u8(tail.0).u32(tail.1).bytes(tail.2);
    }
}

impl PhysRead for Mutated<'_> {
    type Error = PhysErrorKind;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), PhysErrorKind> {
        self.ram.read_phys(pa, buf)?;
        let start = pa.0;
        let end = start.saturating_add(buf.len() as u64);
        for (at, bytes) in self.patches.borrow().iter() {
            let lo = start.max(*at);
            let hi = end.min(at.saturating_add(bytes.len() as u64));
            if lo < hi {
                let dst = (lo - start) as usize..(hi - start) as usize;
                let src = (lo - at) as usize..(hi - at) as usize;
                buf[dst].copy_from_slice(&bytes[src]);
            }
        }
        Ok(())
    }

    fn ranges(&self) -> &[PhysRange] {
        self.ram.ranges()
    }
}

impl PhysWrite for Mutated<'_> {
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), PhysErrorKind> {
        // The same checks as a read of the same range.
        let mut probe = vec![0u8; data.len()];
        self.ram.read_phys(pa, &mut probe)?;
        self.patches.borrow_mut().push((pa.0, data.to_vec()));
        Ok(())
    }
}

/// Runs a fallible iterator to its end, asserting that it ends within [`WALK_GUARD`]
/// steps and stays ended (it is fused). With `errors_end`, the first error must end it.
/// Returns up to `keep` items and the first error.
pub fn drain<T, E: std::fmt::Display + std::fmt::Debug>(
    it: &mut impl Iterator<Item = Result<T, E>>,
    keep: usize,
    errors_end: bool,
) -> (Vec<T>, Option<E>) {
    let mut items = Vec::new();
    let mut err = None;
    let mut steps = 0u32;
    loop {
        steps += 1;
        assert!(
            steps <= WALK_GUARD,
            "a walk did not end in {WALK_GUARD} steps"
        );
        match it.next() {
            None => break,
            Some(Ok(item)) => {
                if items.len() < keep {
                    items.push(item);
                }
            }
            Some(Err(e)) => {
                sink(&e);
                let first = err.is_none();
                if first {
                    err = Some(e);
                }
                if errors_end {
                    break;
                }
            }
        }
    }
    for _ in 0..2 {
        assert!(it.next().is_none(), "a walk yielded again after its end");
    }
    (items, err)
}

/// Kernel addresses the raw-mode page-table targets start from (each input adds a
/// signed delta or replaces them outright).
pub const RAW_VAS: [Kva; 6] = [
    Kva(0xffff_8880_0000_0000),
    Kva(0xffff_c900_0000_0000),
    Kva(0xffff_ffff_8000_0000),
    Kva(0xff11_0000_0000_0000),
    Kva(0xffff_0000_0000_0000),
    Kva(0xffff_8000_8000_0000),
];

/// Translates `va` three ways (uncached, cached on a miss or a hit, cached again) and
/// asserts that they agree; formats errors and touches the mapping's helpers.
pub fn check_translation<M: PhysRead + ?Sized>(
    mem: &M,
    paging: &Paging,
    cache: &mapwalk_core::TranslationCache,
    va: Kva,
) {
    let plain = mapwalk_core::translate(mem, paging, va);
    let cached = mapwalk_core::arch::translate_cached(mem, paging, cache, va);
    let again = mapwalk_core::arch::translate_cached(mem, paging, cache, va);
    assert_eq!(plain, cached, "cached translation of {va} differs");
    assert_eq!(cached, again, "second cached translation of {va} differs");
    match plain {
        Ok(mapwalk_core::Translation::Mapped(m)) => {
            let end = m.bytes_to_page_end();
            assert!(end >= 1, "{va}: empty rest of page");
            std::hint::black_box((end, m.pa.page_base(m.page_shift)));
            if let Some(hit) = cache.lookup(paging, va) {
                assert_eq!(hit, m, "cache lookup of {va} differs");
            }
        }
        Ok(t @ mapwalk_core::Translation::NotPresent { .. }) => {
            if let Err(e) = t.mapped(va) {
                sink(&e);
            }
        }
        Err(e) => sink(&e),
    }
}

/// The longest kernel read [`check_view_read`] makes.
pub const MAX_VIEW_READ: usize = 3 * 4096 + 512;

/// Reads `len` bytes at `va` through `view` and compares with the same bytes gathered
/// page by page (`kva_to_pa`, then a physical read of each run): both succeed with the
/// same bytes, or both fail. Then reads three pieces with `read_kernel_many` and
/// compares each with `read_kernel` of the piece.
pub fn check_view_read<M: PhysRead>(view: &mapwalk_core::KernelView<M>, va: Kva, len: usize) {
    use mapwalk_core::{KernelRead, PhysReadExt};
    // Length 0 is left out: `read_kernel` translates `va` even for an empty buffer (and
    // can fail), while there is no page to gather.
    let len = len % MAX_VIEW_READ + 1;
    if va.checked_add(len as u64).is_none() {
        return;
    }
    let mut whole = vec![0u8; len];
    let direct = view.read_kernel(va, &mut whole);
    let mut pieces = vec![0u8; len];
    let mut done = 0usize;
    let gathered = loop {
        if done == len {
            break Ok(());
        }
        let here = Kva(va.0 + done as u64);
        let span = match view.kva_to_pa(here) {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        assert!(span.len >= 1, "kva_to_pa({here}) gave an empty span");
        let n = span.len.min((len - done) as u64) as usize;
        if let Err(e) = view
            .mem()
            .read_bytes(span.start, &mut pieces[done..done + n])
        {
            break Err(e);
        }
        done += n;
    };
    match (&direct, &gathered) {
        (Ok(()), Ok(())) => assert_eq!(whole, pieces, "read_kernel({va}, {len}) differs"),
        (Err(a), Err(b)) => {
            sink(a);
            sink(b);
        }
        _ => panic!("read_kernel({va}, {len}) gave {direct:?}, page by page {gathered:?}"),
    }
    // Three pieces of the range (the middle one may span pages), batched.
    let cuts = [0, len / 3, len - len / 4, len];
    let mut bufs: Vec<Vec<u8>> = cuts.windows(2).map(|w| vec![0u8; w[1] - w[0]]).collect();
    let mut ops: Vec<(Kva, &mut [u8])> = cuts
        .windows(2)
        .zip(bufs.iter_mut())
        .map(|(w, b)| (Kva(va.0 + w[0] as u64), &mut b[..]))
        .collect();
    let many = view.read_kernel_many(&mut ops);
    drop(ops);
    match many {
        Ok(()) => {
            for (w, b) in cuts.windows(2).zip(&bufs) {
                let mut one = vec![0u8; b.len()];
                view.read_kernel(Kva(va.0 + w[0] as u64), &mut one)
                    .expect("a piece that read_kernel_many read reads alone");
                assert_eq!(&one, b, "read_kernel_many piece at +{} differs", w[0]);
            }
        }
        Err(e) => sink(&e),
    }
}

/// [`limits`] plus the hash-map caps: at most 1024 buckets and chains of at most 1024
/// elements, so that a walk visits at most a few thousand elements.
///
/// Reads 12 bytes.
pub fn hash_limits(u: &mut Unstructured<'_>) -> Res<Limits> {
    let base = limits(u)?;
    let buckets = u.arbitrary::<u16>()?;
    let chain = u.arbitrary::<u16>()?;
    Ok(Limits {
        htab_buckets: if buckets == 0 {
            256
        } else {
            u32::from(buckets % 1025)
        },
        bucket_chain: if chain == 0 {
            64
        } else {
            u32::from(chain % 1025)
        },
        ..base
    })
}

/// `__per_cpu_offset` as a target reads it: `PossibleCpus` from `nr_cpu_ids` (`cpus`
/// 0) or the count `cpus % 9` (other values), the array at `per_cpu_offset`.
pub fn read_offsets<K: mapwalk_core::KernelRead + ?Sized>(
    mem: &K,
    per_cpu_offset: Kva,
    nr_cpu_ids: Kva,
    cpus: u8,
) -> Option<mapwalk_core::bpf::PerCpuOffsets<Vec<u64>>> {
    use mapwalk_core::bpf::{PerCpuOffsets, PossibleCpus};
    let possible = if cpus == 0 {
        Some(PossibleCpus::NrCpuIds(nr_cpu_ids))
    } else {
        PossibleCpus::count(u32::from(cpus % 9))
    }?;
    match possible.resolve(mem) {
        Ok(n) => assert!((1..=mapwalk_core::limits::MAX_CPUS).contains(&n)),
        Err(e) => sink(&e),
    }
    // A buffer that may be too short: the error path.
    let short = PerCpuOffsets::read(mem, per_cpu_offset, possible, [0u64; 2]);
    if let Err(e) = &short {
        sink(e);
    }
    match PerCpuOffsets::read_vec(mem, per_cpu_offset, possible) {
        Ok(o) => {
            assert_eq!(o.as_slice().len() as u64, u64::from(o.possible()));
            Some(o)
        }
        Err(e) => {
            sink(&e);
            None
        }
    }
}
