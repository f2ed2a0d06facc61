//! Hash maps: HASH, LRU_HASH, PERCPU_HASH and LRU_PERCPU_HASH (see [`HtabMap`]).

mod open;
mod pptr;
#[cfg(test)]
mod testutil;
mod walk;

use crate::addr::{align_up, Kva};
use crate::bpf::percpu::{CpuCopy, PerCpuOffsets};
use crate::bpf::MapInfo;
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::HtabLayout;
use crate::mem::len_u64;

pub use pptr::{PptrDecision, PptrEvidence, PptrPlacement};
pub use walk::HtabWalk;

/// Bytes of the bucket array read per call: 256 bucket heads of a 16-byte `struct
/// bucket`.
pub const HEAD_BATCH_BYTES: usize = 4096;

/// The largest element (next pointer, key and value, or per-CPU pointer) read in one
/// piece. Bigger elements cost one read for the next pointer and one for each of the key
/// and the value when they are copied.
pub const ELEM_BUF: usize = 1024;

/// What an element holds after its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Values {
    /// The value itself.
    Inline,
    /// A `__percpu` pointer, placed as decided.
    PerCpu(PptrDecision),
}

/// Offsets inside an element, relative to its start, and inside the walker's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    /// `hash_node`.
    node: u64,
    /// `hash_node.pprev`.
    pprev: u64,
    /// The key.
    key: u64,
    /// The inline value (`key + round_up(key_size, 8)`).
    value: u64,
    /// The `__percpu` pointer under the decided placement.
    pptr: u64,
    /// `key + key_size` and `key + round_up(key_size, 8)`.
    cand: (u64, u64),
    /// The first byte read.
    lo: u64,
    /// Bytes read from `lo` to hold the whole element, when they fit [`ELEM_BUF`].
    span: Option<usize>,
    /// Where the next pointer, key, value and pointers are in the buffer (`x - lo`).
    at_node: usize,
    at_pprev: usize,
    at_key: usize,
    at_value: usize,
    at_pptr: usize,
    at_cand: (usize, usize),
    /// `key_size` and `value_size`.
    key_len: usize,
    value_len: usize,
}

