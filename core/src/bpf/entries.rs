//! Every entry of a map, whatever its type: the walker for each supported type, chosen
//! here, over caller buffers.
//!
//! [`Bpf::for_each_entry`] hands each key and value to a callback: ARRAY keys are their
//! index (4 bytes, little-endian), HASH and LRU_HASH keys are copied out of the element,
//! local-storage keys are their owner's record ([`storage::StorageOwner::write_record`](
//! crate::bpf::storage::StorageOwner::write_record)).
//! Per-CPU values ([`EntryValue::PerCpu`]) come as every possible CPU's copy. Nothing
//! allocates: [`Bpf::entry_buffer_lens`] says how big the two caller buffers must be.

use core::fmt;
use core::iter::FusedIterator;
use core::ops::ControlFlow;

use crate::bpf::storage::{OwnerKind, StorageWalkStats};
use crate::bpf::{
    object_value_size, Bpf, CpuCopy, MapInfo, MapType, PerCpuOffsets, RINGBUF_MAP_TYPES,
};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::MAX_CPUS;
use crate::mem::len_u64;

/// The map types [`Bpf::for_each_entry`] walks.
pub const WALKABLE_MAP_TYPES: [MapType; 31] = [
    MapType::ARRAY,
    MapType::HASH,
    MapType::LRU_HASH,
    MapType::PERCPU_ARRAY,
    MapType::PERCPU_HASH,
    MapType::LRU_PERCPU_HASH,
    MapType::PROG_ARRAY,
    MapType::ARRAY_OF_MAPS,
    MapType::HASH_OF_MAPS,
    MapType::LPM_TRIE,
    MapType::QUEUE,
    MapType::STACK,
    MapType::TASK_STORAGE,
    MapType::INODE_STORAGE,
    MapType::SK_STORAGE,
    MapType::CGRP_STORAGE,
    MapType::BLOOM_FILTER,
    MapType::DEVMAP,
    MapType::DEVMAP_HASH,
    MapType::CPUMAP,
    MapType::SOCKMAP,
    MapType::SOCKHASH,
    MapType::REUSEPORT_SOCKARRAY,
    MapType::CGROUP_ARRAY,
    MapType::PERF_EVENT_ARRAY,
    MapType::XSKMAP,
    MapType::RINGBUF,
    MapType::USER_RINGBUF,
    MapType::ARENA,
    MapType::STACK_TRACE,
    MapType::STRUCT_OPS,
];

/// One entry's value, as [`Bpf::for_each_entry`] hands it over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryValue<'a> {
    /// The value (`value_size` bytes).
    Single(&'a [u8]),
    /// Every possible CPU's copy of a per-CPU value.
    PerCpu(PerCpuCopies<'a>),
}

/// Every possible CPU's copy of one per-CPU value, CPU 0 first.
///
/// The copies lie [`stride`](Self::stride) bytes apart (`round_up(value_size, 8)`, the
/// layout `bpf()` uses for per-CPU values), each followed by zero padding. A CPU below
/// the possible count whose `__per_cpu_offset` is zero has no copy: its bytes are zero.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PerCpuCopies<'a> {
    bytes: &'a [u8],
    stride: usize,
    size: usize,
    cpus: u32,
}

impl<'a> PerCpuCopies<'a> {
    /// The number of copies: the possible CPUs.
    pub fn cpus(&self) -> u32 {
        self.cpus
    }

    /// Bytes from one copy to the next.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Bytes of each copy (`value_size`).
    pub fn value_size(&self) -> usize {
        self.size
    }

    /// Every copy with its padding, back to back (`cpus × stride` bytes).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// CPU `cpu`'s copy, or `None` past the possible CPUs.
    pub fn get(&self, cpu: u32) -> Option<&'a [u8]> {
        let start = usize::try_from(cpu).ok()?.checked_mul(self.stride)?;
        self.bytes.get(start..start.checked_add(self.size)?)
    }

    /// Every copy with its CPU number, in CPU order.
    pub fn iter(&self) -> PerCpuCopiesIter<'a> {
        PerCpuCopiesIter {
            copies: *self,
            next: 0,
        }
    }
}

impl fmt::Debug for PerCpuCopies<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for PerCpuCopies<'a> {
    type Item = (u32, &'a [u8]);
    type IntoIter = PerCpuCopiesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The copies of a [`PerCpuCopies`] with their CPU numbers.
#[derive(Debug, Clone)]
pub struct PerCpuCopiesIter<'a> {
    copies: PerCpuCopies<'a>,
    next: u32,
}

