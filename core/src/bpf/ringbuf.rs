//! RINGBUF and USER_RINGBUF maps: the ring's positions and its pending records.
//!
//! `struct bpf_ringbuf_map` (which embeds `struct bpf_map`) points at `rb`, a
//! `struct bpf_ringbuf`: `mask` (the data area's size, a power of two, minus one),
//! `consumer_pos` and `producer_pos` on pages of their own (Linux 6.8, and kernels the
//! fix was backported to, add `pending_pos`), then the page-aligned `data`, whose pages the kernel maps twice back
//! to back so that a record that wraps is contiguous in its virtual mapping. The bytes
//! from `consumer_pos` to `producer_pos` are pending records, oldest first, each an
//! 8-byte header (u32 `len` with [`RINGBUF_BUSY_BIT`] and [`RINGBUF_DISCARD_BIT`], u32
//! `pg_off`) then `len` bytes, the whole rounded up to 8 bytes.
//!
//! [`Bpf::for_each_ringbuf_record`] hands the pending records as a consumer would see
//! them: oldest first, up to and including the first busy record (a consumer stops
//! there; its bytes are not handed, as they are still being written). The dump form
//! (docs/ringbuf.md, version [`RINGBUF_FORM_VERSION`]) is made of a header entry
//! ([`Ringbuf::header`]) and one entry per record.

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::RingbufLayout;
use crate::mem::len_u64;

/// The version of the dump form (the first u32 of [`Ringbuf::header`]).
pub const RINGBUF_FORM_VERSION: u32 = 1;

/// Bytes of [`Ringbuf::header`].
pub const RINGBUF_HEADER_LEN: usize = 48;

/// Bytes of a record's header in the ring (`BPF_RINGBUF_HDR_SZ`).
pub const RINGBUF_HDR_SZ: u64 = 8;

/// `BPF_RINGBUF_BUSY_BIT`: the record is reserved and not yet committed.
pub const RINGBUF_BUSY_BIT: u32 = 1 << 31;

/// `BPF_RINGBUF_DISCARD_BIT`: the record was discarded by its producer.
pub const RINGBUF_DISCARD_BIT: u32 = 1 << 30;

/// Most records one walk hands: every record takes at least [`RINGBUF_HDR_SZ`]
/// bytes, so a ring of the largest size the kernel allows (2^34 bytes on 64-bit
/// kernels) holds at most this many; one more is [`Error::LimitExceeded`].
pub const RINGBUF_MAX_RECORDS: u64 = 1 << 31;

/// The map types [`Bpf::ringbuf`] reads.
pub const RINGBUF_MAP_TYPES: [MapType; 2] = [MapType::RINGBUF, MapType::USER_RINGBUF];

/// A ring's positions, read from its `struct bpf_ringbuf` and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ringbuf {
    /// The data area's size in bytes (`mask + 1`, a power of two: `max_entries`).
    pub size: u64,
    /// `consumer_pos`: where the oldest pending record starts.
    pub consumer_pos: u64,
    /// `producer_pos`: where the next record will start.
    pub producer_pos: u64,
    /// `pending_pos` (Linux 6.8 and backports): where the last reservation found the
    /// oldest record still busy (or `producer_pos` then): no record before it is busy.
    /// It moves only when a record is reserved, so it may lag behind `consumer_pos`.
    pub pending_pos: Option<u64>,
    /// Where the data area is (its first mapping; the second follows it).
    pub data: Kva,
}

/// One pending record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingbufRecord {
    /// Its position (of its header) in the ring's byte stream.
    pub pos: u64,
    /// Its header's `len` word as the kernel keeps it, busy and discard bits included.
    pub len_word: u32,
    /// Its header's `pg_off` word.
    pub pg_off: u32,
}

impl RingbufRecord {
    /// The bytes of data (`len` without the busy and discard bits).
    pub fn len(&self) -> u32 {
        self.len_word & !(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT)
    }

    /// Whether the record has no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reserved and not yet committed ([`RINGBUF_BUSY_BIT`]).
    pub fn busy(&self) -> bool {
        self.len_word & RINGBUF_BUSY_BIT != 0
    }

    /// Discarded by its producer ([`RINGBUF_DISCARD_BIT`]).
    pub fn discarded(&self) -> bool {
        self.len_word & RINGBUF_DISCARD_BIT != 0
    }