/// A HASH, LRU_HASH, PERCPU_HASH or LRU_PERCPU_HASH map, checked and ready to walk.
///
/// `struct bpf_htab` embeds `struct bpf_map` at offset 0 and points at an array of
/// `n_buckets` `struct bucket`s (`n_buckets` is `roundup_pow_of_two(max_entries)`). Each
/// bucket's `head` is an `hlist_nulls_head`: a chain of `htab_elem`s linked through their
/// `hash_node.next`, ending at a *nulls marker*, a value with bit 0 set (the kernel's is
/// `(bucket index << 1) | 1`). An element holds its key at `htab_elem.key` and then, at
/// `key + round_up(key_size, 8)`, its value (HASH, LRU_HASH) or, for the per-CPU types, a
/// `__percpu` pointer whose place depends on the kernel (see [`PptrPlacement`]).
///
/// [`Bpf::htab`](crate::bpf::Bpf::htab) and [`Bpf::percpu_htab`](crate::bpf::Bpf::percpu_htab) check a map once and give an `HtabMap`;
/// [`HtabMap::walk`] gives an [`HtabWalk`], which yields every element bucket by bucket,
/// in chain order. The walk reads the bucket heads [`HEAD_BATCH_BYTES`] at a time and
/// each element (its next pointer, key and value together) with one read when it fits in
/// [`ELEM_BUF`] bytes, and it checks what it follows:
/// - `n_buckets` must be a power of two, equal `roundup_pow_of_two(max_entries)` (else
///   [`Error::Corrupt`]) and be at most [`Limits::htab_buckets`](crate::Limits) (else
///   [`Error::LimitExceeded`]), before the bucket array is read;
/// - a chain pointer must be a kernel pointer (upper half, 8-byte aligned), a nulls
///   marker must be its own bucket's, and an element's back link (`hash_node.pprev`)
///   must point at the link the walk followed to it; otherwise the bucket is read
///   again from its head (see below), and a bad pointer or marker read the same way
///   twice in a row ends that bucket with an [`Error::Corrupt`] and the walk goes on
///   with the next bucket;
/// - a chain longer than [`Limits::bucket_chain`](crate::Limits) (a cycle, say) ends
///   its bucket with [`Error::LimitExceeded`]; the walk goes on;
/// - an element that cannot be read is an error for that element; the walk goes on with
///   the next element when the element's next pointer can still be read, else with the
///   next bucket;
/// - a walk that visits more than `max_entries +`
///   [`HTAB_EXTRA_ELEMS`](crate::limits::HTAB_EXTRA_ELEMS) elements ends with
///   [`Error::LimitExceeded`].
///
/// **A running guest.** The map is read while the walk runs, as the kernel's lockless
/// lookups read it: a bucket that changed under the walk (an element freed, moved to
/// another bucket, or overtaken by a new head) is read again from a fresh head, and the
/// elements it already yielded are skipped, so every element is yielded once and only
/// while it was linked in its bucket. After [`Limits::bucket_reads`](crate::Limits)
/// reads of one bucket, the bucket is an [`Error::Unstable`] error and the walk goes
/// on. A back link that is wrong the same way on two reads in a row is memory that is
/// not changing (a guest stopped in the middle of an update): the element is taken as
/// the kernel would find it. A key can still be yielded twice, by two elements, when an
/// update replaced its element during the walk (the kernel links the new element before
/// it unlinks the old one): the library's memory source keeps the first.
/// [`HtabWalk::rereads`] counts the buckets read again.
///
/// ```
/// # #[cfg(feature = "synth")]
/// # fn main() -> Result<(), mapwalk_core::Error> {
/// use mapwalk_core::synth::{GuestBuilder, MapSpec};
/// use mapwalk_core::Bpf;
///
/// let mut g = GuestBuilder::x86_64(false);
/// g.add_map(
///     MapSpec::hash(3, "flows", 4, 8, 16)
///         .entry(&7u32.to_le_bytes(), &70u64.to_le_bytes())
///         .entry(&9u32.to_le_bytes(), &90u64.to_le_bytes()),
/// );
/// let guest = g.build();
/// let view = guest.view();
/// let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
/// let map = bpf.htab(&bpf.find_by_name("flows")?.unwrap())?;
/// let (mut key, mut value) = ([0u8; 4], [0u8; 8]);
/// let mut walk = map.walk(&view);
/// let mut sum = 0;
/// while let Some(entry) = walk.next_into(&mut key, &mut value) {
///     entry?;
///     sum += u64::from(u32::from_le_bytes(key)) * u64::from_le_bytes(value);
/// }
/// assert_eq!(sum, 7 * 70 + 9 * 90);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "synth"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HtabMap {
    info: MapInfo,
    layout: HtabLayout,
    buckets: Kva,
    n_buckets: u32,
    elem_size: u32,
    values: Values,
    geo: Geometry,
}

/// Where an element's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HtabValue {
    /// HASH, LRU_HASH: the value's kernel address.
    Inline(Kva),
    /// PERCPU_HASH, LRU_PERCPU_HASH: the `__percpu` pointer (see [`PerCpuOffsets`]).
    PerCpu(u64),
}

/// One element of a hash map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HtabEntry {
    /// Its bucket.
    pub bucket: u32,
    /// The address of its `struct htab_elem`.
    pub elem: Kva,
    /// The address of its key.
    pub key: Kva,
    /// Where its value is.
    pub value: HtabValue,
}