impl<'a> Iterator for PerCpuCopiesIter<'a> {
    type Item = (u32, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let cpu = self.next;
        let copy = self.copies.get(cpu)?;
        self.next = cpu.saturating_add(1);
        Some((cpu, copy))
    }
}

impl FusedIterator for PerCpuCopiesIter<'_> {}

/// The sizes of the two buffers [`Bpf::for_each_entry`] takes for one map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryBufferLens {
    /// The key buffer: `key_size` bytes; for a local-storage map, its owner record
    /// ([`OwnerKind::record_len`]).
    pub key: usize,
    /// The value buffer: `value_size` bytes, or for a per-CPU map
    /// `round_up(value_size, 8) × possible CPUs`; for a BLOOM_FILTER the header and
    /// bit array ([`BloomFilter::value_len`](crate::bpf::BloomFilter::value_len)), for
    /// an object map [`object_value_size`].
    pub value: usize,
}

/// A length from the guest as a `usize` no bigger than `cap`.
fn capped(len: u64, cap: u64, what: &'static str) -> Result<usize> {
    if len > cap {
        return Err(Error::LimitExceeded {
            what,
            limit: cap,
            at: len,
        });
    }
    usize::try_from(len).map_err(|_| Error::LimitExceeded {
        what,
        limit: len_u64(usize::MAX),
        at: len,
    })
}