    /// The bytes the record takes in the ring: header and data, rounded up to 8.
    pub fn span(&self) -> u64 {
        (u64::from(self.len()) + RINGBUF_HDR_SZ).next_multiple_of(8)
    }
}

impl Ringbuf {
    /// The pending bytes: `producer_pos - consumer_pos`.
    pub fn pending(&self) -> u64 {
        self.producer_pos.saturating_sub(self.consumer_pos)
    }

    /// The header entry's value in the dump form (docs/ringbuf.md): little-endian, the
    /// form's version (u32), the map type (u32), then u64s: the size, `consumer_pos`,
    /// `producer_pos`, `pending_pos` (`producer_pos` without the field) and the pending
    /// bytes.
    pub fn header(&self, map_type: MapType) -> [u8; RINGBUF_HEADER_LEN] {
        let mut out = [0u8; RINGBUF_HEADER_LEN];
        let (words, longs) = out.split_at_mut(8);
        for (dst, w) in words
            .chunks_exact_mut(4)
            .zip([RINGBUF_FORM_VERSION, map_type.0])
        {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        let vals = [
            self.size,
            self.consumer_pos,
            self.producer_pos,
            self.pending_pos.unwrap_or(self.producer_pos),
            self.pending(),
        ];
        for (dst, v) in longs.chunks_exact_mut(8).zip(vals) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The value buffer the dump form needs: the larger of the header and the largest
    /// record (header and data) the ring can hold.
    pub fn value_len(&self) -> u64 {
        self.size.max(len_u64(RINGBUF_HEADER_LEN))
    }
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// The positions of RINGBUF or USER_RINGBUF `map`.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::ringbuf`]; [`Error::Corrupt`] for a null `rb`, a
    /// `mask` whose size is not a power of two or not `max_entries`, a `producer_pos`
    /// below `consumer_pos`, more pending bytes than the size, or a `pending_pos`
    /// past `producer_pos` or more than the size behind it; a read error.
    pub fn ringbuf(&self, map: &MapInfo) -> Result<Ringbuf> {
        if !RINGBUF_MAP_TYPES.contains(&map.map_type) {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "ring buffer read",
            });
        }
        let l: RingbufLayout = self.layout.ringbuf.ok_or(Error::LayoutMissing {
            what: "bpf_ringbuf",
        })?;
        let at = field(map.kva, l.rb)?;
        let rb = Kva(self.mem.read_kernel_u64(at)?);
        if rb.0 == 0 {
            return Err(Error::Corrupt {
                what: "bpf_ringbuf_map.rb (null)",
                at,
                value: 0,
            });
        }
        let at = field(rb, l.mask)?;
        let mask = self.mem.read_kernel_u64(at)?;
        let size = mask.wrapping_add(1);
        if !size.is_power_of_two() || size < 8 || size != u64::from(map.max_entries) {
            return Err(Error::Corrupt {
                what: "bpf_ringbuf.mask (size not a power of two, or not max_entries)",
                at,
                value: mask,
            });
        }
        let consumer_pos = self.mem.read_kernel_u64(field(rb, l.consumer_pos)?)?;
        let at = field(rb, l.producer_pos)?;
        let producer_pos = self.mem.read_kernel_u64(at)?;
        match producer_pos.checked_sub(consumer_pos) {
            Some(p) if p <= size => {}
            _ => {
                return Err(Error::Corrupt {
                    what: "bpf_ringbuf.producer_pos (below consumer_pos, or more than the \
                           size ahead of it)",
                    at,
                    value: producer_pos,
                })
            }
        }
        let pending_pos = match l.pending_pos {
            Some(off) => {
                let at = field(rb, off)?;
                let p = self.mem.read_kernel_u64(at)?;
                // Moved on only when a record is reserved, so it may lag behind the
                // consumer; never past the producer, nor more than the ring behind it.
                if producer_pos.checked_sub(p).is_none_or(|d| d > size) {
                    return Err(Error::Corrupt {
                        what: "bpf_ringbuf.pending_pos (past producer_pos, or more than the \
                               size behind it)",
                        at,
                        value: p,
                    });
                }
                Some(p)
            }
            None => None,
        };
        Ok(Ringbuf {
            size,
            consumer_pos,
            producer_pos,
            pending_pos,
            data: field(rb, l.data)?,
        })
    }

