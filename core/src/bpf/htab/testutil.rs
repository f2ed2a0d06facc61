//! Synthetic guests and walk helpers shared by the hash map tests.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use super::*;
use crate::addr::Pa;
use crate::bpf::{Bpf, MapType};
use crate::kernel::KernelView;
use crate::limits::Limits;
use crate::mem::{PhysRange, PhysRead, ReadOp};
use crate::synth::{GuestBuilder, MapSpec, SynthArch, SyntheticGuest};

pub(super) const ARCHES: [SynthArch; 5] = [
    SynthArch::X86_64 { five_level: false },
    SynthArch::X86_64 { five_level: true },
    SynthArch::Aarch64 { granule_shift: 12 },
    SynthArch::Aarch64 { granule_shift: 16 },
    SynthArch::Aarch64Lpa2 { granule_shift: 12 },
];

pub(super) fn bytes(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(37)
                .wrapping_add(seed.wrapping_mul(101)) as u8
        })
        .collect()
}

pub(super) fn key(i: u32, len: usize) -> Vec<u8> {
    let mut k = bytes(i ^ 0x55, len);
    k[0] = i as u8;
    k
}

/// A per-CPU value: distinct for every element and CPU.
pub(super) fn pv(i: u32, cpu: u32, len: usize) -> Vec<u8> {
    bytes(i * 1000 + cpu * 7 + 1, len)
}

pub(super) fn build(arch: SynthArch, cpus: u32, specs: Vec<MapSpec>) -> SyntheticGuest {
    let mut b = GuestBuilder::new(arch).possible_cpus(cpus);
    for s in specs {
        b.add_map(s);
    }
    b.build()
}

/// Everything a walk yields: entries with their bytes, per-element errors, and the
/// error that ended it. Checks that it is fused afterwards.
#[derive(Debug, Default)]
pub(super) struct Walked {
    pub(super) items: Vec<(u32, Vec<u8>, Vec<u8>)>,
    pub(super) errors: Vec<(Option<HtabPos>, Error)>,
    pub(super) end: Option<Error>,
}

pub(super) fn walk_all<K: KernelRead>(h: &HtabMap, mem: &K) -> Walked {
    let mut w = h.walk(mem);
    let mut out = Walked::default();
    while let Some(item) = w.next() {
        match item {
            Ok(e) => {
                let mut k = vec![0u8; h.info().key_size as usize];
                w.copy_key(&e, &mut k).unwrap();
                let v = if h.is_percpu() {
                    Vec::new()
                } else {
                    let mut v = vec![0u8; h.info().value_size as usize];
                    w.copy_value(&e, &mut v).unwrap();
                    v
                };
                out.items.push((e.bucket, k, v));
            }
            Err(e) if w.is_finished() => {
                assert!(out.end.is_none());
                out.end = Some(e);
            }
            Err(e) => out.errors.push((w.position(), e)),
        }
    }
    for _ in 0..3 {
        assert!(w.next().is_none());
        assert!(w.is_finished());
    }
    out
}

pub(super) fn open(g: &SyntheticGuest, view: &KernelView<impl PhysRead>, id: u32) -> HtabMap {
    let bpf = Bpf::new(view, &g.layout, g.map_idr);
    bpf.htab(&bpf.map_by_id(id).unwrap().unwrap()).unwrap()
}

/// A HASH map of 8 buckets with collisions, and an LRU_HASH map with 6-byte keys
/// and 3-byte values, vmalloc'd.
pub(super) fn sample() -> Vec<MapSpec> {
    let h = MapSpec::hash(1, "flows", 4, 12, 8)
        .entry_in_bucket(2, &key(1, 4), &bytes(1, 12))
        .entry_in_bucket(5, &key(2, 4), &bytes(2, 12))
        .entry_in_bucket(2, &key(3, 4), &bytes(3, 12))
        .entry_in_bucket(0, &key(4, 4), &bytes(4, 12))
        .entry_in_bucket(2, &key(5, 4), &bytes(5, 12))
        .entry_in_bucket(7, &key(6, 4), &bytes(6, 12));
    let mut lru = MapSpec::new(2, MapType::LRU_HASH, "lru", 6, 3, 3).vmalloc();
    for i in 0..5 {
        lru = lru.entry_in_bucket(i % 4, &key(i, 6), &bytes(i + 50, 3));
    }
    vec![h, lru]
}

