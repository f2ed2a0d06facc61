//! Page-table translation and small virtual reads.
//!
//! Every group translates the same pre-generated set of [`ADDRS`] addresses with each
//! contender, in the same run, so that the ratios hold on a noisy machine. The
//! throughput is one element per address: criterion's `thrpt` is addresses per second.
//!
//! Contenders, for x86_64 4-level and 5-level tables with 4 KiB, 2 MiB and 1 GiB leaves:
//! - `floor`: a bare hand-written walk over the same bytes (index, load, present/PS
//!   test per level): what any walker must at least do.
//! - `uncached`: [`mapwalk_core::arch::translate`].
//! - `cached_warm`: [`translate_cached`] with every page of the set already cached.
//! - `cached_cold`: [`translate_cached`] with the cache invalidated before each address,
//!   so every lookup misses, walks and fills a slot.
//! - `memflow`: memflow 0.2's x64 translator (`VirtualTranslate3::virt_to_phys`) over a
//!   memflow `MappedPhysicalMemory` of the same bytes (4-level only: memflow 0.2 has no
//!   5-level x86_64 architecture).
//! - `memflow_cached_warm`: the same behind memflow's `CachedVirtualTranslate` TLB, with
//!   a validator that never expires entries, warmed first.
//! - `memflow_batch`: all the addresses in one `virt_to_phys_iter` call, memflow's
//!   batched interface (memflow sorts and walks a batch level by level).
//!
//! The `vread8` group reads 8 bytes at page-walked (vmalloc-like) addresses:
//! `KernelView::read_kernel` with a warm cache against memflow's `VirtualDma` reads.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use mapwalk_benches::{SplitMix64, MEASURE, SAMPLES, WARM_UP};
use mapwalk_core::arch::{translate, translate_cached, Paging, TranslationCache, TLB_SLOTS};
use mapwalk_core::kernel::{
    x86_direct_map_base, x86_vmalloc_base, x86_vmemmap_base, KernelAddrs, KernelRead, KernelView,
};
use mapwalk_core::synth::{SynthRam, X86PageTables};
use mapwalk_core::{Kva, Pa, Result, Translation};

use memflow::architecture::x86::{x64, X86VirtualTranslate};
use memflow::cglue::CTup3;
use memflow::connector::MappedPhysicalMemory;
use memflow::mem::{
    CachedVirtualTranslate, DirectTranslate, MemoryMap, MemoryView, VirtualDma, VirtualTranslate2,
    VirtualTranslate3,
};
use memflow::types::cache::CountCacheValidator;
use memflow::types::{umem, Address, PhysicalAddress};

/// Addresses per set (and so per criterion iteration).
const ADDRS: usize = 4096;

/// Leaves mapped per table set: as many as the cache has slots per size class, so that
/// the warm cache holds every one of them.
const LEAVES: u64 = TLB_SLOTS as u64;

/// memflow's TLB size (its default).
const MEMFLOW_TLB_ENTRIES: usize = 2048;

/// The physical-address bits of an x86_64 entry.
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

type MfMem<'a> = MappedPhysicalMemory<&'a [u8], MemoryMap<&'a [u8]>>;
type MfCached = CachedVirtualTranslate<DirectTranslate, CountCacheValidator>;

/// The floor: an x86_64 walk reduced to what cannot be left out (per level an index, an
/// 8-byte load, a present test and a leaf test). RAM starts at physical 0.
#[inline(always)]
fn floor_walk<const LEVELS: u32>(bytes: &[u8], root: u64, va: u64) -> Option<u64> {
    let mut table = root;
    let mut level = LEVELS;
    loop {
        level -= 1;
        let shift = 12 + 9 * level;
        let at = usize::try_from(table | (((va >> shift) & 0x1ff) << 3)).ok()?;
        let entry = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        if entry & 1 == 0 {
            return None;
        }
        if level == 0 || entry & 0x80 != 0 {
            let mask = (1u64 << shift) - 1;
            return Some((entry & ADDR_MASK & !mask) | (va & mask));
        }
        table = entry & ADDR_MASK;
    }
}

fn floor(bytes: &[u8], root: u64, five_level: bool, va: u64) -> Option<u64> {
    if five_level {
        floor_walk::<5>(bytes, root, va)
    } else {
        floor_walk::<4>(bytes, root, va)
    }
}

/// The physical address of a translation, or 0 (the sets are checked before timing).
#[inline(always)]
fn pa_of(t: Result<Translation>) -> u64 {
    match t {
        Ok(Translation::Mapped(m)) => m.pa.0,
        _ => 0,
    }
}

