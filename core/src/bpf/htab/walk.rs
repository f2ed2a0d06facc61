//! The walk over a hash map's buckets and chains.

use core::fmt;
use core::iter::FusedIterator;

use super::{
    is_kernel_ptr, le_u64, usize_of, HtabEntry, HtabMap, HtabPos, HtabValue, ELEM_BUF,
    HEAD_BATCH_BYTES,
};
use crate::addr::Kva;
use crate::bpf::percpu::{check_pptr, CpuCopy, PerCpuOffsets};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::HTAB_EXTRA_ELEMS;
use crate::mem::len_u64;

impl HtabMap {
    pub(super) fn walk_inner<'a, K: KernelRead + ?Sized>(
        &self,
        mem: &'a K,
        probe: bool,
    ) -> HtabWalk<'a, K> {
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
    pub(super) fn candidates(&self, entry: &HtabEntry) -> Result<(u64, u64)> {
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

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::Cell;

    use super::*;
    use crate::bpf::htab::testutil::*;
    use crate::bpf::htab::*;
    use crate::bpf::{Bpf, MapType};
    use crate::error::PhysErrorKind;
    use crate::kernel::KernelView;
    use crate::limits::{Limits, MAX_CPUS};
    use crate::synth::{FaultyMem, MapSpec, SynthArch};

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
}
