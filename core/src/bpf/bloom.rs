//! BLOOM_FILTER maps: the bit array and what it was made with.
//!
//! `struct bpf_bloom_filter` (which embeds `struct bpf_map`) holds `nr_hash_funcs`,
//! `hash_seed`, `bitset_mask` (the array's size in bits, minus one: a power of two of
//! at least 64 bits) and the bit array itself at `bitset`. A push sets, for each
//! `i < nr_hash_funcs`, bit `jhash(value, hash_seed + i) & bitset_mask` (`jhash2` over
//! `value_size / 4` words when `value_size` is a multiple of 4). `bpf()` can only test
//! a value's membership, so memory is the only view of the array.
//!
//! [`Bpf::read_bloom_value`] hands the filter as one value of our own form
//! (docs/bloom-filter.md, version [`BLOOM_FORM_VERSION`]): a 16-byte header
//! ([`BLOOM_HEADER_LEN`]) of four little-endian u32s (the form's version,
//! `nr_hash_funcs`, `hash_seed`, `bitset_mask`), then the bit array as the kernel keeps
//! it (bit `n` is bit `n % 8` of byte `n / 8`).

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::BloomLayout;
use crate::mem::len_u64;

/// Bytes of the header before the bit array in [`Bpf::read_bloom_value`]'s value.
pub const BLOOM_HEADER_LEN: usize = 16;

/// The version of the value form [`Bpf::read_bloom_value`] hands (its first u32).
pub const BLOOM_FORM_VERSION: u32 = 1;

/// The most hash functions a filter can have: the low 4 bits of `map_extra`.
pub const BLOOM_MAX_HASH_FUNCS: u32 = 15;

/// The `bitset_mask` the kernel gives a filter of `max_entries` values and
/// `nr_hash_funcs` hash functions (`bloom_map_alloc`): `max_entries * nr_hash_funcs *
/// 7 / 5` bits rounded up to a power of two, at least 64; `u32::MAX` (2^32 bits) when
/// that overflows or passes 2^31.
pub fn bloom_bitset_mask(max_entries: u32, nr_hash_funcs: u32) -> u32 {
    let bits = max_entries
        .checked_mul(nr_hash_funcs)
        .and_then(|n| n.checked_div(5))
        .and_then(|n| n.checked_mul(7));
    match bits {
        Some(n) if n <= 1 << 31 => {
            if n <= 64 {
                63
            } else {
                n.checked_next_power_of_two()
                    .and_then(|p| p.checked_sub(1))
                    .unwrap_or(u32::MAX)
            }
        }
        _ => u32::MAX,
    }
}

/// A BLOOM_FILTER's parameters, read from its `struct bpf_bloom_filter` and checked
/// against what the kernel would have made of the map's `max_entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BloomFilter {
    /// `nr_hash_funcs` (1 to [`BLOOM_MAX_HASH_FUNCS`]).
    pub nr_hash_funcs: u32,
    /// `hash_seed` (0 with `BPF_F_ZERO_SEED`).
    pub hash_seed: u32,
    /// `bitset_mask`: the bit array's size in bits, minus one.
    pub bitset_mask: u32,
    /// Where the bit array is.
    pub bitset: Kva,
}

impl BloomFilter {
    /// The bit array's size in bits (`bitset_mask + 1`, up to 2^32).
    pub fn bits(&self) -> u64 {
        u64::from(self.bitset_mask).saturating_add(1)
    }

    /// The bit array's size in bytes (a multiple of 8: the kernel's `unsigned long`s).
    pub fn bitset_bytes(&self) -> u64 {
        self.bits().div_ceil(8).next_multiple_of(8)
    }

    /// The length of [`Bpf::read_bloom_value`]'s value: the header and the bit array.
    pub fn value_len(&self) -> u64 {
        self.bitset_bytes()
            .saturating_add(len_u64(BLOOM_HEADER_LEN))
    }
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// The parameters of BLOOM_FILTER `map`.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::bloom`]; [`Error::Corrupt`] for a key or value
    /// size the kernel refuses, a hash count outside 1 to [`BLOOM_MAX_HASH_FUNCS`], or
    /// a `bitset_mask` other than [`bloom_bitset_mask`] of `max_entries` and the hash
    /// count; a read error.
    pub fn bloom(&self, map: &MapInfo) -> Result<BloomFilter> {
        if map.map_type != MapType::BLOOM_FILTER {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "bloom filter read",
            });
        }
        let l: BloomLayout = self.layout.bloom.ok_or(Error::LayoutMissing {
            what: "bpf_bloom_filter",
        })?;
        if map.key_size != 0 || map.value_size == 0 || map.max_entries == 0 {
            return Err(Error::Corrupt {
                what: "bloom filter sizes (key_size not 0, or value_size or max_entries 0)",
                at: map.kva,
                value: u64::from(map.key_size),
            });
        }
        let at = field(map.kva, l.nr_hash_funcs)?;
        let nr_hash_funcs = self.mem.read_kernel_u32(at)?;
        if !(1..=BLOOM_MAX_HASH_FUNCS).contains(&nr_hash_funcs) {
            return Err(Error::Corrupt {
                what: "bpf_bloom_filter.nr_hash_funcs (not 1 to 15)",
                at,
                value: u64::from(nr_hash_funcs),
            });
        }
        let at = field(map.kva, l.bitset_mask)?;
        let bitset_mask = self.mem.read_kernel_u32(at)?;
        if bitset_mask != bloom_bitset_mask(map.max_entries, nr_hash_funcs) {
            return Err(Error::Corrupt {
                what: "bpf_bloom_filter.bitset_mask (not what max_entries and \
                       nr_hash_funcs make)",
                at,
                value: u64::from(bitset_mask),
            });
        }
        let hash_seed = self.mem.read_kernel_u32(field(map.kva, l.hash_seed)?)?;
        Ok(BloomFilter {
            nr_hash_funcs,
            hash_seed,
            bitset_mask,
            bitset: field(map.kva, l.bitset)?,
        })
    }

    /// Reads BLOOM_FILTER `map` into `buf` in our own form (docs/bloom-filter.md,
    /// version [`BLOOM_FORM_VERSION`]): a [`BLOOM_HEADER_LEN`]-byte header of four
    /// little-endian u32s (the form's version, `nr_hash_funcs`, `hash_seed`,
    /// `bitset_mask`), then the bit array as the kernel keeps it (bit `n` is bit
    /// `n % 8` of byte `n / 8`). `buf` must be [`BloomFilter::value_len`] bytes.
    ///
    /// # Errors
    /// As [`bloom`](Self::bloom); [`Error::BufferSize`] for a `buf` of another length;
    /// a read error.
    pub fn read_bloom_value(&self, map: &MapInfo, buf: &mut [u8]) -> Result<BloomFilter> {
        let filter = self.bloom(map)?;
        if len_u64(buf.len()) != filter.value_len() {
            return Err(Error::BufferSize {
                need: filter.value_len(),
                have: len_u64(buf.len()),
            });
        }
        let (header, bits) = buf.split_at_mut(BLOOM_HEADER_LEN.min(buf.len()));
        let words = [
            BLOOM_FORM_VERSION,
            filter.nr_hash_funcs,
            filter.hash_seed,
            filter.bitset_mask,
        ];
        for (dst, w) in header.chunks_exact_mut(4).zip(words) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        self.mem.read_kernel(filter.bitset, bits)?;
        Ok(filter)
    }
}

#[cfg(test)]
#[path = "bloom_tests.rs"]
mod tests;
