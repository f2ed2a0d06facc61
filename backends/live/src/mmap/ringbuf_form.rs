//! A mapped ring buffer in mapwalk's dump form (docs/ringbuf.md), as the memory path
//! hands it: a header entry, then each pending record with its header.

use std::ops::ControlFlow;

use mapwalk_core::bpf::{
    RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_FORM_VERSION, RINGBUF_HDR_SZ, RINGBUF_HEADER_LEN,
};
use mapwalk_core::MapType;

use super::RingbufView;
use crate::error::{Error, Result};

/// Reads of a ring whose consumer keeps moving before one is taken as a moment's view;
/// one more is [`Error::LimitExceeded`].
pub const RINGBUF_FORM_READS: u64 = 8;

/// One read of the ring: the header entry's value and each record (position, header
/// and data).
type FormRead = ([u8; RINGBUF_HEADER_LEN], Vec<(u64, Vec<u8>)>);

impl RingbufView {
    /// The ring in mapwalk's dump form (docs/ringbuf.md), the same as a memory dump
    /// of the map: `f` gets the header entry (an empty key), then each pending record
    /// keyed by its position (8 bytes, little-endian) with its 8-byte header then its
    /// data; a busy record comes with its header only and ends the list. Nothing is
    /// consumed. Returns how many entries `f` was given.
    ///
    /// `pending_pos` says whether the kernel has `bpf_ringbuf.pending_pos` (Linux 6.8,
    /// and stable kernels it was backported to: ask its BTF), on the producer page
    /// right after `producer_pos`; without it the header repeats `producer_pos`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the positions or a record contradict the ring's size;
    /// [`Error::LimitExceeded`] when the consumer moved under each of
    /// [`RINGBUF_FORM_READS`] reads; [`Error::OutOfRange`].
    pub fn for_each_form_entry(
        &self,
        map_type: MapType,
        pending_pos: bool,
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        let pending = pending_pos;
        let mut read = None;
        for _ in 0..RINGBUF_FORM_READS {
            let (cons, prod) = self.positions()?;
            let got = self.read_form(map_type, cons, prod, pending)?;
            // The producer never writes below `consumer_pos + size`: with the consumer
            // where it was, every record read was intact throughout.
            if self.positions()?.0 == cons {
                read = Some(got);
                break;
            }
        }
        let Some((header, records)) = read else {
            return Err(Error::LimitExceeded {
                what: "ring buffer reads while its consumer moved",
                limit: RINGBUF_FORM_READS,
                value: RINGBUF_FORM_READS.saturating_add(1),
            });
        };
        let mut n = 1u64;
        if f(&[], &header).is_break() {
            return Ok(n);
        }
        for (pos, bytes) in &records {
            n = n.saturating_add(1);
            if f(&pos.to_le_bytes(), bytes).is_break() {
                break;
            }
        }
        Ok(n)
    }

    fn read_form(
        &self,
        map_type: MapType,
        cons: u64,
        prod: u64,
        pending: bool,
    ) -> Result<FormRead> {
        let used = prod.checked_sub(cons).ok_or(Error::Corrupt {
            what: "ring buffer positions (producer behind consumer)",
            value: prod,
        })?;
        if used > self.size {
            return Err(Error::Corrupt {
                what: "ring buffer positions (more pending than the ring holds)",
                value: used,
            });
        }
        let pending_pos = if pending {
            let p = self.mapping.load_u64_acquire(self.page.saturating_add(8))?;
            // Moved on only by reservations: it may lag behind the consumer.
            if prod.checked_sub(p).is_none_or(|d| d > self.size) {
                return Err(Error::Corrupt {
                    what: "ring buffer pending_pos (past producer_pos, or more than the size \
                           behind it)",
                    value: p,
                });
            }
            p
        } else {
            prod
        };
        let mut header = [0u8; RINGBUF_HEADER_LEN];
        let (words, longs) = header.split_at_mut(8);
        for (dst, w) in words
            .chunks_exact_mut(4)
            .zip([RINGBUF_FORM_VERSION, map_type.0])
        {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        for (dst, v) in longs
            .chunks_exact_mut(8)
            .zip([self.size, cons, prod, pending_pos, used])
        {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        let mask = self.size.wrapping_sub(1);
        let data = 2u64.saturating_mul(self.page as u64);
        let mut records = Vec::new();
        let mut pos = cons;
        // Each record moves `pos` on by at least 8 bytes, at most `size` bytes in all.
        while pos < prod {
            let hdr_off = usize::try_from(data.saturating_add(pos & mask)).unwrap_or(usize::MAX);
            let word = self.mapping.load_u32_acquire(hdr_off)?;
            let len = u64::from(word & !(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT));
            let total = len.saturating_add(RINGBUF_HDR_SZ).next_multiple_of(8);
            if pos.saturating_add(total) > prod {
                return Err(Error::Corrupt {
                    what: "ring buffer record length",
                    value: len,
                });
            }
            let busy = word & RINGBUF_BUSY_BIT != 0;
            let shown = if busy { 0 } else { len };
            // The data pages are mapped twice in a row: a record that wraps is
            // contiguous.
            let mut buf =
                vec![0u8; usize::try_from(shown.saturating_add(RINGBUF_HDR_SZ)).unwrap_or(0)];
            self.mapping.copy_out(hdr_off, &mut buf)?;
            if let Some(w) = buf.get_mut(..4) {
                // The word the length was taken from, not a later one.
                w.copy_from_slice(&word.to_le_bytes());
            }
            records.push((pos, buf));
            if busy {
                break;
            }
            pos = pos.saturating_add(total);
        }
        Ok((header, records))
    }
}