#[inline(always)]
fn mf_pa(p: memflow::error::Result<PhysicalAddress>) -> u64 {
    p.map_or(0, |p| p.address().to_umem())
}

/// A memflow physical memory over the same bytes as `ram`.
fn memflow_mem(ram: &SynthRam) -> MfMem<'_> {
    let mut map = MemoryMap::new();
    map.push(Address::from(ram.base().0), ram.bytes());
    MappedPhysicalMemory::with_info(map)
}

/// memflow's TLB with a validator that never expires an entry (the warmest it can be;
/// its `std` default expires entries by time, its `no_std` default after 10 calls).
fn memflow_cache() -> MfCached {
    CachedVirtualTranslate::builder(DirectTranslate::with_capacity(1 << 20))
        .arch(x64::ARCH)
        .validator(CountCacheValidator::new(usize::MAX))
        .entries(MEMFLOW_TLB_ENTRIES)
        .build()
        .expect("memflow cache")
}

/// Where the leaves of each size go: the kernel regions that use such leaves.
fn leaf_base(five_level: bool, shift: u32) -> u64 {
    match shift {
        12 => x86_vmalloc_base(five_level),
        21 => x86_vmemmap_base(five_level),
        _ => x86_direct_map_base(five_level),
    }
}

/// Page tables mapping [`LEAVES`] leaves of `1 << shift` bytes to scattered frames.
struct Tables {
    ram: SynthRam,
    pt: X86PageTables,
    base: u64,
    shift: u32,
}

impl Tables {
    fn new(five_level: bool, shift: u32) -> Self {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let pt = X86PageTables::new(&mut ram, five_level);
        let base = leaf_base(five_level, shift);
        for i in 0..LEAVES {
            // Frames in a scrambled order, above the tables; they need not exist, as
            // translation never reads them.
            let frame = 4096 + (i * 167) % 4096;
            pt.map(
                &mut ram,
                Kva(base + (i << shift)),
                Pa(frame << shift),
                shift,
            );
        }
        Self {
            ram,
            pt,
            base,
            shift,
        }
    }

    /// `ADDRS` 8-byte-aligned addresses inside the mapped leaves: uniformly random, or
    /// evenly spaced in ascending order.
    fn addrs(&self, random: bool) -> Vec<u64> {
        let span = LEAVES << self.shift;
        let mut rng = SplitMix64::new(0x6d61_7077_616c_6b00 ^ u64::from(self.shift));
        let stride = span / ADDRS as u64;
        (0..ADDRS as u64)
            .map(|i| {
                let off = if random { rng.below(span) } else { i * stride };
                self.base + (off & !7)
            })
            .collect()
    }

    fn paging(&self) -> Paging {
        self.pt.paging()
    }
}

fn configure(g: &mut BenchmarkGroup<'_, WallTime>) {
    g.throughput(Throughput::Elements(ADDRS as u64));
    g.warm_up_time(WARM_UP);
    g.measurement_time(MEASURE);
    g.sample_size(SAMPLES);
}