/// What an item of an [`HtabWalk`] was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HtabPos {
    /// The bucket.
    pub bucket: u32,
    /// The element, for an item about one element; `None` for one about the bucket
    /// (its head, a bad pointer in its chain, its chain's length or end).
    pub elem: Option<Kva>,
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn le_u64(buf: &[u8], at: usize) -> u64 {
    buf.get(at..at.saturating_add(8))
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Whether `v` is a kernel pointer to an 8-byte aligned object.
#[inline]
const fn is_kernel_ptr(v: u64) -> bool {
    v >> 63 == 1 && v & 7 == 0
}

impl Geometry {
    fn new(l: &HtabLayout, info: &MapInfo, values: Values) -> Self {
        let ks = u64::from(info.key_size);
        let rounded = align_up(ks, 8).unwrap_or(u64::MAX);
        let node = u64::from(l.elem_hash_node);
        let pprev = node.saturating_add(u64::from(l.node_pprev));
        let key = u64::from(l.elem_key);
        let value = key.saturating_add(rounded);
        let cand = (key.saturating_add(ks), value);
        let (pptr, end) = match values {
            Values::Inline => (value, value.saturating_add(u64::from(info.value_size))),
            Values::PerCpu(d) => (
                match d.placement {
                    PptrPlacement::KeySize => cand.0,
                    PptrPlacement::Aligned => cand.1,
                },
                // Covers both candidates: the probe reads them from the buffer.
                cand.1.saturating_add(8),
            ),
        };
        let lo = node.min(pprev).min(key);
        let hi = node.saturating_add(8).max(pprev.saturating_add(8)).max(end);
        let span = usize::try_from(hi.saturating_sub(lo))
            .ok()
            .filter(|&n| n <= ELEM_BUF);
        let at = |x: u64| usize_of(x.saturating_sub(lo));
        Self {
            node,
            pprev,
            key,
            value,
            pptr,
            cand,
            lo,
            span,
            at_node: at(node),
            at_pprev: at(pprev),
            at_key: at(key),
            at_value: at(value),
            at_pptr: at(pptr),
            at_cand: (at(cand.0), at(cand.1)),
            key_len: usize_of(ks),
            value_len: usize_of(u64::from(info.value_size)),
        }
    }
}

impl HtabMap {
    /// The map's metadata.
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    /// The address of the bucket array.
    pub fn buckets(&self) -> Kva {
        self.buckets
    }

    /// `bpf_htab.n_buckets`.
    pub fn n_buckets(&self) -> u32 {
        self.n_buckets
    }

    /// `bpf_htab.elem_size`.
    pub fn elem_size(&self) -> u32 {
        self.elem_size
    }

    /// Whether values are per-CPU.
    pub fn is_percpu(&self) -> bool {
        matches!(self.values, Values::PerCpu(_))
    }

    /// Where the `__percpu` pointers are, and why, for a per-CPU map.
    pub fn pptr_decision(&self) -> Option<PptrDecision> {
        match self.values {
            Values::PerCpu(d) => Some(d),
            Values::Inline => None,
        }
    }

    /// A walk over every element (see [`HtabWalk`]).
    pub fn walk<'a, K: KernelRead + ?Sized>(&self, mem: &'a K) -> HtabWalk<'a, K> {
        self.walk_inner(mem, false)
    }

    /// The address of bucket `b`'s head.
    fn head_kva(&self, b: u32) -> Result<Kva> {
        let off = u64::from(b)
            .saturating_mul(u64::from(self.layout.bucket_size))
            .saturating_add(u64::from(self.layout.bucket_head));
        self.buckets.checked_add(off).ok_or(Error::AddrOverflow {
            addr: self.buckets.0,
            len: off,
        })
    }

    fn check_len(need: usize, buf: &[u8]) -> Result<()> {
        if buf.len() != need {
            return Err(Error::BufferSize {
                need: len_u64(need),
                have: len_u64(buf.len()),
            });
        }
        Ok(())
    }

    fn wrong_type(&self, op: &'static str) -> Error {
        Error::WrongMapType {
            id: self.info.id,
            map_type: self.info.map_type,
            op,
        }
    }

    /// Fills `buf` (`key_size` bytes) with the key of `entry`, from the guest.
    ///
    /// # Errors
    /// [`Error::BufferSize`], or a read error.
    pub fn read_key<K: KernelRead + ?Sized>(
        &self,
        mem: &K,
        entry: &HtabEntry,
        buf: &mut [u8],
    ) -> Result<()> {
        Self::check_len(self.geo.key_len, buf)?;
        mem.read_kernel(entry.key, buf)
    }

    /// Fills `buf` (`value_size` bytes) with the value of `entry` of a HASH or LRU_HASH
    /// map, from the guest.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for a per-CPU map, [`Error::BufferSize`], or a read error.
    pub fn read_value<K: KernelRead + ?Sized>(
        &self,
        mem: &K,
        entry: &HtabEntry,
        buf: &mut [u8],
    ) -> Result<()> {
        let HtabValue::Inline(at) = entry.value else {
            return Err(self.wrong_type("inline value access"));
        };
        Self::check_len(self.geo.value_len, buf)?;
        mem.read_kernel(at, buf)
    }

    /// Fills `buf` (`value_size` bytes) with CPU `cpu`'s copy of the value of `entry` of
    /// a per-CPU map.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for a map that is not per-CPU, [`Error::BufferSize`], or
    /// the error reading the copy.
    pub fn read_cpu_value<K: KernelRead + ?Sized, B: AsRef<[u64]>>(
        &self,
        mem: &K,
        offsets: &PerCpuOffsets<B>,
        entry: &HtabEntry,
        cpu: u32,
        buf: &mut [u8],
    ) -> Result<CpuCopy> {
        let HtabValue::PerCpu(pptr) = entry.value else {
            return Err(self.wrong_type("per-CPU value access"));
        };
        Self::check_len(self.geo.value_len, buf)?;
        offsets.read_copy(mem, pptr, cpu, buf)
    }

    /// Every element's key and value, with the errors met on the way.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for a per-CPU map (see
    /// [`percpu_entries`](Self::percpu_entries)), or [`Error::LimitExceeded`] when
    /// `key_size` or `value_size` is above [`crate::Limits::value_size`]. Errors met
    /// while walking are in the result.
    #[cfg(any(feature = "alloc", test))]
    pub fn entries<K: KernelRead + ?Sized>(&self, mem: &K) -> Result<HtabEntries> {
        use alloc::vec;
        if self.is_percpu() {
            return Err(self.wrong_type("inline value collection"));
        }
        let ks = crate::bpf::percpu::alloc_len(mem, self.info.key_size, "map key size")?;
        let vs = crate::bpf::percpu::alloc_len(mem, self.info.value_size, "map value size")?;
        let mut out = HtabEntries::default();
        let mut walk = self.walk(mem);
        loop {
            let (mut key, mut value) = (vec![0u8; ks], vec![0u8; vs]);
            match walk.next_into(&mut key, &mut value) {
                None => break,
                Some(Ok(_)) => out.entries.push((key, value)),
                Some(Err(e)) if walk.is_finished() => out.end = Some(e),
                Some(Err(e)) => out.errors.push((walk.position(), e)),
            }
        }
        Ok(out)
    }

    /// Every element's key and per-CPU values (one per possible CPU), with the errors met
    /// on the way. An element one of whose copies cannot be read is an error.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for a map that is not per-CPU, or
    /// [`Error::LimitExceeded`] when `key_size` or `value_size` is above
    /// [`crate::Limits::value_size`]. Errors met while walking are in the result.
    #[cfg(any(feature = "alloc", test))]
    pub fn percpu_entries<K: KernelRead + ?Sized, B: AsRef<[u64]>>(
        &self,
        mem: &K,
        offsets: &PerCpuOffsets<B>,
    ) -> Result<PerCpuHtabEntries> {
        use alloc::vec;
        if !self.is_percpu() {
            return Err(self.wrong_type("per-CPU value collection"));
        }
        let ks = crate::bpf::percpu::alloc_len(mem, self.info.key_size, "map key size")?;
        crate::bpf::percpu::alloc_len(mem, self.info.value_size, "map value size")?;
        let mut out = PerCpuHtabEntries::default();
        let mut walk = self.walk(mem);
        loop {
            let mut key = vec![0u8; ks];
            let entry = match walk.next_into(&mut key, &mut []) {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(e)) if walk.is_finished() => {
                    out.end = Some(e);
                    continue;
                }
                Some(Err(e)) => {
                    out.errors.push((walk.position(), e));
                    continue;
                }
            };
            let HtabValue::PerCpu(pptr) = entry.value else {
                continue;
            };
            match offsets.read_copies(mem, pptr, self.info.value_size) {
                Ok(values) => out.entries.push((key, values)),
                Err(e) => out.errors.push((walk.position(), e)),
            }
        }
        Ok(out)
    }
}

