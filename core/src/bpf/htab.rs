//! Hash maps: HASH, LRU_HASH, PERCPU_HASH and LRU_PERCPU_HASH (see [`HtabMap`]).

use core::fmt;
use core::iter::FusedIterator;

use crate::addr::{align_up, low_mask, Kva};
use crate::bpf::percpu::{check_percpu_value_size, check_pptr, CpuCopy, PerCpuOffsets};
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::HtabLayout;
use crate::limits::{HTAB_EXTRA_ELEMS, PPTR_PROBE_ELEMS};
use crate::mem::len_u64;

/// Bytes of the bucket array read per call: 256 bucket heads of a 16-byte `struct
/// bucket`.
pub const HEAD_BATCH_BYTES: usize = 4096;

/// The largest element (next pointer, key and value, or per-CPU pointer) read in one
/// piece. Bigger elements cost one read for the next pointer and one for each of the key
/// and the value when they are copied.
pub const ELEM_BUF: usize = 1024;

/// Where a PERCPU_HASH or LRU_PERCPU_HASH element keeps its `__percpu` pointer.
///
/// Older kernels (6.1 as Debian ships it) store it right after the key, at
/// `key + key_size`, unaligned when `key_size` is not a multiple of 8; upstream commit
/// 11ba7ce076e5 (2025, also in stable branches) moved it to `key + round_up(key_size,
/// 8)`. Neither BTF nor the version number settles which a kernel does, so
/// [`Bpf::percpu_htab`] decides per map from the data (see [`PptrEvidence`]) unless told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PptrPlacement {
    /// `key + key_size` (older kernels).
    KeySize,
    /// `key + round_up(key_size, 8)` (newer kernels).
    Aligned,
}

/// Why [`Bpf::percpu_htab`] chose a [`PptrPlacement`].
///
/// The rule: for each of the first [`PPTR_PROBE_ELEMS`] elements, a candidate pointer is
/// *plausible* when it is non-zero, 8-byte aligned, and the first and last byte of its
/// per-CPU copy translate for every possible CPU. A placement under which two probed
/// elements' per-CPU objects (`round_up(value_size, 8)` bytes each) would overlap is
/// plausible in none: real allocations never overlap (this unmasks a pointer read one
/// to seven bytes too far on, whose value is the real one shifted right by whole
/// bytes). Then a placement plausible in some element
/// where the other is not wins, unless the other also wins somewhere (then the elements
/// disagree: [`Error::Corrupt`]). When both are plausible in every element that has a
/// plausible one, the pointer at `key + key_size` may be the newer placement's pointer
/// shifted over the key's padding: if its low `round_up(key_size, 8) - key_size` bytes
/// are zero in all of them (padding, where a real pointer would have address bits), the
/// newer placement wins; otherwise [`Error::Ambiguous`], and the caller must force one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PptrEvidence {
    /// `key_size` is a multiple of 8: both placements are the same bytes.
    KeyAligned,
    /// The caller chose.
    Forced,
    /// In `elements` of the `probed` elements only the chosen placement was plausible
    /// (and in none only the other).
    Exclusive {
        /// Elements that voted for the placement alone.
        elements: u32,
        /// Elements looked at.
        probed: u32,
    },
    /// Both placements were plausible in `elements` elements, and the pointer at
    /// `key + key_size` had zero padding bytes in all of them.
    PaddingTieBreak {
        /// Elements where both were plausible.
        elements: u32,
    },
    /// No element had a plausible pointer at either placement (an empty map, or one
    /// whose per-CPU copies cannot be read): the newer placement is assumed, and reading
    /// any element's copies will fail on its own.
    NoEvidence {
        /// Elements looked at.
        probed: u32,
    },
}

/// The placement of a per-CPU hash map's `__percpu` pointers, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PptrDecision {
    /// The placement.
    pub placement: PptrPlacement,
    /// Why.
    pub evidence: PptrEvidence,
}

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
/// [`Bpf::htab`] and [`Bpf::percpu_htab`] check a map once and give an `HtabMap`;
/// [`HtabMap::walk`] gives an [`HtabWalk`], which yields every element bucket by bucket,
/// in chain order. The walk reads the bucket heads [`HEAD_BATCH_BYTES`] at a time and
/// each element (its next pointer, key and value together) with one read when it fits in
/// [`ELEM_BUF`] bytes, and it checks what it follows:
/// - `n_buckets` must be a power of two, equal `roundup_pow_of_two(max_entries)` (else
///   [`Error::Corrupt`]) and be at most [`Limits::htab_buckets`](crate::Limits) (else
///   [`Error::LimitExceeded`]), before the bucket array is read;
/// - a chain pointer must be a kernel pointer (upper half, 8-byte aligned), and a nulls
///   marker must be its own bucket's; otherwise that bucket ends with an
///   [`Error::Corrupt`] and the walk goes on with the next bucket;
/// - a chain longer than [`Limits::bucket_chain`](crate::Limits) (a cycle, say) ends
///   its bucket with [`Error::LimitExceeded`]; the walk goes on;
/// - an element that cannot be read is an error for that element; the walk goes on with
///   the next element when the element's next pointer can still be read, else with the
///   next bucket;
/// - a walk that visits more than `max_entries +`
///   [`HTAB_EXTRA_ELEMS`](crate::limits::HTAB_EXTRA_ELEMS) elements ends with
///   [`Error::LimitExceeded`].
///
/// The map is read while the walk runs: walk a paused guest.
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
        let lo = node.min(key);
        let hi = node.saturating_add(8).max(end);
        let span = usize::try_from(hi.saturating_sub(lo))
            .ok()
            .filter(|&n| n <= ELEM_BUF);
        let at = |x: u64| usize_of(x.saturating_sub(lo));
        Self {
            node,
            key,
            value,
            pptr,
            cand,
            lo,
            span,
            at_node: at(node),
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

    fn walk_inner<'a, K: KernelRead + ?Sized>(&self, mem: &'a K, probe: bool) -> HtabWalk<'a, K> {
        HtabWalk {
            mem,
            map: *self,
            probe,
            next_bucket: 0,
            heads: [0; HEAD_BATCH_BYTES],
            batch_first: 0,
            batch_len: 0,
            batch_ok: false,
            chain: None,
            elem: [0; ELEM_BUF],
            buffered: false,
            current: None,
            pos: None,
            visited: 0,
            max_visits: u64::from(self.info.max_entries)
                .saturating_add(u64::from(HTAB_EXTRA_ELEMS)),
            done: false,
        }
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

/// The chain being followed.
#[derive(Debug, Clone, Copy)]
struct Chain {
    bucket: u32,
    /// The next pointer to follow.
    next: u64,
    /// Where `next` was read from.
    from: Kva,
    /// Elements visited in this chain.
    len: u32,
}

/// What one step of the walk came to.
enum Step {
    Entry(HtabEntry),
    /// An error for one element or bucket; the walk goes on.
    Skip(Error),
    /// An error that ends the walk.
    End(Error),
    Done,
}

/// A walk over every element of a hash map, bucket by bucket, each bucket's chain in
/// order. Yields [`HtabEntry`]s: where the element, its key and its value are.
///
/// After an `Ok` item, [`key`](Self::key) and [`value`](Self::value) give the bytes the
/// walk already read (for elements of up to [`ELEM_BUF`] bytes), and
/// [`copy_key`](Self::copy_key), [`copy_value`](Self::copy_value) and
/// [`copy_cpu_value`](Self::copy_cpu_value) fill caller buffers, from those bytes when
/// they can. [`next_into`](Self::next_into) does both in one call.
///
/// **Errors:** an error about one element or one bucket is yielded and the walk goes on
/// ([`position`](Self::position) says which); an error that ends the walk (the element
/// cap) is yielded once, and the walk is **fused**: `None` forever after it or after the
/// last element. [`is_finished`](Self::is_finished) tells the two kinds apart. The
/// checks are listed at [`HtabMap`]. Nothing is allocated; the walk holds about 5 KiB of
/// buffers.
pub struct HtabWalk<'a, K: ?Sized> {
    mem: &'a K,
    map: HtabMap,
    /// Probing for the per-CPU pointer placement: do not check the pointer.
    probe: bool,
    next_bucket: u32,
    heads: [u8; HEAD_BATCH_BYTES],
    batch_first: u32,
    /// Buckets whose heads `heads` holds (from `batch_first`).
    batch_len: u32,
    /// Whether the batch was read; if not, heads are read one at a time.
    batch_ok: bool,
    chain: Option<Chain>,
    elem: [u8; ELEM_BUF],
    /// Whether `elem` holds the current entry's element.
    buffered: bool,
    current: Option<HtabEntry>,
    pos: Option<HtabPos>,
    visited: u64,
    max_visits: u64,
    done: bool,
}