fn bench_tables(c: &mut Criterion, five_level: bool, shift: u32, random: bool) {
    let t = Tables::new(five_level, shift);
    let addrs = t.addrs(random);
    let paging = t.paging();
    let mem = t.ram.as_ram();
    let bytes = t.ram.bytes();
    let root = t.pt.root().0;

    // The answer, from the floor; every contender must agree before it is timed.
    let want: Vec<u64> = addrs
        .iter()
        .map(|&va| floor(bytes, root, five_level, va).expect("mapped"))
        .collect();
    let check = |name: &str, got: &[u64]| assert_eq!(got, &want[..], "{name} disagrees");
    check(
        "uncached",
        &addrs
            .iter()
            .map(|&va| pa_of(translate(&mem, &paging, Kva(va))))
            .collect::<Vec<_>>(),
    );

    let warm = TranslationCache::new();
    for &va in &addrs {
        translate_cached(&mem, &paging, &warm, Kva(va)).expect("walk");
    }
    let misses = warm.misses();
    check(
        "cached_warm",
        &addrs
            .iter()
            .map(|&va| pa_of(translate_cached(&mem, &paging, &warm, Kva(va))))
            .collect::<Vec<_>>(),
    );
    assert_eq!(warm.misses(), misses, "the warm cache must hold every leaf");

    let cold = TranslationCache::new();
    check(
        "cached_cold",
        &addrs
            .iter()
            .map(|&va| {
                cold.invalidate();
                pa_of(translate_cached(&mem, &paging, &cold, Kva(va)))
            })
            .collect::<Vec<_>>(),
    );

    let name = format!(
        "translate/{}l-{}/{}",
        if five_level { 5 } else { 4 },
        match shift {
            12 => "4k",
            21 => "2m",
            _ => "1g",
        },
        if random { "random" } else { "seq" }
    );
    let mut g = c.benchmark_group(name);
    configure(&mut g);

    g.bench_function("floor", |b| {
        let addrs = black_box(&addrs[..]);
        let bytes = black_box(bytes);
        b.iter(|| {
            let mut acc = 0u64;
            for &va in addrs {
                acc = acc.wrapping_add(floor(bytes, root, five_level, va).unwrap_or(0));
            }
            acc
        });
    });
    g.bench_function("uncached", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| {
            let mut acc = 0u64;
            for &va in addrs {
                acc = acc.wrapping_add(pa_of(translate(&mem, black_box(&paging), Kva(va))));
            }
            acc
        });
    });
    g.bench_function("cached_warm", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| {
            let mut acc = 0u64;
            for &va in addrs {
                let t = translate_cached(&mem, black_box(&paging), &warm, Kva(va));
                acc = acc.wrapping_add(pa_of(t));
            }
            acc
        });
    });
    g.bench_function("cached_cold", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| {
            let mut acc = 0u64;
            for &va in addrs {
                cold.invalidate();
                let t = translate_cached(&mem, black_box(&paging), &cold, Kva(va));
                acc = acc.wrapping_add(pa_of(t));
            }
            acc
        });
    });

    if !five_level {
        bench_memflow(&mut g, &t, &addrs, &want);
    }
    g.finish();
}

/// memflow's contenders on the same tables (4-level only).
fn bench_memflow(g: &mut BenchmarkGroup<'_, WallTime>, t: &Tables, addrs: &[u64], want: &[u64]) {
    let mut mf = memflow_mem(&t.ram);
    let translator: X86VirtualTranslate = x64::new_translator(Address::from(t.pt.cr3()));
    let got: Vec<u64> = addrs
        .iter()
        .map(|&va| mf_pa(translator.virt_to_phys(&mut mf, Address::from(va))))
        .collect();
    assert_eq!(got, want, "memflow disagrees");

    let mut vat = memflow_cache();
    for &va in addrs {
        mf_pa(vat.virt_to_phys(&mut mf, &translator, Address::from(va)));
    }
    let misses = vat.misc;
    let got: Vec<u64> = addrs
        .iter()
        .map(|&va| mf_pa(vat.virt_to_phys(&mut mf, &translator, Address::from(va))))
        .collect();
    assert_eq!(got, want, "memflow's cache disagrees");
    // memflow caches 4 KiB pages only: a set of large leaves may not fit its TLB.
    let warm_fits = vat.misc == misses;

    let mut batch_tmp = DirectTranslate::with_capacity(16 << 20);
    let mut batch = |mf: &mut MfMem<'_>| -> u64 {
        let mut acc = 0u64;
        let mut n = 0usize;
        let mut out = |CTup3(pa, _, _): CTup3<PhysicalAddress, Address, umem>| {
            acc = acc.wrapping_add(pa.address().to_umem());
            n += 1;
            true
        };
        let mut fail = |_| true;
        batch_tmp.virt_to_phys_iter(
            mf,
            &translator,
            addrs
                .iter()
                .map(|&va| CTup3(Address::from(va), Address::from(va), 1 as umem)),
            &mut (&mut out).into(),
            &mut (&mut fail).into(),
        );
        assert_eq!(n, addrs.len());
        acc
    };
    let sum = want.iter().fold(0u64, |a, &p| a.wrapping_add(p));
    assert_eq!(batch(&mut mf), sum, "memflow's batch disagrees");

    g.bench_function("memflow", |b| {
        let addrs = black_box(addrs);
        b.iter(|| {
            let mut acc = 0u64;
            for &va in addrs {
                let p = translator.virt_to_phys(&mut mf, Address::from(va));
                acc = acc.wrapping_add(mf_pa(p));
            }
            acc
        });
    });
    let warm_name = if warm_fits {
        "memflow_cached_warm"
    } else {
        "memflow_cached_thrashing"
    };
    g.bench_function(warm_name, |b| {
        let addrs = black_box(addrs);
        b.iter(|| {
            let mut acc = 0u64;
            for &va in addrs {
                let p = vat.virt_to_phys(&mut mf, &translator, Address::from(va));
                acc = acc.wrapping_add(mf_pa(p));
            }
            acc
        });
    });
    g.bench_function("memflow_batch", |b| b.iter(|| batch(black_box(&mut mf))));
}