/// Every element of a HASH or LRU_HASH map, as [`HtabMap::entries`] collects them.
#[cfg(any(feature = "alloc", test))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtabEntries {
    /// `(key, value)` of every element read, in walk order.
    pub entries: alloc::vec::Vec<(alloc::vec::Vec<u8>, alloc::vec::Vec<u8>)>,
    /// Errors for one element or one bucket; the walk went on after each.
    pub errors: alloc::vec::Vec<(Option<HtabPos>, Error)>,
    /// The error that ended the walk early, if one did.
    pub end: Option<Error>,
}

/// Every element of a PERCPU_HASH or LRU_PERCPU_HASH map, as
/// [`HtabMap::percpu_entries`] collects them.
#[cfg(any(feature = "alloc", test))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerCpuHtabEntries {
    /// `(key, values by CPU)` of every element read, in walk order.
    pub entries: alloc::vec::Vec<(
        alloc::vec::Vec<u8>,
        alloc::vec::Vec<crate::bpf::percpu::PerCpuValue>,
    )>,
    /// Errors for one element or one bucket; the walk went on after each.
    pub errors: alloc::vec::Vec<(Option<HtabPos>, Error)>,
    /// The error that ended the walk early, if one did.
    pub end: Option<Error>,
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::bpf::htab::testutil::*;
    use crate::bpf::PossibleCpus;
    use crate::bpf::{Bpf, MapType};
    use crate::error::PhysErrorKind;
    use crate::kernel::KernelView;
    use crate::limits::Limits;
    use crate::synth::{FaultyMem, MapSpec, SynthArch};

    #[test]
    fn the_value_size_cap_of_the_allocating_reader() {
        let g = build(SynthArch::X86_64 { five_level: false }, 2, sample());
        let at = limited(
            &g,
            Limits {
                value_size: 12,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(open(&g, &at, 1).entries(&at).unwrap().entries.len(), 6);
        let past = limited(
            &g,
            Limits {
                value_size: 11,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(
            open(&g, &past, 1).entries(&past),
            Err(Error::LimitExceeded {
                what: "map value size",
                limit: 11,
                at: 12
            })
        );
    }

    #[test]
    fn per_cpu_copies_in_vmalloc_and_spanning_pages() {
        for arch in ARCHES {
            let size = 3 * 4096 + 100;
            let mut spec = MapSpec::new(1, MapType::LRU_PERCPU_HASH, "big", 6, size, 4)
                .vmalloc()
                .percpu_vmalloc()
                .pptr_placement(PptrPlacement::Aligned);
            for i in 0..3 {
                let values = (0..CPUS).map(|c| pv(i, c, size as usize)).collect();
                spec = spec.percpu_entry_in_bucket(i, &key(i, 6), values);
            }
            let g = build(arch, CPUS, vec![spec]);
            let view = g.view();
            let h = open_percpu(&g, &view, 1, None).unwrap();
            assert_eq!(h.pptr_decision().unwrap().placement, PptrPlacement::Aligned);
            let offsets = g.offsets();
            let mut w = h.walk(&view);
            let mut k = [0u8; 6];
            let mut buf = vec![0u8; size as usize];
            for i in 0..3 {
                let e = w.next_into(&mut k, &mut []).unwrap().unwrap();
                assert_eq!(k[..], key(i, 6)[..]);
                for cpu in 0..CPUS {
                    assert_eq!(
                        w.copy_cpu_value(&offsets, &e, cpu, &mut buf),
                        Ok(CpuCopy::Present(()))
                    );
                    assert_eq!(buf, pv(i, cpu, size as usize), "{arch:?} {i} {cpu}");
                }
                assert_eq!(
                    w.copy_cpu_value(&offsets, &e, CPUS, &mut buf),
                    Ok(CpuCopy::NoSuchCpu)
                );
                assert!(matches!(
                    w.copy_value(&e, &mut buf),
                    Err(Error::WrongMapType { .. })
                ));
            }
            assert!(w.next().is_none());
        }
    }

    #[test]
    fn a_missing_cpu_is_distinct_from_cpu_0() {
        let g = build(
            SynthArch::X86_64 { five_level: false },
            CPUS,
            vec![percpu_spec(
                1,
                MapType::PERCPU_HASH,
                12,
                3,
                PptrPlacement::KeySize,
            )],
        );
        let view = g.view();
        // The caller over-counts: the slots past the possible CPUs are zero.
        let mut buf = [0u64; 8];
        let offsets = PerCpuOffsets::read(
            &view,
            g.symbols.per_cpu_offset,
            PossibleCpus::count(8).unwrap(),
            &mut buf[..],
        )
        .unwrap();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let h = bpf
            .percpu_htab(&bpf.map_by_id(1).unwrap().unwrap(), &offsets, None)
            .unwrap();
        assert_eq!(h.pptr_decision().unwrap().placement, PptrPlacement::KeySize);
        let all = h.percpu_entries(&view, &offsets).unwrap();
        for (i, (_, values)) in all.entries.iter().enumerate() {
            assert_eq!(values.len(), 8);
            assert!(values[..4].iter().all(CpuCopy::is_present), "{i}");
            assert!(values[4..].iter().all(|v| *v == CpuCopy::NoSuchCpu));
            assert_ne!(values[4], values[0]);
        }
    }

    #[test]
    fn an_unreadable_per_cpu_copy_is_an_error_for_that_element() {
        let g = build(
            SynthArch::X86_64 { five_level: false },
            CPUS,
            vec![
                percpu_spec(1, MapType::PERCPU_HASH, 6, 6, PptrPlacement::Aligned).percpu_vmalloc(),
            ],
        );
        let elems = &g.htabs[&1].elems;
        // CPU 2's copy of element 4 (bucket 5, second in its chain).
        let victim = elems[4].pptr.unwrap().wrapping_add(g.per_cpu_offsets[2]);
        let mem = FaultyMem::new(
            g.ram.as_ram(),
            g.pa_of(Kva(victim + 8)),
            1,
            PhysErrorKind::Io,
        );
        let view = KernelView::new(&mem, g.paging, g.addrs);
        // The probe looks at translations, not at the bytes: all six elements vote.
        let h = open_percpu(&g, &view, 1, None).unwrap();
        assert_eq!(
            h.pptr_decision(),
            Some(PptrDecision {
                placement: PptrPlacement::Aligned,
                evidence: PptrEvidence::Exclusive {
                    elements: 6,
                    probed: 6
                }
            })
        );
        let all = h.percpu_entries(&view, &g.offsets()).unwrap();
        let mut expect = percpu_expect(6, 6);
        expect.retain(|(k, _)| k[0] != 4);
        assert_eq!(all.entries, expect);
        assert_eq!(all.errors.len(), 1);
        assert_eq!(
            all.errors[0].0,
            Some(HtabPos {
                bucket: 5,
                elem: Some(elems[4].kva)
            })
        );
        assert!(matches!(
            all.errors[0].1,
            Error::Phys {
                kind: PhysErrorKind::Io,
                ..
            }
        ));
    }

    #[test]
    fn a_zero_per_cpu_pointer_is_an_error_for_that_element() {
        let mut g = build(
            SynthArch::X86_64 { five_level: false },
            CPUS,
            vec![percpu_spec(
                1,
                MapType::PERCPU_HASH,
                12,
                4,
                PptrPlacement::KeySize,
            )],
        );
        let elem = g.htabs[&1].elems[1].kva;
        let at = Kva(elem.0 + 48 + 12);
        let pa = g.pa_of(at);
        g.ram.write_u64(pa, 0);
        let view = g.view();
        let h = open_percpu(&g, &view, 1, None).unwrap();
        let all = h.percpu_entries(&view, &g.offsets()).unwrap();
        assert_eq!(all.entries.len(), 3);
        assert_eq!(
            all.errors,
            [(
                Some(HtabPos {
                    bucket: 5,
                    elem: Some(elem)
                }),
                Error::Corrupt {
                    what: "__percpu pointer (zero or misaligned)",
                    at,
                    value: 0
                }
            )]
        );
    }

    #[test]
    fn per_cpu_maps_in_the_direct_map_of_many_cpus() {
        // 64 possible CPUs and per-CPU copies in the first chunk.
        let cpus = 64;
        let mut spec = MapSpec::new(1, MapType::PERCPU_HASH, "many", 6, 8, 2);
        for i in 0..2 {
            let values = (0..cpus)
                .map(|c| (u64::from(i) << 32 | u64::from(c)).to_le_bytes().to_vec())
                .collect();
            spec = spec.percpu_entry(&key(i, 6), values);
        }
        let g = build(SynthArch::Aarch64 { granule_shift: 16 }, cpus, vec![spec]);
        let view = g.view();
        let offsets = PerCpuOffsets::read_vec(
            &view,
            g.symbols.per_cpu_offset,
            PossibleCpus::NrCpuIds(g.symbols.nr_cpu_ids),
        )
        .unwrap();
        assert_eq!(offsets.possible(), 64);
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let h = bpf
            .percpu_htab(&bpf.map_by_id(1).unwrap().unwrap(), &offsets, None)
            .unwrap();
        assert_eq!(h.pptr_decision().unwrap().placement, PptrPlacement::KeySize);
        let all = h.percpu_entries(&view, &offsets).unwrap();
        assert_eq!(all.entries.len(), 2);
        for (k, values) in &all.entries {
            let i = u64::from(k[0]);
            for (c, v) in values.iter().enumerate() {
                assert_eq!(
                    *v,
                    CpuCopy::Present((i << 32 | c as u64).to_le_bytes().to_vec())
                );
            }
        }
    }
}
