//! A growable buffer of guest RAM with a bump allocator.

use alloc::vec::Vec;

use crate::addr::Pa;
use crate::mem::Ram;

/// Guest RAM under construction: a zeroed buffer starting at `base`, handed out in
/// aligned chunks by a bump allocator.
///
/// # Panics
/// A builder works on data its caller chose: allocating past the end of the buffer, or
/// writing outside it, panics with a message saying so.
#[derive(Debug, Clone)]
pub struct SynthRam {
    base: Pa,
    bytes: Vec<u8>,
    next: u64,
}

impl SynthRam {
    /// `size` bytes of zeroed RAM whose first byte is at physical address `base`.
    pub fn new(base: Pa, size: usize) -> Self {
        Self {
            base,
            bytes: alloc::vec![0; size],
            next: 0,
        }
    }

    /// The first physical address.
    pub fn base(&self) -> Pa {
        self.base
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Allocates `size` zeroed bytes aligned to `align` (a power of two).
    pub fn alloc(&mut self, size: u64, align: u64) -> Pa {
        assert!(
            align.is_power_of_two(),
            "alignment {align:#x} is not a power of two"
        );
        let base = self.base.0;
        let start = (base + self.next).next_multiple_of(align);
        let end = start + size;
        assert!(
            end - base <= self.bytes.len() as u64,
            "synthetic RAM of {:#x} bytes is full (asked for {size:#x} more)",
            self.bytes.len()
        );
        self.next = end - base;
        Pa(start)
    }

    /// Allocates one zeroed page of `1 << shift` bytes, aligned to its size.
    pub fn alloc_page(&mut self, shift: u32) -> Pa {
        self.alloc(1 << shift, 1 << shift)
    }

    /// Moves the allocator to `pa` (forwards only), so later allocations come after it.
    pub fn skip_to(&mut self, pa: Pa) {
        let off = pa.0 - self.base.0;
        assert!(
            off >= self.next,
            "cannot move the allocator backwards to {pa}"
        );
        self.next = off;
    }

    fn range(&self, pa: Pa, len: usize) -> core::ops::Range<usize> {
        let off =
            pa.0.checked_sub(self.base.0)
                .expect("address below synthetic RAM") as usize;
        assert!(
            off + len <= self.bytes.len(),
            "{len} bytes at {pa} run past synthetic RAM"
        );
        off..off + len
    }

    /// Writes `data` at `pa`.
    pub fn write(&mut self, pa: Pa, data: &[u8]) {
        let r = self.range(pa, data.len());
        self.bytes[r].copy_from_slice(data);
    }

    /// Writes a little-endian `u8`.
    pub fn write_u8(&mut self, pa: Pa, v: u8) {
        self.write(pa, &[v]);
    }

    /// Writes a little-endian `u16`.
    pub fn write_u16(&mut self, pa: Pa, v: u16) {
        self.write(pa, &v.to_le_bytes());
    }

    /// Writes a little-endian `u32`.
    pub fn write_u32(&mut self, pa: Pa, v: u32) {
        self.write(pa, &v.to_le_bytes());
    }

    /// Writes a little-endian `u64`.
    pub fn write_u64(&mut self, pa: Pa, v: u64) {
        self.write(pa, &v.to_le_bytes());
    }

    /// The bytes at `pa .. pa + len`.
    pub fn slice(&self, pa: Pa, len: usize) -> &[u8] {
        &self.bytes[self.range(pa, len)]
    }

    /// Reads a little-endian `u64`.
    pub fn read_u64(&self, pa: Pa) -> u64 {
        u64::from_le_bytes(self.slice(pa, 8).try_into().expect("eight bytes"))
    }

    /// The whole buffer.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole buffer, mutably (for tests that corrupt it).
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// A read-only backend over the buffer.
    pub fn as_ram(&self) -> Ram<&[u8]> {
        Ram::new(self.base, &self.bytes)
    }

    /// The buffer as a backend, consuming the builder.
    pub fn into_ram(self) -> Ram<Vec<u8>> {
        Ram::new(self.base, self.bytes)
    }
}