impl<K: ?Sized> fmt::Debug for HtabWalk<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HtabWalk")
            .field("map", &self.map.info.id)
            .field("next_bucket", &self.next_bucket)
            .field("chain", &self.chain)
            .field("current", &self.current)
            .field("visited", &self.visited)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<K: KernelRead + ?Sized> HtabWalk<'_, K> {
    /// What the last item was about.
    pub fn position(&self) -> Option<HtabPos> {
        self.pos
    }

    /// Whether the walk has ended: after the last element, or after an error that ended
    /// it. An `Err` item with `is_finished()` false was about one element or bucket.
    pub fn is_finished(&self) -> bool {
        self.done
    }

    /// Elements visited so far.
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// The map being walked.
    pub fn map(&self) -> &HtabMap {
        &self.map
    }

    /// The key of the last entry yielded, when the walk read its element whole.
    pub fn key(&self) -> Option<&[u8]> {
        self.current?;
        if !self.buffered {
            return None;
        }
        let g = &self.map.geo;
        self.elem.get(g.at_key..g.at_key.saturating_add(g.key_len))
    }

    /// The value of the last entry yielded (HASH, LRU_HASH), when the walk read its
    /// element whole.
    pub fn value(&self) -> Option<&[u8]> {
        self.current?;
        if !self.buffered || self.map.is_percpu() {
            return None;
        }
        let g = &self.map.geo;
        self.elem
            .get(g.at_value..g.at_value.saturating_add(g.value_len))
    }

    fn is_current(&self, entry: &HtabEntry) -> bool {
        self.buffered && self.current.as_ref() == Some(entry)
    }

    /// Fills `buf` (`key_size` bytes) with the key of `entry`: from what the walk read
    /// when `entry` is the last entry yielded, else from the guest.
    ///
    /// # Errors
    /// As [`HtabMap::read_key`].
    pub fn copy_key(&self, entry: &HtabEntry, buf: &mut [u8]) -> Result<()> {
        match self.key().filter(|_| self.is_current(entry)) {
            Some(key) => {
                HtabMap::check_len(key.len(), buf)?;
                buf.copy_from_slice(key);
                Ok(())
            }
            None => self.map.read_key(self.mem, entry, buf),
        }
    }

    /// Fills `buf` (`value_size` bytes) with the value of `entry` (HASH, LRU_HASH): from
    /// what the walk read when `entry` is the last entry yielded, else from the guest.
    ///
    /// # Errors
    /// As [`HtabMap::read_value`].
    pub fn copy_value(&self, entry: &HtabEntry, buf: &mut [u8]) -> Result<()> {
        match self.value().filter(|_| self.is_current(entry)) {
            Some(value) => {
                HtabMap::check_len(value.len(), buf)?;
                buf.copy_from_slice(value);
                Ok(())
            }
            None => self.map.read_value(self.mem, entry, buf),
        }
    }

    /// Fills `buf` (`value_size` bytes) with CPU `cpu`'s copy of the value of `entry`
    /// (PERCPU_HASH, LRU_PERCPU_HASH).
    ///
    /// # Errors
    /// As [`HtabMap::read_cpu_value`].
    pub fn copy_cpu_value<B: AsRef<[u64]>>(
        &self,
        offsets: &PerCpuOffsets<B>,
        entry: &HtabEntry,
        cpu: u32,
        buf: &mut [u8],
    ) -> Result<CpuCopy> {
        self.map.read_cpu_value(self.mem, offsets, entry, cpu, buf)
    }

    /// The next entry, with its key copied into `key` (`key_size` bytes) and, for HASH
    /// and LRU_HASH, its value into `value` (`value_size` bytes; empty for the per-CPU
    /// types, whose copies [`copy_cpu_value`](Self::copy_cpu_value) reads).
    ///
    /// A buffer of the wrong size is an [`Error::BufferSize`] item that does not advance
    /// the walk; an entry whose key or value cannot be copied is an error for that entry.
    pub fn next_into(&mut self, key: &mut [u8], value: &mut [u8]) -> Option<Result<HtabEntry>> {
        if self.done {
            return None;
        }
        let want = if self.map.is_percpu() {
            0
        } else {
            self.map.geo.value_len
        };
        if let Err(e) =
            HtabMap::check_len(self.map.geo.key_len, key).and(HtabMap::check_len(want, value))
        {
            return Some(Err(e));
        }
        let entry = match self.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        let copied = if self.buffered {
            // The common case: both pieces are in the element just read.
            let g = &self.map.geo;
            let k = self.elem.get(g.at_key..g.at_key.saturating_add(g.key_len));
            let v = self.elem.get(g.at_value..g.at_value.saturating_add(want));
            match (k, v) {
                (Some(k), Some(v)) => {
                    key.copy_from_slice(k);
                    if want != 0 {
                        value.copy_from_slice(v);
                    }
                    Ok(())
                }
                _ => Err(Error::BufferSize {
                    need: len_u64(g.at_value.saturating_add(want)),
                    have: len_u64(ELEM_BUF),
                }),
            }
        } else {
            self.copy_key(&entry, key).and_then(|()| {
                if want == 0 {
                    Ok(())
                } else {
                    self.copy_value(&entry, value)
                }
            })
        };
        Some(copied.map(|()| entry))
    }

    /// The candidate per-CPU pointers of `entry` (at `key + key_size` and at
    /// `key + round_up(key_size, 8)`).
    fn candidates(&self, entry: &HtabEntry) -> Result<(u64, u64)> {
        let g = &self.map.geo;
        if self.is_current(entry) {
            return Ok((
                le_u64(&self.elem, g.at_cand.0),
                le_u64(&self.elem, g.at_cand.1),
            ));
        }
        let at = |off: u64| {
            entry.elem.checked_add(off).ok_or(Error::AddrOverflow {
                addr: entry.elem.0,
                len: off,
            })
        };
        Ok((
            self.mem.read_kernel_u64(at(g.cand.0)?)?,
            self.mem.read_kernel_u64(at(g.cand.1)?)?,
        ))
    }

    /// Reads the heads of the buckets from `b` on, as many as fit [`HEAD_BATCH_BYTES`].
    fn load_batch(&mut self, b: u32) {
        let stride = usize_of(u64::from(self.map.layout.bucket_size)).max(8);
        let per = HEAD_BATCH_BYTES
            .saturating_sub(8)
            .checked_div(stride)
            .unwrap_or(0)
            .saturating_add(1);
        let left = usize_of(u64::from(self.map.n_buckets.saturating_sub(b)));
        let n = per.min(left).max(1);
        let len = n.saturating_sub(1).saturating_mul(stride).saturating_add(8);
        self.batch_first = b;
        self.batch_len = u32::try_from(n).unwrap_or(0);
        self.batch_ok = match (self.map.head_kva(b), self.heads.get_mut(..len)) {
            (Ok(at), Some(buf)) => self.mem.read_kernel(at, buf).is_ok(),
            _ => false,
        };
    }

    /// Bucket `b`'s head pointer and its address.
    fn head(&mut self, b: u32) -> Result<(u64, Kva)> {
        let at = self.map.head_kva(b)?;
        let inside = b
            .checked_sub(self.batch_first)
            .filter(|&i| i < self.batch_len);
        let i = match inside {
            Some(i) => i,
            None => {
                self.load_batch(b);
                0
            }
        };
        if !self.batch_ok {
            // The batch could not be read whole: this bucket on its own.
            return Ok((self.mem.read_kernel_u64(at)?, at));
        }
        let off = usize_of(u64::from(i).saturating_mul(u64::from(self.map.layout.bucket_size)));
        Ok((le_u64(&self.heads, off), at))
    }

    /// Reads the element whose `hash_node` is at `ptr`: the entry and its next pointer,
    /// or the error and the next pointer if it could still be read.
    fn read_elem(
        &mut self,
        bucket: u32,
        ptr: u64,
    ) -> core::result::Result<(HtabEntry, u64), (Error, Option<u64>)> {
        let g = self.map.geo;
        let node = Kva(ptr);
        let elem = node.checked_sub(g.node).ok_or((
            Error::AddrOverflow {
                addr: ptr,
                len: g.node,
            },
            None,
        ))?;
        let at = |off: u64| {
            elem.checked_add(off).ok_or(Error::AddrOverflow {
                addr: elem.0,
                len: off,
            })
        };
        let key = at(g.key).map_err(|e| (e, None))?;
        let percpu = self.map.is_percpu();
        let (next, pptr) = match g.span.and_then(|n| self.elem.get_mut(..n)) {
            Some(buf) => {
                let start = at(g.lo).map_err(|e| (e, None))?;
                if let Err(e) = self.mem.read_kernel(start, buf) {
                    // Perhaps only the key or value is unreadable: try the link alone.
                    return Err((e, self.mem.read_kernel_u64(node).ok()));
                }
                self.buffered = true;
                (le_u64(buf, g.at_node), le_u64(buf, g.at_pptr))
            }
            None => {
                let next = self.mem.read_kernel_u64(node).map_err(|e| (e, None))?;
                let pptr = if percpu {
                    at(g.pptr)
                        .and_then(|p| self.mem.read_kernel_u64(p))
                        .map_err(|e| (e, Some(next)))?
                } else {
                    0
                };
                (next, pptr)
            }
        };
        let value = if percpu {
            if !self.probe {
                at(g.pptr)
                    .and_then(|p| check_pptr(pptr, p))
                    .map_err(|e| (e, Some(next)))?;
            }
            HtabValue::PerCpu(pptr)
        } else {
            HtabValue::Inline(at(g.value).map_err(|e| (e, Some(next)))?)
        };
        Ok((
            HtabEntry {
                bucket,
                elem,
                key,
                value,
            },
            next,
        ))
    }

    fn step(&mut self) -> Step {
        // Each pass reads one bucket head (at most `n_buckets` of them) or follows one
        // chain pointer (at most `max_visits` of them): the loop ends.
        loop {
            let Some(mut chain) = self.chain else {
                let b = self.next_bucket;
                if b >= self.map.n_buckets {
                    return Step::Done;
                }
                self.next_bucket = b.saturating_add(1);
                self.pos = Some(HtabPos {
                    bucket: b,
                    elem: None,
                });
                match self.head(b) {
                    Ok((next, from)) => {
                        self.chain = Some(Chain {
                            bucket: b,
                            next,
                            from,
                            len: 0,
                        });
                        continue;
                    }
                    Err(e) => return Step::Skip(e),
                }
            };
            let ptr = chain.next;
            self.pos = Some(HtabPos {
                bucket: chain.bucket,
                elem: None,
            });
            if ptr & 1 == 1 {
                self.chain = None;
                if ptr != (u64::from(chain.bucket) << 1) | 1 {
                    return Step::Skip(Error::Corrupt {
                        what: "hash bucket chain end (the nulls marker of another bucket)",
                        at: chain.from,
                        value: ptr,
                    });
                }
                continue;
            }
            if !is_kernel_ptr(ptr) {
                self.chain = None;
                return Step::Skip(Error::Corrupt {
                    what: "hash bucket chain pointer (not a kernel pointer)",
                    at: chain.from,
                    value: ptr,
                });
            }
            let limit = self.mem.limits().bucket_chain;
            if chain.len >= limit {
                self.chain = None;
                return Step::Skip(Error::LimitExceeded {
                    what: "hash bucket chain",
                    limit: u64::from(limit),
                    at: u64::from(chain.bucket),
                });
            }
            if self.visited >= self.max_visits {
                return Step::End(Error::LimitExceeded {
                    what: "hash map elements (max_entries + HTAB_EXTRA_ELEMS)",
                    limit: self.max_visits,
                    at: u64::from(chain.bucket),
                });
            }
            chain.len = chain.len.saturating_add(1);
            self.visited = self.visited.saturating_add(1);
            let node = Kva(ptr);
            self.pos = Some(HtabPos {
                bucket: chain.bucket,
                elem: node.checked_sub(self.map.geo.node),
            });
            match self.read_elem(chain.bucket, ptr) {
                Ok((entry, next)) => {
                    chain.next = next;
                    chain.from = node;
                    self.chain = Some(chain);
                    return Step::Entry(entry);
                }
                Err((e, next)) => {
                    self.buffered = false;
                    self.chain = next.map(|next| Chain {
                        next,
                        from: node,
                        ..chain
                    });
                    return Step::Skip(e);
                }
            }
        }
    }
}