/// Hands `f` each entry; `f`'s `Break` ends the walk.
macro_rules! hand {
    ($f:ident, $count:ident, $key:expr, $value:expr) => {{
        $count = $count.saturating_add(1);
        if $f($key, $value).is_break() {
            return Ok($count);
        }
    }};
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// The buffers [`for_each_entry`](Self::for_each_entry) needs for `map`, with
    /// `possible_cpus` possible CPUs (used only for per-CPU maps).
    ///
    /// # Errors
    /// [`Error::UnsupportedMapType`] for a type it does not walk;
    /// [`Error::LimitExceeded`] for a key or value above
    /// [`Limits::value_size`](crate::Limits::value_size), or more possible CPUs than
    /// [`MAX_CPUS`].
    pub fn entry_buffer_lens(&self, map: &MapInfo, possible_cpus: u32) -> Result<EntryBufferLens> {
        if !WALKABLE_MAP_TYPES.contains(&map.map_type) {
            return Err(Error::UnsupportedMapType {
                id: map.id,
                map_type: map.map_type,
            });
        }
        if map.map_type == MapType::ARENA {
            // Each present page, keyed by its user address (u64, little-endian).
            return Ok(EntryBufferLens {
                key: 8,
                value: crate::bpf::ARENA_PAGE_SIZE,
            });
        }
        let cap = self.mem.limits().value_size;
        let ring = RINGBUF_MAP_TYPES.contains(&map.map_type);
        let key = match OwnerKind::of(map.map_type) {
            Some(kind) => kind.record_len(),
            // A record's position (u64).
            None if ring => 8,
            None => capped(u64::from(map.key_size), cap, "map key_size")?,
        };
        let value = if map.map_type.is_percpu() {
            if possible_cpus > MAX_CPUS {
                return Err(Error::LimitExceeded {
                    what: "possible CPUs",
                    limit: u64::from(MAX_CPUS),
                    at: u64::from(possible_cpus),
                });
            }
            // At most 2^32 × 8192 bytes: no overflow in u64.
            let all = map.percpu_stride().saturating_mul(u64::from(possible_cpus));
            capped(all, cap, "per-CPU value bytes of all CPUs")?
        } else if map.map_type == MapType::BLOOM_FILTER {
            capped(self.bloom(map)?.value_len(), cap, "bloom filter bit array")?
        } else if ring {
            capped(self.ringbuf(map)?.value_len(), cap, "ring buffer size")?
        } else if let Some(size) = object_value_size(map) {
            capped(u64::from(size), cap, "map value_size")?
        } else {
            capped(u64::from(map.value_size), cap, "map value_size")?
        };
        Ok(EntryBufferLens { key, value })
    }

    /// Calls `f` with every key and value of `map`, picking the walker its type needs:
    /// ARRAY ([`array`](Self::array)), HASH and LRU_HASH ([`htab`](Self::htab)),
    /// PERCPU_ARRAY ([`percpu_array`](Self::percpu_array)), PERCPU_HASH and
    /// LRU_PERCPU_HASH ([`percpu_htab`](Self::percpu_htab), its per-CPU pointer placed by
    /// the data), the object maps, LPM_TRIE, QUEUE and STACK (an empty key), and the
    /// local-storage maps ([`for_each_storage_elem`](Self::for_each_storage_elem), each
    /// owner's record as the key), and ARENA
    /// ([`for_each_arena_page`](Self::for_each_arena_page): each present page, keyed by
    /// its user address as a little-endian u64). `f` returns [`ControlFlow::Break`] to stop early.
    ///
    /// `key` and `value` are the caller's buffers, of exactly the
    /// [`entry_buffer_lens`](Self::entry_buffer_lens) sizes; `f` sees views into them.
    /// Per-CPU maps need `offsets` (every possible CPU's `__per_cpu_offset`); the others
    /// ignore it.
    ///
    /// Returns how many entries `f` was given. The first error ends the walk; the
    /// entries already given stay valid.
    ///
    /// ```
    /// # #[cfg(feature = "synth")] fn main() {
    /// use core::ops::ControlFlow;
    /// use mapwalk_core::bpf::{EntryValue, PerCpuOffsets};
    /// use mapwalk_core::synth::{GuestBuilder, MapSpec};
    /// use mapwalk_core::Bpf;
    ///
    /// let mut g = GuestBuilder::x86_64(false);
    /// g.add_map(MapSpec::hash(3, "flows", 2, 4, 8).entry(b"ab", &7u32.to_le_bytes()));
    /// let guest = g.build();
    /// let view = guest.view();
    /// let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
    /// let map = bpf.map_by_id(3).unwrap().unwrap();
    /// let (mut key, mut value) = ([0u8; 2], [0u8; 4]);
    /// let mut seen = Vec::new();
    /// bpf.for_each_entry(&map, None::<&PerCpuOffsets<Vec<u64>>>, &mut key, &mut value, |k, v| {
    ///     if let EntryValue::Single(v) = v {
    ///         seen.push((k.to_vec(), v.to_vec()));
    ///     }
    ///     ControlFlow::Continue(())
    /// })
    /// .unwrap();
    /// assert_eq!(seen, [(b"ab".to_vec(), 7u32.to_le_bytes().to_vec())]);
    /// # }
    /// # #[cfg(not(feature = "synth"))] fn main() {}
    /// ```
    ///
    /// # Errors
    /// [`Error::UnsupportedMapType`] for another type, [`Error::PerCpuOffsetsMissing`]
    /// for a per-CPU map without `offsets`, [`Error::BufferSize`] for a buffer of the
    /// wrong size, or the walker's error.
    pub fn for_each_entry<B: AsRef<[u64]>>(
        &self,
        map: &MapInfo,
        offsets: Option<&PerCpuOffsets<B>>,
        key: &mut [u8],
        value: &mut [u8],
        f: impl FnMut(&[u8], EntryValue<'_>) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.for_each_entry_counted(map, offsets, key, value, &mut 0, f)
    }

    /// [`for_each_entry`](Self::for_each_entry), adding to `rereads` how many times a
    /// hash or local-storage bucket was read again because it changed under the walk
    /// ([`HtabWalk::rereads`](crate::bpf::HtabWalk::rereads),
    /// [`StorageWalkStats::rereads`]): 0 for a still guest.
    ///
    /// # Errors
    /// As [`for_each_entry`](Self::for_each_entry).
    pub fn for_each_entry_counted<B: AsRef<[u64]>>(
        &self,
        map: &MapInfo,
        offsets: Option<&PerCpuOffsets<B>>,
        key: &mut [u8],
        value: &mut [u8],
        rereads: &mut u64,
        mut f: impl FnMut(&[u8], EntryValue<'_>) -> ControlFlow<()>,
    ) -> Result<u64> {
        let percpu = map.map_type.is_percpu();
        let offsets = match offsets {
            None if percpu && WALKABLE_MAP_TYPES.contains(&map.map_type) => {
                return Err(Error::PerCpuOffsetsMissing { id: map.id })
            }
            o => o,
        };
        let cpus = offsets.map_or(0, PerCpuOffsets::possible);
        let lens = self.entry_buffer_lens(map, cpus)?;
        for (need, buf) in [(lens.key, key.len()), (lens.value, value.len())] {
            if need != buf {
                return Err(Error::BufferSize {
                    need: len_u64(need),
                    have: len_u64(buf),
                });
            }
        }
        let mem = self.mem;
        let size = usize::try_from(map.value_size).unwrap_or(usize::MAX);
        let stride = usize::try_from(map.percpu_stride()).unwrap_or(usize::MAX);
        let mut count = 0u64;
        match (map.map_type, offsets) {
            (MapType::ARRAY, _) => {
                let arr = self.array(map)?;
                // `array` checked max_entries against MAX_ARRAY_ENTRIES.
                for index in 0..map.max_entries {
                    arr.read(mem, index, 0, value)?;
                    hand!(f, count, &index.to_le_bytes(), EntryValue::Single(value));
                }
            }
            (MapType::HASH | MapType::LRU_HASH, _) => {
                let h = self.htab(map)?;
                // Bounded by the walk's own caps (buckets, chains, max_entries + extra).
                let mut walk = h.walk(mem);
                let walked = (|| {
                    while let Some(item) = walk.next_into(key, value) {
                        item?;
                        hand!(f, count, key, EntryValue::Single(value));
                    }
                    Ok(count)
                })();
                *rereads = rereads.saturating_add(walk.rereads());
                count = walked?;
            }
            (MapType::PERCPU_ARRAY, Some(offsets)) => {
                let arr = self.percpu_array(map)?;
                // Bounded by max_entries, checked against MAX_ARRAY_ENTRIES.
                for item in arr.walk(mem) {
                    let entry = item?;
                    fill_copies(value, stride, size, |cpu, dst| {
                        offsets.read_copy(mem, entry.pptr, cpu, dst)
                    })?;
                    let copies = PerCpuCopies {
                        bytes: value,
                        stride,
                        size,
                        cpus,
                    };
                    hand!(
                        f,
                        count,
                        &entry.key.to_le_bytes(),
                        EntryValue::PerCpu(copies)
                    );
                }
            }
            (MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH, Some(offsets)) => {
                let h = self.percpu_htab(map, offsets, None)?;
                let mut walk = h.walk(mem);
                let walked = (|| {
                    while let Some(item) = walk.next_into(key, &mut []) {
                        let entry = item?;
                        fill_copies(value, stride, size, |cpu, dst| {
                            walk.copy_cpu_value(offsets, &entry, cpu, dst)
                        })?;
                        let copies = PerCpuCopies {
                            bytes: value,
                            stride,
                            size,
                            cpus,
                        };
                        hand!(f, count, key, EntryValue::PerCpu(copies));
                    }
                    Ok(count)
                })();
                *rereads = rereads.saturating_add(walk.rereads());
                count = walked?;
            }
            (MapType::PROG_ARRAY | MapType::ARRAY_OF_MAPS | MapType::HASH_OF_MAPS, _) => {
                // The value is the id of the object in the slot, as bpf() returns it.
                let Some(id_buf) = value.get_mut(..4) else {
                    return Err(Error::Corrupt {
                        what: "object map value_size (below 4)",
                        at: map.kva,
                        value: u64::from(map.value_size),
                    });
                };
                count = self.for_each_fd_slot(map, key, |k, id| {
                    id_buf.copy_from_slice(&id.to_le_bytes());
                    f(k, EntryValue::Single(id_buf))
                })?;
            }
            (MapType::LPM_TRIE, _) => {
                count =
                    self.for_each_lpm_entry(map, key, value, |k, v| f(k, EntryValue::Single(v)))?;
            }
            (MapType::ARENA, _) => {
                // Each present page keyed by its user address; absent pages skipped.
                count = self.for_each_arena_page(map, value, |uaddr, page| {
                    f(&uaddr.to_le_bytes(), EntryValue::Single(page))
                })?;
            }
            (MapType::QUEUE | MapType::STACK, _) => {
                // No keys: each element with an empty key, in pop order.
                count = self.for_each_queue_value(map, value, |v| f(&[], EntryValue::Single(v)))?;
            }
            (
                MapType::TASK_STORAGE
                | MapType::INODE_STORAGE
                | MapType::SK_STORAGE
                | MapType::CGRP_STORAGE,
                _,
            ) => {
                // The owner's record is the key.
                let mut stats = StorageWalkStats::default();
                let mut record_err = None;
                let walked = self.storage_walk(map, value, &mut stats, &mut |owner, v| {
                    if let Err(e) = owner.write_record(key) {
                        record_err = Some(e);
                        return ControlFlow::Break(());
                    }
                    f(key, EntryValue::Single(v))
                });
                *rereads = rereads.saturating_add(stats.rereads);
                walked?;
                if let Some(e) = record_err {
                    return Err(e);
                }
                count = stats.elems;
            }
            (MapType::BLOOM_FILTER, _) => {
                // One value, with an empty key: the header and the bit array.
                self.read_bloom_value(map, value)?;
                hand!(f, count, &[], EntryValue::Single(value));
            }
            (MapType::RINGBUF | MapType::USER_RINGBUF, _) => {
                // A header entry with an empty key, then each record keyed by its
                // position (docs/ringbuf.md).
                let rb = self.ringbuf(map)?;
                let header = rb.header(map.map_type);
                hand!(f, count, &[], EntryValue::Single(&header));
                let mut stopped = false;
                let cap = crate::bpf::RINGBUF_MAX_RECORDS;
                let n = self.ringbuf_records_of(&rb, value, cap, |rec, bytes| {
                    key.copy_from_slice(&rec.pos.to_le_bytes());
                    let flow = f(key, EntryValue::Single(bytes));
                    stopped = flow.is_break();
                    flow
                })?;
                count = count.saturating_add(n);
                if stopped {
                    return Ok(count);
                }
            }
            (MapType::STACK_TRACE, _) => {
                // The bucket id (a u32) is the key; the value is the frames and zeros.
                if map.key_size != 4 {
                    return Err(Error::Corrupt {
                        what: "stack trace map key_size (not 4)",
                        at: map.kva,
                        value: u64::from(map.key_size),
                    });
                }
                count = self.for_each_stack(map, value, |id, _, v| {
                    key.copy_from_slice(&id.to_le_bytes());
                    f(key, EntryValue::Single(v))
                })?;
            }
            (MapType::STRUCT_OPS, _) => {
                // One entry, key 0: the struct as a lookup returns it (program ids in
                // the function-pointer slots).
                self.struct_ops_value(map, value)?;
                key.copy_from_slice(&0u32.to_le_bytes());
                hand!(f, count, key, EntryValue::Single(value));
            }
            _ if object_value_size(map).is_some() => {
                count =
                    self.for_each_object_slot(map, key, value, |k, v| f(k, EntryValue::Single(v)))?;
            }
            (map_type, _) => {
                return Err(Error::UnsupportedMapType {
                    id: map.id,
                    map_type,
                })
            }
        }
        Ok(count)
    }
}

/// Fills each `stride`-byte chunk of `buf` with one CPU's copy (`size` bytes, then zero
/// padding); a CPU without a copy is all zero. `buf` holds at most [`MAX_CPUS`] chunks
/// (checked by [`Bpf::entry_buffer_lens`]).
fn fill_copies(
    buf: &mut [u8],
    stride: usize,
    size: usize,
    mut read: impl FnMut(u32, &mut [u8]) -> Result<CpuCopy>,
) -> Result<()> {
    for (cpu, chunk) in (0..MAX_CPUS).zip(buf.chunks_mut(stride.max(1))) {
        let (copy, pad) = chunk.split_at_mut(size.min(chunk.len()));
        pad.fill(0);
        if let CpuCopy::NoSuchCpu = read(cpu, copy)? {
            copy.fill(0);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::synth::{GuestBuilder, MapSpec, SynthArch, SyntheticGuest};

    /// What a walk handed over: the key, and each CPU's copy (one copy for a single
    /// value, with CPU `u32::MAX`).
    type Seen = Vec<(Vec<u8>, Vec<(u32, Vec<u8>)>)>;

    fn walk(g: &SyntheticGuest, id: u32, with_offsets: bool) -> Result<Seen> {
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(id).unwrap().unwrap();
        let offsets = g.offsets();
        let lens = bpf.entry_buffer_lens(&map, offsets.possible())?;
        let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
        let mut seen = Vec::new();
        let n = bpf.for_each_entry(
            &map,
            with_offsets.then_some(&offsets),
            &mut key,
            &mut value,
            |k, v| {
                let copies = match v {
                    EntryValue::Single(v) => vec![(u32::MAX, v.to_vec())],
                    EntryValue::PerCpu(c) => {
                        assert_eq!(c.as_bytes().len(), c.stride() * c.cpus() as usize);
                        c.iter().map(|(cpu, v)| (cpu, v.to_vec())).collect()
                    }
                };
                seen.push((k.to_vec(), copies));
                ControlFlow::Continue(())
            },
        )?;
        assert_eq!(n, seen.len() as u64);
        Ok(seen)
    }

    fn padded(v: &[u8], size: usize) -> Vec<u8> {
        let mut v = v.to_vec();
        v.resize(size, 0);
        v
    }

    /// One guest holding every walkable type, with 3 possible CPUs.
    fn specs() -> Vec<MapSpec> {
        let cpu_val = |seed: u32| move |cpu: u32| (seed * 100 + cpu).to_le_bytes().repeat(3);
        vec![
            MapSpec::array(1, "arr", 12, 5).with_values(|k| (k * 7).to_le_bytes().repeat(3)),
            MapSpec::hash(2, "hash", 6, 5, 16)
                .entry(b"key-01", b"one")
                .entry(b"key-02", b"two!!")
                .entry_in_bucket(3, b"key-03", b"3")
                .entry_in_bucket(3, b"key-04", b"four"),
            MapSpec::new(3, MapType::LRU_HASH, "lru", 4, 8, 8)
                .entry(&9u32.to_le_bytes(), &90u64.to_le_bytes())
                .entry(&8u32.to_le_bytes(), &80u64.to_le_bytes()),
            MapSpec::new(4, MapType::PERCPU_ARRAY, "pcpu_arr", 4, 12, 4)
                .with_cpu_values(3, |k, cpu| (k * 10 + cpu).to_le_bytes().repeat(3)),
            MapSpec::new(5, MapType::PERCPU_HASH, "pcpu_hash", 6, 12, 8)
                .percpu_entry(b"abcdef", (0..3).map(cpu_val(1)).collect())
                .percpu_entry(b"ghijkl", (0..3).map(cpu_val(2)).collect()),
            MapSpec::new(6, MapType::LRU_PERCPU_HASH, "lru_pcpu", 8, 12, 8)
                .percpu_entry(&[7; 8], (0..3).map(cpu_val(3)).collect())
                .percpu_vmalloc(),
            MapSpec::new(7, MapType::CGROUP_STORAGE, "cgst", 12, 8, 0),
        ]
    }

    fn guest(arch: SynthArch) -> (SyntheticGuest, Vec<MapSpec>) {
        let specs = specs();
        let mut b = GuestBuilder::new(arch).possible_cpus(3);
        for s in &specs {
            b.add_map(s.clone());
        }
        (b.build(), specs)
    }

    /// What the builder was told to lay out, as a walk would hand it over (hash maps
    /// sorted: their walk order is the bucket order).
    fn expected(spec: &MapSpec) -> Seen {
        let size = spec.value_size as usize;
        let mut out: Seen = match spec.map_type {
            MapType::ARRAY => (0..spec.max_entries)
                .map(|k| {
                    let v = spec.values.get(k as usize).map_or(&[][..], |v| &v[..]);
                    (k.to_le_bytes().to_vec(), vec![(u32::MAX, padded(v, size))])
                })
                .collect(),
            MapType::PERCPU_ARRAY => (0..spec.max_entries)
                .map(|k| {
                    let cpus = &spec.cpu_values[k as usize];
                    let copies = (0..3)
                        .map(|c| (c, padded(&cpus[c as usize], size)))
                        .collect();
                    (k.to_le_bytes().to_vec(), copies)
                })
                .collect(),
            t if t.is_percpu() => spec
                .entries
                .iter()
                .map(|e| {
                    let copies = (0..3)
                        .map(|c| (c, padded(&e.cpu_values[c as usize], size)))
                        .collect();
                    (e.key.clone(), copies)
                })
                .collect(),
            _ => spec
                .entries
                .iter()
                .map(|e| (e.key.clone(), vec![(u32::MAX, padded(&e.value, size))]))
                .collect(),
        };
        out.sort();
        out
    }

    #[test]
    fn every_walkable_type_gives_what_the_builder_laid_out() {
        for arch in [
            SynthArch::X86_64 { five_level: false },
            SynthArch::Aarch64 { granule_shift: 16 },
        ] {
            let (g, specs) = guest(arch);
            for spec in specs
                .iter()
                .filter(|s| WALKABLE_MAP_TYPES.contains(&s.map_type))
            {
                let mut got = walk(&g, spec.id, true).unwrap();
                got.sort();
                let want = expected(spec);
                assert!(!want.is_empty(), "map {}", spec.id);
                assert_eq!(got, want, "map {} ({})", spec.id, spec.map_type);
            }
        }
    }

    #[test]
    fn arrays_come_in_key_order() {
        let (g, specs) = guest(SynthArch::X86_64 { five_level: true });
        let got = walk(&g, 1, false).unwrap();
        assert_eq!(got, expected(&specs[0]));
        assert_eq!(got[3].1[0].1, 21u32.to_le_bytes().repeat(3));
        let got = walk(&g, 4, true).unwrap();
        assert_eq!(got[2].0, 2u32.to_le_bytes());
        assert_eq!(got[2].1[1], (1, 21u32.to_le_bytes().repeat(3)));
    }

    #[test]
    fn the_callback_can_stop_the_walk() {
        let (g, _) = guest(SynthArch::X86_64 { five_level: false });
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let offsets = g.offsets();
        for id in [1, 2, 4, 5] {
            let map = bpf.map_by_id(id).unwrap().unwrap();
            let lens = bpf.entry_buffer_lens(&map, 3).unwrap();
            let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
            let mut calls = 0;
            let n = bpf
                .for_each_entry(&map, Some(&offsets), &mut key, &mut value, |_, _| {
                    calls += 1;
                    ControlFlow::Break(())
                })
                .unwrap();
            assert_eq!((n, calls), (1, 1), "map {id}");
        }
    }

    #[test]
    fn unsupported_types_missing_offsets_and_bad_buffers_are_typed_errors() {
        let (g, _) = guest(SynthArch::X86_64 { five_level: false });
        assert_eq!(
            walk(&g, 7, true),
            Err(Error::UnsupportedMapType {
                id: 7,
                map_type: MapType::CGROUP_STORAGE
            })
        );
        for id in [4, 5, 6] {
            assert_eq!(walk(&g, id, false), Err(Error::PerCpuOffsetsMissing { id }));
        }
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(5).unwrap().unwrap();
        // 3 CPUs × round_up(12, 8).
        assert_eq!(
            bpf.entry_buffer_lens(&map, 3),
            Ok(EntryBufferLens { key: 6, value: 48 })
        );
        let (mut key, mut value) = ([0u8; 6], [0u8; 40]);
        assert_eq!(
            bpf.for_each_entry(&map, Some(&g.offsets()), &mut key, &mut value, |_, _| {
                ControlFlow::Continue(())
            }),
            Err(Error::BufferSize { need: 48, have: 40 })
        );
        assert_eq!(
            bpf.entry_buffer_lens(&map, MAX_CPUS + 1),
            Err(Error::LimitExceeded {
                what: "possible CPUs",
                limit: u64::from(MAX_CPUS),
                at: u64::from(MAX_CPUS) + 1
            })
        );
    }

    #[test]
    fn a_value_above_the_cap_is_refused_before_any_buffer() {
        let (g, _) = guest(SynthArch::X86_64 { five_level: false });
        let view = g.view().with_limits(crate::Limits {
            value_size: 11,
            ..crate::Limits::DEFAULT
        });
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(1).unwrap().unwrap();
        assert_eq!(
            bpf.entry_buffer_lens(&map, 1),
            Err(Error::LimitExceeded {
                what: "map value_size",
                limit: 11,
                at: 12
            })
        );
    }

    #[test]
    fn copies_know_their_cpus() {
        let bytes = [1, 2, 3, 0, 0, 0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0];
        let c = PerCpuCopies {
            bytes: &bytes,
            stride: 8,
            size: 3,
            cpus: 2,
        };
        assert_eq!(c.get(1), Some(&[4, 5, 6][..]));
        assert_eq!(c.get(2), None);
        let all: Vec<(u32, &[u8])> = c.into_iter().collect();
        assert_eq!(all, [(0, &[1, 2, 3][..]), (1, &[4, 5, 6][..])]);
        assert_eq!(alloc::format!("{c:?}"), "{0: [1, 2, 3], 1: [4, 5, 6]}");
    }
}
