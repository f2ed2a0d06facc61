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
use crate::limits::{HTAB_EXTRA_ELEMS, HTAB_REREAD_SEEN};
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
            seen: heapless::Vec::new(),
            seen_full: false,
            last_change: None,
            rereads: 0,
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
    /// Elements visited in this chain on this read of the bucket.
    len: u32,
    /// Reads of this bucket so far (1 on the first).
    reads: u32,
}

/// A sign that a bucket changed under the walk: where it was seen and what was read
/// there. The same sign on two reads in a row means the memory is not changing there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    /// The element (or link) where it was seen.
    at: Kva,
    /// The value read there (a back link, a chain pointer).
    value: u64,
    /// The link the walk followed to get there.
    from: Kva,
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
    /// Elements of the current bucket already yielded: skipped when the bucket is read
    /// again.
    seen: heapless::Vec<u64, HTAB_REREAD_SEEN>,
    /// More elements of the current bucket were yielded than `seen` holds.
    seen_full: bool,
    /// The last sign of change in the current bucket.
    last_change: Option<Change>,
    /// Buckets read again in this walk.
    rereads: u64,
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

    /// Elements visited so far (an element read again when its bucket is read again
    /// counts again).
    pub fn visited(&self) -> u64 {
        self.visited
    }

    /// How many times a bucket was read again because it changed under the walk: 0 on
    /// a still guest.
    pub fn rereads(&self) -> u64 {
        self.rereads
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

    /// Reads the element whose `hash_node` is at `ptr`: the entry, its next pointer and
    /// its back link, or the error and the next pointer if it could still be read.
    fn read_elem(
        &mut self,
        bucket: u32,
        ptr: u64,
    ) -> core::result::Result<Read, (Error, Option<u64>)> {
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
        let (next, pprev, pptr) = match g.span.and_then(|n| self.elem.get_mut(..n)) {
            Some(buf) => {
                let start = at(g.lo).map_err(|e| (e, None))?;
                if let Err(e) = self.mem.read_kernel(start, buf) {
                    // Perhaps only the key or value is unreadable: try the link alone.
                    return Err((e, self.mem.read_kernel_u64(node).ok()));
                }
                self.buffered = true;
                (
                    le_u64(buf, g.at_node),
                    le_u64(buf, g.at_pprev),
                    le_u64(buf, g.at_pptr),
                )
            }
            None => {
                let next = self.mem.read_kernel_u64(node).map_err(|e| (e, None))?;
                let pprev = at(g.pprev)
                    .and_then(|p| self.mem.read_kernel_u64(p))
                    .map_err(|e| (e, Some(next)))?;
                let pptr = if percpu {
                    at(g.pptr)
                        .and_then(|p| self.mem.read_kernel_u64(p))
                        .map_err(|e| (e, Some(next)))?
                } else {
                    0
                };
                (next, pprev, pptr)
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
        Ok(Read {
            entry: HtabEntry {
                bucket,
                elem,
                key,
                value,
            },
            next,
            pprev,
        })
    }

    /// Starts bucket `b` from its head `next`, read at `from`.
    fn start_bucket(&mut self, b: u32, next: u64, from: Kva) {
        self.seen.clear();
        self.seen_full = false;
        self.last_change = None;
        self.chain = Some(Chain {
            bucket: b,
            next,
            from,
            len: 0,
            reads: 1,
        });
    }

    /// The bucket of `chain` changed under the walk (`change`), or looks corrupt
    /// (`corrupt`): reads it again from a fresh head, as the kernel's lockless lookups
    /// do. The same sign on two reads in a row means the memory is still there:
    /// `Ok(true)` to accept what was read (a back link), or the `corrupt` error.
    /// Bounded by [`Limits::bucket_reads`](crate::Limits).
    fn reread(&mut self, chain: Chain, change: Change, corrupt: Option<Error>) -> Result<bool> {
        let b = chain.bucket;
        if self.last_change == Some(change) {
            return match corrupt {
                Some(e) => {
                    self.chain = None;
                    Err(e)
                }
                None => Ok(true),
            };
        }
        self.last_change = Some(change);
        let unstable = Error::Unstable {
            what: "hash bucket",
            at: u64::from(b),
            reads: chain.reads,
        };
        if chain.reads >= self.mem.limits().bucket_reads || self.seen_full {
            self.chain = None;
            return Err(unstable);
        }
        let at = self.map.head_kva(b)?;
        let next = match self.mem.read_kernel_u64(at) {
            Ok(next) => next,
            Err(e) => {
                self.chain = None;
                return Err(e);
            }
        };
        self.rereads = self.rereads.saturating_add(1);
        self.chain = Some(Chain {
            bucket: b,
            next,
            from: at,
            len: 0,
            reads: chain.reads.saturating_add(1),
        });
        Ok(false)
    }

    fn step(&mut self) -> Step {
        // Each pass reads one bucket head (at most `n_buckets` of them), reads a bucket
        // again (at most `bucket_reads` times per bucket) or follows one chain pointer
        // (at most `max_visits` of them): the loop ends.
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
                        self.start_bucket(b, next, from);
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
                if ptr == (u64::from(chain.bucket) << 1) | 1 {
                    self.chain = None;
                    continue;
                }
                // The walk followed an element that moved to another bucket (freed and
                // reused): the bucket is read again.
                let corrupt = Error::Corrupt {
                    what: "hash bucket chain end (the nulls marker of another bucket)",
                    at: chain.from,
                    value: ptr,
                };
                let change = Change {
                    at: chain.from,
                    value: ptr,
                    from: chain.from,
                };
                match self.reread(chain, change, Some(corrupt)) {
                    Ok(_) => continue,
                    Err(e) => return Step::Skip(e),
                }
            }
            if !is_kernel_ptr(ptr) {
                let corrupt = Error::Corrupt {
                    what: "hash bucket chain pointer (not a kernel pointer)",
                    at: chain.from,
                    value: ptr,
                };
                let change = Change {
                    at: chain.from,
                    value: ptr,
                    from: chain.from,
                };
                match self.reread(chain, change, Some(corrupt)) {
                    Ok(_) => continue,
                    Err(e) => return Step::Skip(e),
                }
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
            let read = match self.read_elem(chain.bucket, ptr) {
                Ok(read) => read,
                Err((e, next)) => {
                    self.buffered = false;
                    self.chain = next.map(|next| Chain {
                        next,
                        from: node,
                        ..chain
                    });
                    return Step::Skip(e);
                }
            };
            if read.pprev != chain.from.0 {
                // A linked element's back link is the pointer the walk followed to it.
                // This one was unlinked (freed, moved) or the bucket gained an element
                // in front of it since that pointer was read.
                let change = Change {
                    at: node,
                    value: read.pprev,
                    from: chain.from,
                };
                match self.reread(chain, change, None) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        self.buffered = false;
                        return Step::Skip(e);
                    }
                }
            }
            chain.next = read.next;
            chain.from = node;
            self.chain = Some(chain);
            let elem = read.entry.elem.0;
            if self.seen.contains(&elem) {
                // Yielded already: on an earlier read of this bucket, or earlier on
                // this read (a cycle, which the chain cap ends).
                continue;
            }
            if self.seen.push(elem).is_err() {
                self.seen_full = true;
            }
            return Step::Entry(read.entry);
        }
    }
}

/// One element as read: the entry, its next pointer and its back link.
struct Read {
    entry: HtabEntry,
    next: u64,
    pprev: u64,
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
mod churn_tests;
#[cfg(test)]
mod tests;