impl<K: KernelRead + ?Sized> Iterator for HtabWalk<'_, K> {
    type Item = Result<HtabEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.current = None;
        self.buffered = false;
        match self.step() {
            Step::Entry(entry) => {
                self.current = Some(entry);
                Some(Ok(entry))
            }
            Step::Skip(e) => Some(Err(e)),
            Step::End(e) => {
                self.done = true;
                self.chain = None;
                Some(Err(e))
            }
            Step::Done => {
                self.done = true;
                self.pos = None;
                None
            }
        }
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for HtabWalk<'_, K> {}

/// What the probe saw: elements where only one placement, or both, were plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Probe {
    probed: u32,
    only_key_size: u32,
    only_aligned: u32,
    both: u32,
    /// Whether the pointer at `key + key_size` had zero padding bytes in every element
    /// where both were plausible.
    both_padding_zero: bool,
}

impl Probe {
    /// The decision the [`PptrEvidence`] rule draws from what was seen.
    fn decide(&self, map: Kva) -> Result<PptrDecision> {
        let decision = |placement, evidence| {
            Ok(PptrDecision {
                placement,
                evidence,
            })
        };
        match (self.only_key_size, self.only_aligned) {
            (0, 0) => {}
            (a, 0) => {
                return decision(
                    PptrPlacement::KeySize,
                    PptrEvidence::Exclusive {
                        elements: a,
                        probed: self.probed,
                    },
                )
            }
            (0, b) => {
                return decision(
                    PptrPlacement::Aligned,
                    PptrEvidence::Exclusive {
                        elements: b,
                        probed: self.probed,
                    },
                )
            }
            (a, b) => {
                return Err(Error::Corrupt {
                    what: "per-CPU pointer placement (elements disagree: key_size votes << 32 \
                           | aligned votes)",
                    at: map,
                    value: (u64::from(a) << 32) | u64::from(b),
                })
            }
        }
        if self.both == 0 {
            return decision(
                PptrPlacement::Aligned,
                PptrEvidence::NoEvidence {
                    probed: self.probed,
                },
            );
        }
        if self.both_padding_zero {
            return decision(
                PptrPlacement::Aligned,
                PptrEvidence::PaddingTieBreak {
                    elements: self.both,
                },
            );
        }
        Err(Error::Ambiguous {
            what: "the per-CPU pointer placement of a hash map (force one)",
            at: map,
        })
    }
}

/// Elements the probe looks at ([`PPTR_PROBE_ELEMS`]).
const PROBE_SLOTS: usize = PPTR_PROBE_ELEMS;

/// Whether objects of `stride` bytes at each of `starts` (at most [`PROBE_SLOTS`]) are
/// pairwise disjoint.
fn disjoint(starts: impl Iterator<Item = u64>, stride: u64) -> bool {
    let mut sorted = [0u64; PROBE_SLOTS];
    let mut n = 0usize;
    for (slot, s) in sorted.iter_mut().zip(starts) {
        *slot = s;
        n = n.saturating_add(1);
    }
    let sorted = sorted.get_mut(..n).unwrap_or_default();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .all(|w| matches!(w, [x, y] if y.wrapping_sub(*x) >= stride))
}