fn translation(c: &mut Criterion) {
    for five_level in [false, true] {
        for shift in [12, 21, 30] {
            for random in [true, false] {
                bench_tables(c, five_level, shift, random);
            }
        }
    }
}

/// An 8-byte read through a memflow memory view, or 0.
#[inline(always)]
fn mf_read8<V: MemoryView>(v: &mut V, va: u64) -> u64 {
    let mut buf = [0u8; 8];
    match v.read_raw_into(Address::from(va), &mut buf) {
        Ok(()) => u64::from_le_bytes(buf),
        Err(_) => 0,
    }
}

/// 8-byte reads at page-walked kernel addresses: [`LEAVES`] 4 KiB pages, virtually
/// contiguous at a vmalloc address, each backed by its own scattered physical page.
fn virtual_read(c: &mut Criterion) {
    let mut ram = SynthRam::new(Pa(0), 4 << 20);
    let pt = X86PageTables::new(&mut ram, false);
    let base = leaf_base(false, 12);
    for i in 0..LEAVES {
        let _gap = ram.alloc_page(12);
        let pa = ram.alloc_page(12);
        pt.map(&mut ram, Kva(base + (i << 12)), pa, 12);
        // Each word holds its own virtual address.
        let page: Vec<u8> = (0..512u64)
            .flat_map(|w| (base + (i << 12) + w * 8).to_le_bytes())
            .collect();
        ram.write(pa, &page);
    }
    let mut rng = SplitMix64::new(0x7672_6561_6438);
    let addrs: Vec<u64> = (0..ADDRS)
        .map(|_| base + (rng.below(LEAVES << 12) & !7))
        .collect();

    let view = KernelView::new(ram.as_ram(), pt.paging(), KernelAddrs::default());
    let read = |va: u64| {
        let mut buf = [0u8; 8];
        view.read_kernel(Kva(va), &mut buf)
            .map_or(0, |()| u64::from_le_bytes(buf))
    };
    for &va in &addrs {
        assert_eq!(read(va), va);
    }
    let misses = view.cache().misses();
    for &va in &addrs {
        assert_eq!(read(va), va);
    }
    assert_eq!(
        view.cache().misses(),
        misses,
        "the warm cache must hold every page"
    );

    let translator = x64::new_translator(Address::from(pt.cr3()));
    let mut cached =
        VirtualDma::with_vat(memflow_mem(&ram), x64::ARCH, translator, memflow_cache());
    let mut direct = VirtualDma::new(memflow_mem(&ram), x64::ARCH, translator);
    for &va in &addrs {
        assert_eq!(mf_read8(&mut cached, va), va, "memflow cached read");
        assert_eq!(mf_read8(&mut direct, va), va, "memflow direct read");
    }
    let bytes = ram.bytes();
    let root = pt.root().0;
    let floor_read = |va: u64| {
        let pa = floor_walk::<4>(bytes, root, va).unwrap_or(0);
        let at = usize::try_from(pa).unwrap_or(usize::MAX);
        bytes
            .get(at..at + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    for &va in &addrs {
        assert_eq!(floor_read(va), va);
    }

    let mut g = c.benchmark_group("vread8/4l-4k/random");
    configure(&mut g);
    g.bench_function("floor", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| {
            addrs
                .iter()
                .fold(0u64, |a, &va| a.wrapping_add(floor_read(va)))
        });
    });
    g.bench_function("read_kernel_warm", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| addrs.iter().fold(0u64, |a, &va| a.wrapping_add(read(va))));
    });
    g.bench_function("memflow_cached_warm", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| {
            addrs
                .iter()
                .fold(0u64, |a, &va| a.wrapping_add(mf_read8(&mut cached, va)))
        });
    });
    g.bench_function("memflow", |b| {
        let addrs = black_box(&addrs[..]);
        b.iter(|| {
            addrs
                .iter()
                .fold(0u64, |a, &va| a.wrapping_add(mf_read8(&mut direct, va)))
        });
    });
    g.finish();
}

criterion_group!(benches, translation, virtual_read);
criterion_main!(benches);