/// Counts the backend's reads.
pub(super) struct Counting<M> {
    pub(super) inner: M,
    pub(super) reads: Cell<u32>,
}

impl<M: PhysRead> PhysRead for Counting<M> {
    type Error = M::Error;
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> core::result::Result<(), M::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read_phys(pa, buf)
    }
    fn ranges(&self) -> &[PhysRange] {
        self.inner.ranges()
    }
    fn read_phys_many(
        &self,
        ops: &mut [ReadOp<'_>],
    ) -> core::result::Result<(), crate::mem::ReadManyError<M::Error>> {
        self.inner.read_phys_many(ops)
    }
}

pub(super) fn limited(g: &SyntheticGuest, limits: Limits) -> KernelView<crate::mem::Ram<&[u8]>> {
    KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(limits)
}

pub(super) fn open_err(g: &SyntheticGuest, view: &KernelView<impl PhysRead>, id: u32) -> Error {
    let bpf = Bpf::new(view, &g.layout, g.map_idr);
    bpf.htab(&bpf.map_by_id(id).unwrap().unwrap()).unwrap_err()
}

/// Bucket 3 holds four elements; buckets 1 and 6 one each.
pub(super) fn chains() -> SyntheticGuest {
    let mut spec = MapSpec::hash(1, "h", 4, 4, 8).entry_in_bucket(1, &[1; 4], &[1; 4]);
    for i in 0..4 {
        spec = spec.entry_in_bucket(3, &[30 + i; 4], &[i; 4]);
    }
    spec = spec.entry_in_bucket(6, &[6; 4], &[6; 4]);
    build(SynthArch::X86_64 { five_level: false }, 2, vec![spec])
}

pub(super) fn corrupt_u32(g: &mut SyntheticGuest, id: u32, off: u32, v: u32) {
    let kva = g.maps.iter().find(|m| m.id == id).unwrap().kva;
    let pa = g.pa_of(Kva(kva.0 + u64::from(off)));
    g.ram.write_u32(pa, v);
}

pub(super) const CPUS: u32 = 4;

/// A per-CPU hash map of `n` elements with `key_size`-byte keys and 12-byte values.
pub(super) fn percpu_spec(
    id: u32,
    t: MapType,
    key_size: u32,
    n: u32,
    placement: PptrPlacement,
) -> MapSpec {
    let mut spec = MapSpec::new(id, t, "pcpu", key_size, 12, 16).pptr_placement(placement);
    for i in 0..n {
        let values = (0..CPUS).map(|c| pv(i, c, 12)).collect();
        spec = spec.percpu_entry_in_bucket(i % 3 * 5, &key(i, key_size as usize), values);
    }
    spec
}

pub(super) fn open_percpu(
    g: &SyntheticGuest,
    view: &KernelView<impl PhysRead>,
    id: u32,
    force: Option<PptrPlacement>,
) -> Result<HtabMap> {
    let bpf = Bpf::new(view, &g.layout, g.map_idr);
    bpf.percpu_htab(&bpf.map_by_id(id).unwrap().unwrap(), &g.offsets(), force)
}

/// The expected `(key, per-CPU values)` in walk order for `percpu_spec(.., n, ..)`.
pub(super) fn percpu_expect(key_size: u32, n: u32) -> Vec<(Vec<u8>, Vec<crate::bpf::PerCpuValue>)> {
    let mut order: Vec<u32> = (0..n).collect();
    order.sort_by_key(|i| i % 3);
    order
        .into_iter()
        .map(|i| {
            let values = (0..CPUS).map(|c| CpuCopy::Present(pv(i, c, 12))).collect();
            (key(i, key_size as usize), values)
        })
        .collect()
}