    /// Calls `f` with each pending record of RINGBUF or USER_RINGBUF `map`, oldest
    /// first, and `buf` filled with its 8-byte header as the kernel keeps it then its
    /// data (`f` sees that prefix of `buf`). A busy record is handed with its header
    /// only, and ends the walk, as it ends a consumer's. `buf` must be
    /// [`Ringbuf::value_len`] bytes. `f`'s `Break` ends the walk.
    ///
    /// Returns the ring and how many records `f` was given.
    ///
    /// # Errors
    /// As [`ringbuf`](Self::ringbuf); [`Error::BufferSize`] for a `buf` of another
    /// length; [`Error::Corrupt`] for a record longer than the pending bytes left;
    /// [`Error::LimitExceeded`] past [`RINGBUF_MAX_RECORDS`]; a read error.
    pub fn for_each_ringbuf_record(
        &self,
        map: &MapInfo,
        buf: &mut [u8],
        f: impl FnMut(&RingbufRecord, &[u8]) -> ControlFlow<()>,
    ) -> Result<(Ringbuf, u64)> {
        let rb = self.ringbuf(map)?;
        let n = self.ringbuf_records_of(&rb, buf, RINGBUF_MAX_RECORDS, f)?;
        Ok((rb, n))
    }

    /// The records of ring `rb` (read by [`ringbuf`](Self::ringbuf)), as
    /// [`for_each_ringbuf_record`](Self::for_each_ringbuf_record) hands them, with a cap
    /// of `cap` records: how many `f` was given.
    pub(crate) fn ringbuf_records_of(
        &self,
        rb: &Ringbuf,
        buf: &mut [u8],
        cap: u64,
        mut f: impl FnMut(&RingbufRecord, &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        if len_u64(buf.len()) != rb.value_len() {
            return Err(Error::BufferSize {
                need: rb.value_len(),
                have: len_u64(buf.len()),
            });
        }
        let mask = rb.size.saturating_sub(1);
        let mut pos = rb.consumer_pos;
        let mut count = 0u64;
        // Each turn moves `pos` on by at least 8 bytes towards `producer_pos`, at most
        // `size` bytes ahead: at most size / 8 turns, and `cap` bounds them too.
        while pos < rb.producer_pos {
            if count >= cap {
                return Err(Error::LimitExceeded {
                    what: "ring buffer records",
                    limit: cap,
                    at: count.saturating_add(1),
                });
            }
            // The data pages are mapped twice: a record that wraps reads on into the
            // second mapping, as the kernel's own accesses do.
            let at = rb.data.checked_add(pos & mask).ok_or(Error::AddrOverflow {
                addr: rb.data.0,
                len: pos & mask,
            })?;
            let mut hdr = [0u8; 8];
            self.mem.read_kernel(at, &mut hdr)?;
            let [a, b, c, d, e, g, h, i] = hdr;
            let rec = RingbufRecord {
                pos,
                len_word: u32::from_le_bytes([a, b, c, d]),
                pg_off: u32::from_le_bytes([e, g, h, i]),
            };
            let left = rb.producer_pos.saturating_sub(pos);
            if rec.span() > left {
                return Err(Error::Corrupt {
                    what: "ring buffer record length (past producer_pos)",
                    at,
                    value: u64::from(rec.len_word),
                });
            }
            let shown = if rec.busy() {
                8
            } else {
                // span <= left <= size == buf.len(), so this fits.
                usize::try_from(RINGBUF_HDR_SZ.saturating_add(u64::from(rec.len())))
                    .unwrap_or(usize::MAX)
            };
            let out = buf.get_mut(..shown).ok_or(Error::BufferSize {
                need: len_u64(shown),
                have: rb.value_len(),
            })?;
            self.mem.read_kernel(at, out)?;
            // What was read must be the header checked above (a running guest).
            if out.get(..8) != Some(&hdr[..]) {
                return Err(Error::Unstable {
                    what: "ring buffer record at position",
                    at: pos,
                    reads: 2,
                });
            }
            count = count.saturating_add(1);
            if f(&rec, out).is_break() || rec.busy() {
                break;
            }
            // span >= 8 and span <= left: pos stays at most producer_pos.
            pos = pos.saturating_add(rec.span());
        }
        Ok(count)
    }
}

#[cfg(test)]
#[path = "ringbuf_tests.rs"]
mod tests;