/// Whether `pptr` can be a `__percpu` pointer to `size` bytes: non-zero, aligned, and
/// the first and last byte of every possible CPU's copy translate.
fn plausible<K: KernelRead + ?Sized, B: AsRef<[u64]>>(
    mem: &K,
    offsets: &PerCpuOffsets<B>,
    pptr: u64,
    size: u32,
) -> bool {
    if pptr == 0 || pptr & 7 != 0 {
        return false;
    }
    let last = u64::from(size.saturating_sub(1));
    (0..offsets.possible()).all(|cpu| match offsets.copy_kva(pptr, cpu) {
        CpuCopy::NoSuchCpu => true,
        CpuCopy::Present(va) => {
            va.checked_add(last)
                .is_some_and(|end| mem.kva_to_pa(end).is_ok())
                && mem.kva_to_pa(va).is_ok()
        }
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Reads `bpf_htab` and checks it against `map`.
    fn open_htab(&self, map: &MapInfo, values: Values) -> Result<HtabMap> {
        let layout = self
            .layout
            .htab
            .ok_or(Error::LayoutMissing { what: "bpf_htab" })?;
        if layout.bucket_size < 8 || layout.bucket_head.saturating_add(8) > layout.bucket_size {
            return Err(Error::LayoutMissing {
                what: "struct bucket (its head does not fit its stride)",
            });
        }
        if map.key_size == 0 || map.value_size == 0 || map.max_entries == 0 {
            return Err(Error::Corrupt {
                what: "hash map key_size, value_size or max_entries (zero)",
                at: map.kva,
                value: 0,
            });
        }
        let percpu = matches!(values, Values::PerCpu(_));
        if percpu {
            check_percpu_value_size(map.value_size)?;
        }
        let field = |off: u32| {
            map.kva
                .checked_add(u64::from(off))
                .ok_or(Error::AddrOverflow {
                    addr: map.kva.0,
                    len: u64::from(off),
                })
        };
        let n_at = field(layout.n_buckets)?;
        let n_buckets = self.mem.read_kernel_u32(n_at)?;
        if !n_buckets.is_power_of_two() {
            return Err(Error::Corrupt {
                what: "bpf_htab.n_buckets (not a power of two)",
                at: n_at,
                value: u64::from(n_buckets),
            });
        }
        if u64::from(map.max_entries).checked_next_power_of_two() != Some(u64::from(n_buckets)) {
            return Err(Error::Corrupt {
                what: "bpf_htab.n_buckets (not roundup_pow_of_two(max_entries))",
                at: n_at,
                value: u64::from(n_buckets),
            });
        }
        let limit = self.mem.limits().htab_buckets;
        if n_buckets > limit {
            return Err(Error::LimitExceeded {
                what: "hash map buckets",
                limit: u64::from(limit),
                at: u64::from(n_buckets),
            });
        }
        let es_at = field(layout.elem_size)?;
        let elem_size = self.mem.read_kernel_u32(es_at)?;
        let round8 = |v: u32| align_up(u64::from(v), 8).unwrap_or(u64::MAX);
        let tail = if percpu { 8 } else { round8(map.value_size) };
        let expected = u64::from(layout.elem_key)
            .saturating_add(round8(map.key_size))
            .saturating_add(tail);
        if u64::from(elem_size) != expected {
            return Err(Error::Corrupt {
                what: "bpf_htab.elem_size (not key offset + round_up(key_size, 8) + value or \
                       pointer)",
                at: es_at,
                value: u64::from(elem_size),
            });
        }
        let b_at = field(layout.buckets)?;
        let buckets = self.mem.read_kernel_u64(b_at)?;
        if !is_kernel_ptr(buckets) {
            return Err(Error::Corrupt {
                what: "bpf_htab.buckets (not a kernel pointer)",
                at: b_at,
                value: buckets,
            });
        }
        let span = u64::from(n_buckets).saturating_mul(u64::from(layout.bucket_size));
        Kva(buckets).checked_add(span).ok_or(Error::AddrOverflow {
            addr: buckets,
            len: span,
        })?;
        Ok(HtabMap {
            info: *map,
            layout,
            buckets: Kva(buckets),
            n_buckets,
            elem_size,
            values,
            geo: Geometry::new(&layout, map, values),
        })
    }

    /// `map` as a HASH or LRU_HASH map: reads and checks `bpf_htab` (see the
    /// [`HtabMap`]).
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for other types (the per-CPU ones go through
    /// [`percpu_htab`](Self::percpu_htab)), [`Error::LayoutMissing`] without `bpf_htab`
    /// offsets, [`Error::Corrupt`] for a zero size, a bad `n_buckets`, `elem_size` or
    /// `buckets`, [`Error::LimitExceeded`] for more buckets than
    /// [`Limits::htab_buckets`](crate::Limits), or a read error.
    pub fn htab(&self, map: &MapInfo) -> Result<HtabMap> {
        if !matches!(map.map_type, MapType::HASH | MapType::LRU_HASH) {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "hash map access",
            });
        }
        self.open_htab(map, Values::Inline)
    }

    /// `map` as a PERCPU_HASH or LRU_PERCPU_HASH map: reads and checks `bpf_htab` as
    /// [`htab`](Self::htab) does, then places the elements' `__percpu` pointers: as
    /// `force` says, else from the data by the [`PptrEvidence`] rule, probing the first
    /// [`PPTR_PROBE_ELEMS`] elements against `offsets`.
    /// [`HtabMap::pptr_decision`] says what was decided and why.
    ///
    /// The decision holds for the map as it was probed: an empty map's is a default.
    ///
    /// ```
    /// # #[cfg(feature = "synth")]
    /// # fn main() -> Result<(), mapwalk_core::Error> {
    /// use mapwalk_core::bpf::{CpuCopy, PerCpuOffsets, PossibleCpus, PptrPlacement};
    /// use mapwalk_core::synth::{GuestBuilder, MapSpec};
    /// use mapwalk_core::{Bpf, MapType};
    ///
    /// // A 6.1-style PERCPU_HASH (pointer right after the 6-byte key), 3 possible CPUs.
    /// let mut g = GuestBuilder::x86_64(false).possible_cpus(3);
    /// g.add_map(
    ///     MapSpec::new(4, MapType::PERCPU_HASH, "pkts", 6, 8, 64)
    ///         .pptr_placement(PptrPlacement::KeySize)
    ///         .percpu_entry(
    ///             b"\x0a\0\0\x01\x00\x50",
    ///             (1..=3u64).map(|n| n.to_le_bytes().to_vec()).collect(),
    ///         ),
    /// );
    /// let guest = g.build();
    /// let view = guest.view();
    /// let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
    /// let cpus = PossibleCpus::NrCpuIds(guest.symbols.nr_cpu_ids);
    /// let offsets = PerCpuOffsets::read_vec(&view, guest.symbols.per_cpu_offset, cpus)?;
    /// let map = bpf.percpu_htab(&bpf.find_by_name("pkts")?.unwrap(), &offsets, None)?;
    /// assert_eq!(map.pptr_decision().unwrap().placement, PptrPlacement::KeySize);
    /// let all = map.percpu_entries(&view, &offsets)?;
    /// let per_cpu: Vec<u64> = all.entries[0].1.iter()
    ///     .map(|v| u64::from_le_bytes(v.as_ref().present().unwrap()[..].try_into().unwrap()))
    ///     .collect();
    /// assert_eq!(per_cpu, [1, 2, 3]);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "synth"))]
    /// # fn main() {}
    /// ```
    ///
    /// # Errors
    /// As [`htab`](Self::htab) (with a per-CPU value above
    /// [`PCPU_MIN_UNIT_SIZE`](crate::limits::PCPU_MIN_UNIT_SIZE) as
    /// [`Error::LimitExceeded`]), [`Error::Corrupt`] when the probed elements disagree,
    /// or [`Error::Ambiguous`] when the data cannot decide.
    pub fn percpu_htab<B: AsRef<[u64]>>(
        &self,
        map: &MapInfo,
        offsets: &PerCpuOffsets<B>,
        force: Option<PptrPlacement>,
    ) -> Result<HtabMap> {
        if !matches!(
            map.map_type,
            MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
        ) {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "per-CPU hash map access",
            });
        }
        let decision = |placement, evidence| {
            Values::PerCpu(PptrDecision {
                placement,
                evidence,
            })
        };
        let aligned_key = map.key_size.checked_rem(8) == Some(0);
        let first = match force {
            Some(p) => decision(p, PptrEvidence::Forced),
            None if aligned_key => decision(PptrPlacement::Aligned, PptrEvidence::KeyAligned),
            None => decision(
                PptrPlacement::Aligned,
                PptrEvidence::NoEvidence { probed: 0 },
            ),
        };
        let mut h = self.open_htab(map, first)?;
        if force.is_some() || aligned_key {
            return Ok(h);
        }
        let d = self.probe_pptr(&h, offsets)?;
        h.values = Values::PerCpu(d);
        h.geo = Geometry::new(&h.layout, &h.info, h.values);
        Ok(h)
    }

    fn probe_pptr<B: AsRef<[u64]>>(
        &self,
        h: &HtabMap,
        offsets: &PerCpuOffsets<B>,
    ) -> Result<PptrDecision> {
        let ks = h.info.key_size;
        let size = h.info.value_size;
        let pad = align_up(u64::from(ks), 8)
            .unwrap_or(0)
            .saturating_sub(u64::from(ks));
        let pad_mask = low_mask(u32::try_from(pad.saturating_mul(8)).unwrap_or(64));
        // Per element: the two candidates and whether each is plausible on its own.
        let mut seen = [(0u64, 0u64, false, false); PROBE_SLOTS];
        let mut n = 0usize;
        let mut walk = h.walk_inner(self.mem, true);
        while let Some(slot) = seen.get_mut(n) {
            let entry = match walk.next() {
                None => break,
                Some(Ok(entry)) => entry,
                Some(Err(_)) if walk.is_finished() => break,
                Some(Err(_)) => continue,
            };
            let Ok((a, b)) = walk.candidates(&entry) else {
                continue;
            };
            *slot = (
                a,
                b,
                plausible(self.mem, offsets, a, size),
                plausible(self.mem, offsets, b, size),
            );
            n = n.saturating_add(1);
        }
        let seen = seen.get(..n).unwrap_or_default();
        // Two elements' per-CPU objects never overlap: a placement under which they
        // would is wrong for every element.
        let stride = align_up(u64::from(size), 8).unwrap_or(u64::MAX);
        let a_ok = disjoint(seen.iter().filter(|e| e.2).map(|e| e.0), stride);
        let b_ok = disjoint(seen.iter().filter(|e| e.3).map(|e| e.1), stride);
        let mut p = Probe {
            probed: u32::try_from(n).unwrap_or(u32::MAX),
            both_padding_zero: true,
            ..Probe::default()
        };
        for &(a, _, pa, pb) in seen {
            match (pa && a_ok, pb && b_ok) {
                (true, false) => p.only_key_size = p.only_key_size.saturating_add(1),
                (false, true) => p.only_aligned = p.only_aligned.saturating_add(1),
                (true, true) => {
                    p.both = p.both.saturating_add(1);
                    if a & pad_mask != 0 {
                        p.both_padding_zero = false;
                    }
                }
                (false, false) => {}
            }
        }
        p.decide(h.info.kva)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::Cell;

    use super::*;
    use crate::addr::Pa;
    use crate::bpf::PossibleCpus;
    use crate::error::PhysErrorKind;
    use crate::kernel::KernelView;
    use crate::layout::KernelLayout;
    use crate::limits::{Limits, MAX_CPUS};
    use crate::mem::{PhysRange, PhysRead, ReadOp};
    use crate::synth::{FaultyMem, GuestBuilder, MapSpec, SynthArch, SyntheticGuest};

    const ARCHES: [SynthArch; 4] = [
        SynthArch::X86_64 { five_level: false },
        SynthArch::X86_64 { five_level: true },
        SynthArch::Aarch64 { granule_shift: 12 },
        SynthArch::Aarch64 { granule_shift: 16 },
    ];

    fn bytes(seed: u32, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| {
                (i as u32)
                    .wrapping_mul(37)
                    .wrapping_add(seed.wrapping_mul(101)) as u8
            })
            .collect()
    }

    fn key(i: u32, len: usize) -> Vec<u8> {
        let mut k = bytes(i ^ 0x55, len);
        k[0] = i as u8;
        k
    }

    /// A per-CPU value: distinct for every element and CPU.
    fn pv(i: u32, cpu: u32, len: usize) -> Vec<u8> {
        bytes(i * 1000 + cpu * 7 + 1, len)
    }

    fn build(arch: SynthArch, cpus: u32, specs: Vec<MapSpec>) -> SyntheticGuest {
        let mut b = GuestBuilder::new(arch).possible_cpus(cpus);
        for s in specs {
            b.add_map(s);
        }
        b.build()
    }

    /// Everything a walk yields: entries with their bytes, per-element errors, and the
    /// error that ended it. Checks that it is fused afterwards.
    #[derive(Debug, Default)]
    struct Walked {
        items: Vec<(u32, Vec<u8>, Vec<u8>)>,
        errors: Vec<(Option<HtabPos>, Error)>,
        end: Option<Error>,
    }

    fn walk_all<K: KernelRead>(h: &HtabMap, mem: &K) -> Walked {
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

    fn open(g: &SyntheticGuest, view: &KernelView<impl PhysRead>, id: u32) -> HtabMap {
        let bpf = Bpf::new(view, &g.layout, g.map_idr);
        bpf.htab(&bpf.map_by_id(id).unwrap().unwrap()).unwrap()
    }

    /// A HASH map of 8 buckets with collisions, and an LRU_HASH map with 6-byte keys
    /// and 3-byte values, vmalloc'd.
    fn sample() -> Vec<MapSpec> {
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

    #[test]
    fn hash_and_lru_hash_yield_every_entry_bucket_by_bucket() {
        for arch in ARCHES {
            let g = build(arch, 2, sample());
            let view = g.view();
            let h = open(&g, &view, 1);
            assert_eq!((h.n_buckets(), h.elem_size()), (8, 48 + 8 + 16));
            assert_eq!(h.buckets(), g.htabs[&1].buckets);
            assert_eq!(h.pptr_decision(), None);
            let w = walk_all(&h, &view);
            assert!(w.errors.is_empty() && w.end.is_none(), "{arch:?} {w:?}");
            let expect: Vec<(u32, Vec<u8>, Vec<u8>)> =
                [(0, 4), (2, 1), (2, 3), (2, 5), (5, 2), (7, 6)]
                    .into_iter()
                    .map(|(b, i)| (b, key(i, 4), bytes(i, 12)))
                    .collect();
            assert_eq!(w.items, expect, "{arch:?}");

            // LRU_HASH: 4 buckets (roundup of 3), 6-byte keys padded to 8.
            let lru = open(&g, &view, 2);
            assert_eq!((lru.n_buckets(), lru.elem_size()), (4, 48 + 8 + 8));
            let w = walk_all(&lru, &view);
            assert!(w.errors.is_empty() && w.end.is_none());
            let expect: Vec<(u32, Vec<u8>, Vec<u8>)> = [(0, 0), (0, 4), (1, 1), (2, 2), (3, 3)]
                .into_iter()
                .map(|(b, i)| (b, key(i, 6), bytes(i + 50, 3)))
                .collect();
            assert_eq!(w.items, expect, "{arch:?}");
            let all = lru.entries(&view).unwrap();
            assert_eq!(
                all.entries,
                expect
                    .iter()
                    .map(|(_, k, v)| (k.clone(), v.clone()))
                    .collect::<Vec<_>>()
            );
            assert!(all.errors.is_empty() && all.end.is_none());
        }
    }

    #[test]
    fn entries_carry_their_addresses() {
        let g = build(SynthArch::X86_64 { five_level: false }, 2, sample());
        let view = g.view();
        let h = open(&g, &view, 1);
        let built = &g.htabs[&1];
        let mut w = h.walk(&view);
        let first = w.next().unwrap().unwrap();
        // Bucket 0 holds the fourth element given.
        assert_eq!(
            first,
            HtabEntry {
                bucket: 0,
                elem: built.elems[3].kva,
                key: Kva(built.elems[3].kva.0 + 48),
                value: HtabValue::Inline(Kva(built.elems[3].kva.0 + 56)),
            }
        );
        assert_eq!(w.key(), Some(&key(4, 4)[..]));
        assert_eq!(w.value(), Some(&bytes(4, 12)[..]));
        assert_eq!(
            w.position(),
            Some(HtabPos {
                bucket: 0,
                elem: Some(first.elem)
            })
        );
        // Reading an earlier entry goes to the guest.
        let second = w.next().unwrap().unwrap();
        let mut k = [0u8; 4];
        w.copy_key(&first, &mut k).unwrap();
        assert_eq!(k[..], key(4, 4)[..]);
        assert_eq!(second.bucket, 2);
        assert_eq!(
            h.read_cpu_value(&view, &g.offsets(), &first, 0, &mut [0u8; 12]),
            Err(Error::WrongMapType {
                id: 1,
                map_type: MapType::HASH,
                op: "per-CPU value access"
            })
        );
    }

    #[test]
    fn an_empty_map_yields_nothing() {
        for arch in ARCHES {
            let g = build(
                arch,
                2,
                vec![
                    MapSpec::hash(3, "empty", 16, 64, 1000),
                    MapSpec::new(4, MapType::PERCPU_HASH, "pempty", 6, 8, 1),
                ],
            );
            let view = g.view();
            let h = open(&g, &view, 3);
            assert_eq!(h.n_buckets(), 1024);
            let w = walk_all(&h, &view);
            assert!(w.items.is_empty() && w.errors.is_empty() && w.end.is_none());
            let bpf = Bpf::new(&view, &g.layout, g.map_idr);
            let p = bpf
                .percpu_htab(&bpf.map_by_id(4).unwrap().unwrap(), &g.offsets(), None)
                .unwrap();
            assert_eq!(
                p.pptr_decision(),
                Some(PptrDecision {
                    placement: PptrPlacement::Aligned,
                    evidence: PptrEvidence::NoEvidence { probed: 0 }
                })
            );
            assert_eq!(
                p.percpu_entries(&view, &g.offsets()).unwrap(),
                Default::default()
            );
        }
    }

    #[test]
    fn keys_land_in_the_buckets_they_hash_to() {
        let mut spec = MapSpec::hash(1, "h", 8, 8, 100);
        for i in 0..100u64 {
            spec = spec.entry(&(i * 7919).to_le_bytes(), &(i * 3).to_le_bytes());
        }
        let g = build(SynthArch::Aarch64 { granule_shift: 14 }, 2, vec![spec]);
        let view = g.view();
        let h = open(&g, &view, 1);
        assert_eq!(h.n_buckets(), 128);
        let w = walk_all(&h, &view);
        assert_eq!(w.items.len(), 100);
        assert!(w.items.windows(2).all(|p| p[0].0 <= p[1].0), "bucket order");
        for (bucket, k, v) in &w.items {
            let i = u64::from_le_bytes(k[..].try_into().unwrap()) / 7919;
            assert_eq!(u64::from_le_bytes(v[..].try_into().unwrap()), i * 3);
            assert_eq!(*bucket, g.htabs[&1].elems[i as usize].bucket);
        }
    }

    #[test]
    fn elements_past_the_buffer_are_read_in_pieces() {
        for arch in ARCHES {
            let size = ELEM_BUF as u32 + 3000;
            let spec = MapSpec::hash(1, "big", 12, size, 2)
                .vmalloc()
                .entry_in_bucket(1, &key(1, 12), &bytes(1, size as usize))
                .entry_in_bucket(1, &key(2, 12), &bytes(2, size as usize));
            let g = build(arch, 2, vec![spec]);
            let view = g.view();
            let h = open(&g, &view, 1);
            let mut w = h.walk(&view);
            let mut k = vec![0u8; 12];
            let mut v = vec![0u8; size as usize];
            let e = w.next_into(&mut k, &mut v).unwrap().unwrap();
            assert_eq!((w.key(), w.value()), (None, None));
            assert_eq!(
                (e.bucket, &k, &v),
                (1, &key(1, 12), &bytes(1, size as usize))
            );
            w.next_into(&mut k, &mut v).unwrap().unwrap();
            assert_eq!((&k, &v), (&key(2, 12), &bytes(2, size as usize)));
            assert!(w.next_into(&mut k, &mut v).is_none());
        }
    }

    #[test]
    fn next_into_refuses_wrong_buffers_without_advancing() {
        let g = build(SynthArch::X86_64 { five_level: false }, 2, sample());
        let view = g.view();
        let h = open(&g, &view, 1);
        let mut w = h.walk(&view);
        assert_eq!(
            w.next_into(&mut [0u8; 3], &mut [0u8; 12]),
            Some(Err(Error::BufferSize { need: 4, have: 3 }))
        );
        assert_eq!(
            w.next_into(&mut [0u8; 4], &mut [0u8; 13]),
            Some(Err(Error::BufferSize { need: 12, have: 13 }))
        );
        assert!(!w.is_finished());
        let (mut k, mut v) = ([0u8; 4], [0u8; 12]);
        let mut n = 0;
        while let Some(item) = w.next_into(&mut k, &mut v) {
            item.unwrap();
            n += 1;
        }
        assert_eq!(n, 6);
        assert_eq!(w.visited(), 6);
    }

    /// Counts the backend's reads.
    struct Counting<M> {
        inner: M,
        reads: Cell<u32>,
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

    #[test]
    fn bucket_heads_are_batched_and_elements_read_once() {
        let mut spec = MapSpec::hash(1, "h", 4, 8, 1024);
        for i in 0..100u32 {
            spec = spec.entry_in_bucket(i * 10, &i.to_le_bytes(), &u64::from(i).to_le_bytes());
        }
        let g = build(SynthArch::X86_64 { five_level: false }, 2, vec![spec]);
        let mem = Counting {
            inner: g.ram.as_ram(),
            reads: Cell::new(0),
        };
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let h = open(&g, &view, 1);
        mem.reads.set(0);
        let w = walk_all(&h, &view);
        assert_eq!(w.items.len(), 100);
        // 1024 heads of 16 bytes: four 4 KiB reads; then one read per element.
        assert_eq!(mem.reads.get(), 4 + 100);
    }

    fn limited(g: &SyntheticGuest, limits: Limits) -> KernelView<crate::mem::Ram<&[u8]>> {
        KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(limits)
    }

    fn open_err(g: &SyntheticGuest, view: &KernelView<impl PhysRead>, id: u32) -> Error {
        let bpf = Bpf::new(view, &g.layout, g.map_idr);
        bpf.htab(&bpf.map_by_id(id).unwrap().unwrap()).unwrap_err()
    }

    #[test]
    fn the_bucket_cap_holds_at_and_fails_past_its_limit() {
        let g = build(
            SynthArch::X86_64 { five_level: false },
            2,
            vec![MapSpec::hash(1, "h", 4, 4, 16).entry(&[1, 2, 3, 4], &[5, 6, 7, 8])],
        );
        let at = limited(
            &g,
            Limits {
                htab_buckets: 16,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(walk_all(&open(&g, &at, 1), &at).items.len(), 1);
        let past = limited(
            &g,
            Limits {
                htab_buckets: 15,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(
            open_err(&g, &past, 1),
            Error::LimitExceeded {
                what: "hash map buckets",
                limit: 15,
                at: 16
            }
        );
    }

    /// Bucket 3 holds four elements; buckets 1 and 6 one each.
    fn chains() -> SyntheticGuest {
        let mut spec = MapSpec::hash(1, "h", 4, 4, 8).entry_in_bucket(1, &[1; 4], &[1; 4]);
        for i in 0..4 {
            spec = spec.entry_in_bucket(3, &[30 + i; 4], &[i; 4]);
        }
        spec = spec.entry_in_bucket(6, &[6; 4], &[6; 4]);
        build(SynthArch::X86_64 { five_level: false }, 2, vec![spec])
    }

    #[test]
    fn the_chain_cap_holds_at_and_fails_past_its_limit() {
        let g = chains();
        let at = limited(
            &g,
            Limits {
                bucket_chain: 4,
                ..Limits::DEFAULT
            },
        );
        let w = walk_all(&open(&g, &at, 1), &at);
        assert_eq!(w.items.len(), 6);
        assert!(w.errors.is_empty());
        let past = limited(
            &g,
            Limits {
                bucket_chain: 3,
                ..Limits::DEFAULT
            },
        );
        let w = walk_all(&open(&g, &past, 1), &past);
        let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
        assert_eq!(
            keys,
            [1, 30, 31, 32, 6],
            "bucket 3 cut, bucket 6 still walked"
        );
        assert_eq!(
            w.errors,
            [(
                Some(HtabPos {
                    bucket: 3,
                    elem: None
                }),
                Error::LimitExceeded {
                    what: "hash bucket chain",
                    limit: 3,
                    at: 3
                }
            )]
        );
        assert_eq!(w.end, None);
    }

    #[test]
    fn a_chain_cycle_ends_with_limit_exceeded() {
        let mut g = chains();
        // The last element of bucket 3 points back at its first.
        let elems = g.htabs[&1].elems.clone();
        let pa = g.pa_of(elems[4].kva);
        g.ram.write_u64(pa, elems[1].kva.0);
        // With a small chain cap the bucket ends and the walk goes on.
        let small = limited(
            &g,
            Limits {
                bucket_chain: 10,
                ..Limits::DEFAULT
            },
        );
        let w = walk_all(&open(&g, &small, 1), &small);
        assert_eq!(w.items.len(), 1 + 10 + 1);
        assert_eq!(
            w.errors[0].1,
            Error::LimitExceeded {
                what: "hash bucket chain",
                limit: 10,
                at: 3
            }
        );
        assert_eq!(w.items.last().unwrap().1, [6; 4]);
        // With the default caps, the element cap (max_entries + HTAB_EXTRA_ELEMS) ends it.
        let view = g.view();
        let w = walk_all(&open(&g, &view, 1), &view);
        assert_eq!(w.items.len(), 8 + MAX_CPUS as usize);
        assert_eq!(
            w.end,
            Some(Error::LimitExceeded {
                what: "hash map elements (max_entries + HTAB_EXTRA_ELEMS)",
                limit: 8 + u64::from(MAX_CPUS),
                at: 3
            })
        );
    }

    #[test]
    fn the_element_cap_holds_at_and_fails_past_its_limit() {
        let cap = 1 + MAX_CPUS;
        for extra in [0u32, 1] {
            let mut spec = MapSpec::hash(1, "full", 4, 4, 1);
            for i in 0..cap + extra {
                spec = spec.entry_in_bucket(0, &i.to_le_bytes(), &i.to_le_bytes());
            }
            let g = build(SynthArch::X86_64 { five_level: false }, 2, vec![spec]);
            let view = g.view();
            let w = walk_all(&open(&g, &view, 1), &view);
            assert_eq!(w.items.len(), cap as usize);
            assert!(w.errors.is_empty());
            let end = (extra == 1).then_some(Error::LimitExceeded {
                what: "hash map elements (max_entries + HTAB_EXTRA_ELEMS)",
                limit: u64::from(cap),
                at: 0,
            });
            assert_eq!(w.end, end);
        }
    }

    #[test]
    fn a_bad_element_pointer_is_an_error_for_its_bucket() {
        for bad in [0x0000_7fff_1234_5000u64, 0, 0xffff_8880_0000_0004] {
            let mut g = chains();
            let elems = g.htabs[&1].elems.clone();
            // The second element of bucket 3 points at `bad`.
            let pa = g.pa_of(elems[2].kva);
            g.ram.write_u64(pa, bad);
            let view = g.view();
            let w = walk_all(&open(&g, &view, 1), &view);
            let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
            assert_eq!(keys, [1, 30, 31, 6]);
            assert_eq!(
                w.errors,
                [(
                    Some(HtabPos {
                        bucket: 3,
                        elem: None
                    }),
                    Error::Corrupt {
                        what: "hash bucket chain pointer (not a kernel pointer)",
                        at: elems[2].kva,
                        value: bad
                    }
                )]
            );
        }
        // A bad head: the bucket is an error from the start.
        let mut g = chains();
        let head = g.htabs[&1].buckets.0 + 6 * 16;
        let pa = g.pa_of(Kva(head));
        g.ram.write_u64(pa, 0x1000);
        let view = g.view();
        let w = walk_all(&open(&g, &view, 1), &view);
        assert_eq!(w.items.len(), 5);
        assert_eq!(
            w.errors,
            [(
                Some(HtabPos {
                    bucket: 6,
                    elem: None
                }),
                Error::Corrupt {
                    what: "hash bucket chain pointer (not a kernel pointer)",
                    at: Kva(head),
                    value: 0x1000
                }
            )]
        );
    }

    #[test]
    fn a_nulls_marker_of_another_bucket_is_corrupt() {
        let mut g = chains();
        let elems = g.htabs[&1].elems.clone();
        let pa = g.pa_of(elems[4].kva);
        g.ram.write_u64(pa, (5 << 1) | 1);
        let view = g.view();
        let w = walk_all(&open(&g, &view, 1), &view);
        assert_eq!(w.items.len(), 6);
        assert_eq!(
            w.errors,
            [(
                Some(HtabPos {
                    bucket: 3,
                    elem: None
                }),
                Error::Corrupt {
                    what: "hash bucket chain end (the nulls marker of another bucket)",
                    at: elems[4].kva,
                    value: 11
                }
            )]
        );
    }

    #[test]
    fn an_unreadable_element_is_an_error_for_that_element() {
        let g = chains();
        let elems = g.htabs[&1].elems.clone();
        // The value of bucket 3's second element: its link still reads.
        let value = g.pa_of(Kva(elems[2].kva.0 + 56));
        let mem = FaultyMem::new(g.ram.as_ram(), value, 4, PhysErrorKind::Io);
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let h = open(&g, &view, 1);
        let w = walk_all(&h, &view);
        let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
        assert_eq!(keys, [1, 30, 32, 33, 6]);
        assert_eq!(w.errors.len(), 1);
        assert_eq!(
            w.errors[0].0,
            Some(HtabPos {
                bucket: 3,
                elem: Some(elems[2].kva)
            })
        );
        assert!(matches!(
            w.errors[0].1,
            Error::Phys {
                kind: PhysErrorKind::Io,
                ..
            }
        ));
        // Its link unreadable too: the rest of the bucket is lost, the walk goes on.
        let mem = FaultyMem::new(g.ram.as_ram(), g.pa_of(elems[2].kva), 8, PhysErrorKind::Io);
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let w = walk_all(&h, &view);
        let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
        assert_eq!(keys, [1, 30, 6]);
        assert_eq!(w.errors.len(), 1);
        // An unreadable bucket head: only that bucket.
        let head = g.pa_of(Kva(g.htabs[&1].buckets.0 + 3 * 16));
        let mem = FaultyMem::new(g.ram.as_ram(), head, 8, PhysErrorKind::Unmapped);
        let view = KernelView::new(&mem, g.paging, g.addrs);
        let w = walk_all(&h, &view);
        let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
        assert_eq!(keys, [1, 6]);
        assert_eq!(
            w.errors[0].0,
            Some(HtabPos {
                bucket: 3,
                elem: None
            })
        );
        // The allocating reader keeps the per-element errors beside the entries.
        let all = h.entries(&view).unwrap();
        assert_eq!((all.entries.len(), all.errors.len(), all.end), (2, 1, None));
    }

    fn corrupt_u32(g: &mut SyntheticGuest, id: u32, off: u32, v: u32) {
        let kva = g.maps.iter().find(|m| m.id == id).unwrap().kva;
        let pa = g.pa_of(Kva(kva.0 + u64::from(off)));
        g.ram.write_u32(pa, v);
    }

    #[test]
    fn bad_headers_are_refused_before_the_buckets_are_read() {
        let h = crate::synth::default_layout().htab.unwrap();
        let m = crate::synth::default_layout().bpf_map;
        let fresh = || build(SynthArch::X86_64 { five_level: false }, 2, sample());
        // The bucket pointer is garbage in every case: nothing reads it before the
        // count is checked.
        let cases: [(&[(u32, u32)], Error); 5] = [
            (
                &[(h.n_buckets, 12)],
                Error::Corrupt {
                    what: "bpf_htab.n_buckets (not a power of two)",
                    at: Kva(0),
                    value: 12,
                },
            ),
            (
                &[(h.n_buckets, 0)],
                Error::Corrupt {
                    what: "bpf_htab.n_buckets (not a power of two)",
                    at: Kva(0),
                    value: 0,
                },
            ),
            (
                &[(h.n_buckets, 1 << 31)],
                Error::Corrupt {
                    what: "bpf_htab.n_buckets (not roundup_pow_of_two(max_entries))",
                    at: Kva(0),
                    value: 1 << 31,
                },
            ),
            (
                &[(h.n_buckets, 1 << 31), (m.max_entries, 1 << 31)],
                Error::LimitExceeded {
                    what: "hash map buckets",
                    limit: 1 << 28,
                    at: 1 << 31,
                },
            ),
            (
                &[(h.elem_size, 64)],
                Error::Corrupt {
                    what: "bpf_htab.elem_size (not key offset + round_up(key_size, 8) + value \
                           or pointer)",
                    at: Kva(0),
                    value: 64,
                },
            ),
        ];
        for (writes, want) in cases {
            let mut g = fresh();
            for &(off, v) in writes {
                corrupt_u32(&mut g, 1, off, v);
            }
            corrupt_u32(&mut g, 1, h.buckets, 0x1234);
            corrupt_u32(&mut g, 1, h.buckets + 4, 0x1234);
            let view = g.view();
            let got = open_err(&g, &view, 1);
            let at_of = |off: u32| Kva(g.maps[0].kva.0 + u64::from(off));
            let want = match want {
                Error::Corrupt { what, value, .. } => Error::Corrupt {
                    what,
                    value,
                    at: at_of(if what.contains("elem_size") {
                        h.elem_size
                    } else {
                        h.n_buckets
                    }),
                },
                other => other,
            };
            assert_eq!(got, want);
        }
        // A bucket pointer that is not a kernel pointer, once the count is right.
        let mut g = fresh();
        corrupt_u32(&mut g, 1, h.buckets + 4, 0x1234);
        let view = g.view();
        assert!(matches!(
            open_err(&g, &view, 1),
            Error::Corrupt {
                what: "bpf_htab.buckets (not a kernel pointer)",
                ..
            }
        ));
        // A zero key size.
        let mut g = fresh();
        corrupt_u32(&mut g, 1, m.key_size, 0);
        let view = g.view();
        assert!(matches!(
            open_err(&g, &view, 1),
            Error::Corrupt { value: 0, .. }
        ));
    }

    #[test]
    fn wrong_types_and_missing_offsets_are_refused() {
        let g = build(
            SynthArch::X86_64 { five_level: false },
            2,
            vec![
                MapSpec::array(1, "a", 4, 1),
                MapSpec::new(2, MapType::PERCPU_HASH, "p", 8, 8, 1),
                MapSpec::hash(3, "h", 4, 4, 1),
            ],
        );
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let info = |id| bpf.map_by_id(id).unwrap().unwrap();
        assert!(matches!(
            bpf.htab(&info(1)),
            Err(Error::WrongMapType { id: 1, .. })
        ));
        assert!(matches!(
            bpf.htab(&info(2)),
            Err(Error::WrongMapType { id: 2, .. })
        ));
        assert!(matches!(
            bpf.percpu_htab(&info(3), &g.offsets(), None),
            Err(Error::WrongMapType { id: 3, .. })
        ));
        let h = bpf.htab(&info(3)).unwrap();
        assert!(matches!(
            h.percpu_entries(&view, &g.offsets()),
            Err(Error::WrongMapType { .. })
        ));
        let no_htab = KernelLayout {
            htab: None,
            ..g.layout
        };
        let bpf = Bpf::new(&view, &no_htab, g.map_idr);
        assert_eq!(
            bpf.htab(&info(3)),
            Err(Error::LayoutMissing { what: "bpf_htab" })
        );
        let bad_stride = KernelLayout {
            htab: Some(HtabLayout {
                bucket_head: 12,
                ..g.layout.htab.unwrap()
            }),
            ..g.layout
        };
        let bpf = Bpf::new(&view, &bad_stride, g.map_idr);
        assert!(matches!(
            bpf.htab(&info(3)),
            Err(Error::LayoutMissing { .. })
        ));
    }

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

    // ---- Per-CPU hash maps ----

    const CPUS: u32 = 4;

    /// A per-CPU hash map of `n` elements with `key_size`-byte keys and 12-byte values.
    fn percpu_spec(
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

    fn open_percpu(
        g: &SyntheticGuest,
        view: &KernelView<impl PhysRead>,
        id: u32,
        force: Option<PptrPlacement>,
    ) -> Result<HtabMap> {
        let bpf = Bpf::new(view, &g.layout, g.map_idr);
        bpf.percpu_htab(&bpf.map_by_id(id).unwrap().unwrap(), &g.offsets(), force)
    }

    /// The expected `(key, per-CPU values)` in walk order for `percpu_spec(.., n, ..)`.
    fn percpu_expect(key_size: u32, n: u32) -> Vec<(Vec<u8>, Vec<crate::bpf::PerCpuValue>)> {
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

    #[test]
    fn both_pointer_placements_are_detected_for_6_and_12_byte_keys() {
        for arch in ARCHES {
            for key_size in [6, 12] {
                for placement in [PptrPlacement::KeySize, PptrPlacement::Aligned] {
                    for t in [MapType::PERCPU_HASH, MapType::LRU_PERCPU_HASH] {
                        let spec = percpu_spec(9, t, key_size, 7, placement);
                        let g = build(arch, CPUS, vec![spec]);
                        let view = g.view();
                        let h = open_percpu(&g, &view, 9, None).unwrap();
                        let what = (arch, key_size, placement, t);
                        // On x86_64 the pointer at key + 6 of the newer placement is the
                        // real (small, zero-based) one shifted over two zero padding
                        // bytes, and lands in RAM too: the padding rule decides.
                        let x86 = matches!(arch, SynthArch::X86_64 { .. });
                        let evidence =
                            if x86 && key_size == 6 && placement == PptrPlacement::Aligned {
                                PptrEvidence::PaddingTieBreak { elements: 7 }
                            } else {
                                PptrEvidence::Exclusive {
                                    elements: 7,
                                    probed: 7,
                                }
                            };
                        assert_eq!(
                            h.pptr_decision(),
                            Some(PptrDecision {
                                placement,
                                evidence
                            }),
                            "{what:?}"
                        );
                        assert_eq!(h.elem_size(), 48 + key_size.next_multiple_of(8) + 8);
                        let all = h.percpu_entries(&view, &g.offsets()).unwrap();
                        assert!(all.errors.is_empty() && all.end.is_none(), "{what:?}");
                        assert_eq!(all.entries, percpu_expect(key_size, 7), "{what:?}");
                        // The walk hands out the pointers the builder wrote.
                        let mut w = h.walk(&view);
                        let e = w.next().unwrap().unwrap();
                        let built = &g.htabs[&9].elems[0];
                        assert_eq!(e.value, HtabValue::PerCpu(built.pptr.unwrap()));
                        assert_eq!(w.value(), None);
                    }
                }
            }
        }
    }

    #[test]
    fn aligned_keys_need_no_probe_and_placement_can_be_forced() {
        let g = build(
            SynthArch::Aarch64 { granule_shift: 12 },
            CPUS,
            vec![
                percpu_spec(1, MapType::PERCPU_HASH, 8, 5, PptrPlacement::KeySize),
                percpu_spec(2, MapType::PERCPU_HASH, 6, 5, PptrPlacement::Aligned),
            ],
        );
        let view = g.view();
        let h = open_percpu(&g, &view, 1, None).unwrap();
        assert_eq!(
            h.pptr_decision().unwrap().evidence,
            PptrEvidence::KeyAligned
        );
        assert_eq!(
            h.percpu_entries(&view, &g.offsets()).unwrap().entries,
            percpu_expect(8, 5)
        );
        let forced = open_percpu(&g, &view, 2, Some(PptrPlacement::Aligned)).unwrap();
        assert_eq!(
            forced.pptr_decision(),
            Some(PptrDecision {
                placement: PptrPlacement::Aligned,
                evidence: PptrEvidence::Forced
            })
        );
        assert_eq!(
            forced.percpu_entries(&view, &g.offsets()).unwrap().entries,
            percpu_expect(6, 5)
        );
        // Forced wrong: no element reads as data.
        let wrong = open_percpu(&g, &view, 2, Some(PptrPlacement::KeySize)).unwrap();
        let all = wrong.percpu_entries(&view, &g.offsets()).unwrap();
        assert!(all.entries.is_empty());
        assert_eq!(all.errors.len(), 5);
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
    fn the_per_cpu_value_cap_holds_at_and_fails_past_its_limit() {
        let limit = crate::limits::PCPU_MIN_UNIT_SIZE;
        let g = build(
            SynthArch::X86_64 { five_level: false },
            2,
            vec![
                MapSpec::new(1, MapType::PERCPU_HASH, "at", 8, limit, 1)
                    .percpu_entry(&[1; 8], vec![vec![7; limit as usize]; 2]),
                MapSpec::new(2, MapType::PERCPU_HASH, "past", 8, limit - 7, 1),
                MapSpec::new(3, MapType::PERCPU_HASH, "past", 8, limit + 1, 1),
            ],
        );
        let view = g.view();
        let h = open_percpu(&g, &view, 1, None).unwrap();
        let all = h.percpu_entries(&view, &g.offsets()).unwrap();
        assert_eq!(
            all.entries[0].1[1],
            CpuCopy::Present(vec![7; limit as usize])
        );
        open_percpu(&g, &view, 2, None).unwrap();
        assert_eq!(
            open_percpu(&g, &view, 3, None),
            Err(Error::LimitExceeded {
                what: "per-CPU value size (round_up(value_size, 8), PCPU_MIN_UNIT_SIZE)",
                limit: u64::from(limit),
                at: u64::from(limit) + 1
            })
        );
    }

    #[test]
    fn overlapping_objects_unmask_a_pointer_read_too_far_on() {
        // 7-byte keys, 2 KiB values whose per-CPU objects start 2 KiB-aligned (a
        // 0x700-byte array takes the first chunk up to 0x800). At key + 8 the probe
        // reads the real pointer shifted right by a byte: aligned, small, in RAM for
        // every CPU, and the real one has a zero low byte, like padding. Only the
        // objects it would designate, 8 bytes apart for 2 KiB values, give it away.
        let mut spec = MapSpec::new(2, MapType::PERCPU_HASH, "p", 7, 2048, 8)
            .pptr_placement(PptrPlacement::KeySize);
        for i in 0..8 {
            let values = (0..CPUS).map(|c| pv(i, c, 2048)).collect();
            spec = spec.percpu_entry_in_bucket(i, &key(i, 7), values);
        }
        let g = build(
            SynthArch::X86_64 { five_level: false },
            CPUS,
            vec![
                MapSpec::new(1, MapType::PERCPU_ARRAY, "a", 4, 0x700, 1),
                spec,
            ],
        );
        let pptrs: Vec<u64> = g.htabs[&2].elems.iter().map(|e| e.pptr.unwrap()).collect();
        assert!(pptrs.iter().all(|p| p % 2048 == 0), "{pptrs:x?}");
        let view = g.view();
        let h = open_percpu(&g, &view, 2, None).unwrap();
        assert_eq!(
            h.pptr_decision(),
            Some(PptrDecision {
                placement: PptrPlacement::KeySize,
                evidence: PptrEvidence::Exclusive {
                    elements: 8,
                    probed: 8
                }
            })
        );
        assert!(disjoint([0, 16, 8].into_iter(), 8));
        assert!(!disjoint([0, 16, 7].into_iter(), 8));
        assert!(!disjoint([5, 5].into_iter(), 1));
        assert!(disjoint(core::iter::empty(), 8));
    }

    #[test]
    fn the_placement_rule() {
        let map = Kva(0xffff_8880_0000_1000);
        let p = |a, b, both, pad| Probe {
            probed: 8,
            only_key_size: a,
            only_aligned: b,
            both,
            both_padding_zero: pad,
        };
        let d = |placement, evidence| {
            Ok(PptrDecision {
                placement,
                evidence,
            })
        };
        assert_eq!(
            p(3, 0, 5, false).decide(map),
            d(
                PptrPlacement::KeySize,
                PptrEvidence::Exclusive {
                    elements: 3,
                    probed: 8
                }
            )
        );
        assert_eq!(
            p(0, 1, 0, true).decide(map),
            d(
                PptrPlacement::Aligned,
                PptrEvidence::Exclusive {
                    elements: 1,
                    probed: 8
                }
            )
        );
        assert_eq!(
            p(2, 1, 0, true).decide(map),
            Err(Error::Corrupt {
                what: "per-CPU pointer placement (elements disagree: key_size votes << 32 | \
                       aligned votes)",
                at: map,
                value: (2 << 32) | 1
            })
        );
        assert_eq!(
            p(0, 0, 4, true).decide(map),
            d(
                PptrPlacement::Aligned,
                PptrEvidence::PaddingTieBreak { elements: 4 }
            )
        );
        assert_eq!(
            p(0, 0, 4, false).decide(map),
            Err(Error::Ambiguous {
                what: "the per-CPU pointer placement of a hash map (force one)",
                at: map
            })
        );
        assert_eq!(
            p(0, 0, 0, true).decide(map),
            d(
                PptrPlacement::Aligned,
                PptrEvidence::NoEvidence { probed: 8 }
            )
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
