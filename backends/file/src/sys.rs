//! The one place with `unsafe`: copying bytes out of, and into, memory that this process
//! maps but must never borrow.
//!
//! Guest RAM in a file is shared with another process (a running QEMU writes it while we
//! read), so no `&[u8]` or `&mut [u8]` is ever formed over it: the compiler would be
//! entitled to assume that the bytes do not change under a shared reference. Instead a
//! [`RawRegion`] is a base pointer and a length, and every access is a raw copy into or
//! out of a buffer the caller owns, as rust-vmm's `vm-memory` does:
//!
//! - an aligned access of 1, 2, 4 or 8 bytes is **one** volatile load or store of that
//!   width, so neither side ever sees half of a value the other side wrote;
//! - anything else is `ptr::copy_nonoverlapping`.
//!
//! [`RawRegion`] does not know where its memory comes from: [`Backing`] makes one from a
//! file mapping (memmap2's `MmapRaw`, which hands out pointers and never slices) or from a
//! heap buffer. The heap variant is what lets Miri check the copy logic, since Miri cannot
//! `mmap`.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use std::fs::File;
use std::io;

use memmap2::{MmapOptions, MmapRaw, UncheckedAdvice};

/// Why a [`RawRegion`] refused an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionError {
    /// Some byte of the access lies outside the region.
    OutOfBounds,
    /// A write to a region that may only be read.
    ReadOnly,
}

impl core::fmt::Display for RegionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::OutOfBounds => "the access does not lie inside the region",
            Self::ReadOnly => "the region may only be read",
        })
    }
}

impl std::error::Error for RegionError {}

/// `len` bytes at `ptr`, valid for reads (and for writes when `writable`) for `'a`, that
/// this crate only ever touches through raw copies.
///
/// Public so that other backends over memory they do not own as Rust values (a VMM's
/// guest RAM mappings) copy with the same rules; see [`RawRegion::from_raw_parts`].
#[derive(Debug, Clone, Copy)]
pub struct RawRegion<'a> {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    _owner: PhantomData<&'a ()>,
}

impl<'a> RawRegion<'a> {
    /// A region of `len` bytes at `ptr`.
    ///
    /// # Safety
    /// For all of `'a`:
    /// - `ptr` is valid for reads of `len` bytes, and for writes too if `writable`;
    /// - no Rust reference (`&`/`&mut`) to any of those bytes exists or is created, other
    ///   than through other `RawRegion`s (other *processes* may change the bytes at any
    ///   time: that is what this type is for);
    /// - `len <= isize::MAX`.
    unsafe fn new(ptr: NonNull<u8>, len: usize, writable: bool) -> Self {
        Self {
            ptr,
            len,
            writable,
            _owner: PhantomData,
        }
    }

    /// A region of `len` bytes at `ptr`, for memory this process maps but does not own
    /// as a Rust value (a VMM's guest RAM, registered with KVM as a memory slot).
    ///
    /// # Safety
    /// For all of `'a`:
    /// - `ptr` is valid for reads of `len` bytes, and for writes too if `writable`;
    /// - no Rust reference (`&`/`&mut`) to any of those bytes exists or is created, other
    ///   than through other `RawRegion`s (a guest and other threads may change the bytes
    ///   at any time: that is what this type is for);
    /// - `len <= isize::MAX`.
    pub unsafe fn from_raw_parts(ptr: NonNull<u8>, len: usize, writable: bool) -> Self {
        // SAFETY: the caller's contract is `new`'s.
        unsafe { Self::new(ptr, len, writable) }
    }

    /// A read-only region over bytes the caller owns and lends for `'a`.
    pub fn from_slice(bytes: &'a [u8]) -> Self {
        let ptr = NonNull::from(bytes).cast::<u8>();
        // SAFETY: - the shared borrow keeps `bytes` alive and unchanged for `'a`, so `ptr`
        //           is valid for reads of `bytes.len()` bytes for `'a`
        //         - the region is read-only (`writable: false`), so nothing writes through
        //           a pointer derived from a shared reference
        //         - a slice is never longer than `isize::MAX` bytes
        unsafe { Self::new(ptr, bytes.len(), false) }
    }

    /// A writable region over a buffer the caller lends exclusively for `'a`.
    #[cfg(test)]
    pub(crate) fn from_mut_slice(bytes: &'a mut [u8]) -> Self {
        let len = bytes.len();
        let ptr = NonNull::from(bytes).cast::<u8>();
        // SAFETY: - the exclusive borrow keeps the buffer alive for `'a`, and no other
        //           reference to it can exist meanwhile
        //         - `ptr` comes from a `&mut`, so it is valid for reads and writes of
        //           `len` bytes
        //         - a slice is never longer than `isize::MAX` bytes
        unsafe { Self::new(ptr, len, true) }
    }

    /// The region's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The part `offset .. offset + len` of the region, or `None` when it is not wholly
    /// inside.
    pub fn sub(&self, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        Some(Self {
            ptr: NonNull::new(self.ptr.as_ptr().wrapping_add(offset))?,
            len,
            writable: self.writable,
            _owner: PhantomData,
        })
    }

    /// Whether the region has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether writes are allowed.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether an access of `width` bytes at `offset` is a naturally aligned 1, 2, 4 or
    /// 8-byte access in host memory, that is one [`read`](Self::read) or
    /// [`write`](Self::write) performs as a single load or store.
    pub fn is_single_access(&self, offset: usize, width: usize) -> bool {
        let p = self.ptr.as_ptr().wrapping_add(offset);
        match width {
            1 => true,
            2 => p.cast::<u16>().is_aligned(),
            4 => p.cast::<u32>().is_aligned(),
            8 => p.cast::<u64>().is_aligned(),
            _ => false,
        }
    }

    /// The start of `offset .. offset + n` inside the region, after the bounds check.
    fn at(&self, offset: usize, n: usize) -> Result<*mut u8, RegionError> {
        match offset.checked_add(n) {
            Some(end) if end <= self.len => Ok(self.ptr.as_ptr().wrapping_add(offset)),
            _ => Err(RegionError::OutOfBounds),
        }
    }

    /// Copies `offset .. offset + dst.len()` of the region into `dst`.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), RegionError> {
        let src = self.at(offset, dst.len())?;
        if dst.is_empty() {
            return Ok(());
        }
        if self.is_single_access(offset, dst.len()) {
            return read_single(src, dst);
        }
        // SAFETY: - `src .. src + dst.len()` lies inside the region (`at` checked it), so
        //           it is valid for reads by `RawRegion::new`'s contract
        //         - `dst` is a caller-owned buffer and the region's bytes are never
        //           referenced, so the two cannot overlap
        //         - `u8` has no alignment requirement
        unsafe { ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies `src` to `offset .. offset + src.len()` of the region. An aligned write of
    /// 1, 2, 4 or 8 bytes (see [`is_single_access`](Self::is_single_access)) is one store.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), RegionError> {
        if !self.writable {
            return Err(RegionError::ReadOnly);
        }
        let dst = self.at(offset, src.len())?;
        if src.is_empty() {
            return Ok(());
        }
        if self.is_single_access(offset, src.len()) {
            return write_single(dst, src);
        }
        // SAFETY: - `dst .. dst + src.len()` lies inside the region (`at` checked it) and
        //           the region is writable, so it is valid for writes
        //         - `src` is a caller-owned buffer and the region's bytes are never
        //           referenced, so the two cannot overlap
        //         - `u8` has no alignment requirement
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Ok(())
    }
}

/// One volatile load of `dst.len()` (1, 2, 4 or 8) bytes from `src`, which is inside a
/// region, valid for reads and aligned to that width.
fn read_single(src: *mut u8, dst: &mut [u8]) -> Result<(), RegionError> {
    match dst.len() {
        1 => {
            // SAFETY: - `src` is valid for a 1-byte read (checked by the caller)
            //         - `u8` needs no alignment
            let v = unsafe { src.read_volatile() };
            dst.copy_from_slice(&[v]);
        }
        2 => {
            // SAFETY: - `src` is valid for a 2-byte read (checked by the caller)
            //         - it is 2-byte aligned (`is_single_access`)
            let v = unsafe { src.cast::<u16>().read_volatile() };
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        4 => {
            // SAFETY: - `src` is valid for a 4-byte read (checked by the caller)
            //         - it is 4-byte aligned (`is_single_access`)
            let v = unsafe { src.cast::<u32>().read_volatile() };
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        8 => {
            // SAFETY: - `src` is valid for an 8-byte read (checked by the caller)
            //         - it is 8-byte aligned (`is_single_access`)
            let v = unsafe { src.cast::<u64>().read_volatile() };
            dst.copy_from_slice(&v.to_ne_bytes());
        }
        _ => return Err(RegionError::OutOfBounds),
    }
    Ok(())
}

/// One volatile store of `src.len()` (1, 2, 4 or 8) bytes to `dst`, which is inside a
/// writable region and aligned to that width.
fn write_single(dst: *mut u8, src: &[u8]) -> Result<(), RegionError> {
    match *src {
        [b] => {
            // SAFETY: - `dst` is valid for a 1-byte write (checked by the caller)
            //         - `u8` needs no alignment
            unsafe { dst.write_volatile(b) };
        }
        [a, b] => {
            let v = u16::from_ne_bytes([a, b]);
            // SAFETY: - `dst` is valid for a 2-byte write (checked by the caller)
            //         - it is 2-byte aligned (`is_single_access`)
            unsafe { dst.cast::<u16>().write_volatile(v) };
        }
        [a, b, c, d] => {
            let v = u32::from_ne_bytes([a, b, c, d]);
            // SAFETY: - `dst` is valid for a 4-byte write (checked by the caller)
            //         - it is 4-byte aligned (`is_single_access`)
            unsafe { dst.cast::<u32>().write_volatile(v) };
        }
        [a, b, c, d, e, f, g, h] => {
            let v = u64::from_ne_bytes([a, b, c, d, e, f, g, h]);
            // SAFETY: - `dst` is valid for an 8-byte write (checked by the caller)
            //         - it is 8-byte aligned (`is_single_access`)
            unsafe { dst.cast::<u64>().write_volatile(v) };
        }
        _ => return Err(RegionError::OutOfBounds),
    }
    Ok(())
}

/// Where a backend's bytes live: a shared file mapping, or a heap buffer.
pub(crate) enum Backing {
    /// `MmapRaw` of a file; `true` when mapped for writing.
    Mapped(MmapRaw, bool),
    /// Bytes owned by the backend (ELF cores parsed from memory; tests under Miri).
    Owned(Box<[u8]>),
}

impl core::fmt::Debug for Backing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Mapped(map, writable) => f
                .debug_struct("Mapped")
                .field("len", &map.len())
                .field("writable", writable)
                .finish(),
            Self::Owned(bytes) => f.debug_struct("Owned").field("len", &bytes.len()).finish(),
        }
    }
}

impl Backing {
    /// Maps the first `len` bytes of `file` shared, for reading and also for writing when
    /// `writable` (the file must then be open for writing). `len` must not be zero.
    pub(crate) fn map(file: &File, len: usize, writable: bool) -> io::Result<Self> {
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        Ok(Self::Mapped(map, writable))
    }

    /// Drops this process's page-table entries for the whole mapping (`MADV_DONTNEED`):
    /// resident memory falls back, and the next access maps the page again from the
    /// file. Nothing for owned bytes.
    pub(crate) fn release_resident(&self) -> io::Result<()> {
        match self {
            // SAFETY: - the mapping is shared (`map_raw`/`map_raw_read_only` map
            //           MAP_SHARED): MADV_DONTNEED drops page-table entries only; the
            //           file keeps every byte, written ones included, and later accesses
            //           see them again (unlike a private mapping, where it would discard
            //           copies written to)
            //         - no reference into the mapping exists (accesses go through
            //           `RawRegion` copies), so no Rust value observes the change
            Self::Mapped(map, _) => unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) },
            Self::Owned(_) => Ok(()),
        }
    }

    /// The bytes, for raw access.
    pub(crate) fn region(&self) -> RawRegion<'_> {
        match self {
            Self::Mapped(map, writable) => {
                // mmap never returns null; should it, the region is empty.
                let Some(ptr) = NonNull::new(map.as_mut_ptr()) else {
                    return RawRegion::from_slice(&[]);
                };
                // SAFETY: - memmap2 keeps the mapping of `map.len()` bytes at `ptr` alive
                //           while `map` lives, which the borrow of `self` guarantees for the
                //           region's lifetime; it was mapped readable, and also writable
                //           when `writable`
                //         - this crate forms no reference into a mapping: every access goes
                //           through a `RawRegion`
                //         - a mapping is never longer than `isize::MAX` bytes
                unsafe { RawRegion::new(ptr, map.len(), *writable) }
            }
            Self::Owned(bytes) => RawRegion::from_slice(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_in_bounds_only() {
        let mut buf: Vec<u8> = (0..64u8).collect();
        let r = RawRegion::from_mut_slice(&mut buf);
        assert_eq!(r.len(), 64);
        let mut out = [0u8; 5];
        r.read(3, &mut out).unwrap();
        assert_eq!(out, [3, 4, 5, 6, 7]);
        assert_eq!(r.read(60, &mut out), Err(RegionError::OutOfBounds));
        assert_eq!(r.read(usize::MAX, &mut out), Err(RegionError::OutOfBounds));
        r.read(64, &mut []).unwrap();
        assert_eq!(r.read(65, &mut []), Err(RegionError::OutOfBounds));
        r.write(10, &[0xaa; 3]).unwrap();
        assert_eq!(r.write(62, &[0; 3]), Err(RegionError::OutOfBounds));
        r.read(9, &mut out).unwrap();
        assert_eq!(out, [9, 0xaa, 0xaa, 0xaa, 13]);
        assert_eq!(buf[10..13], [0xaa; 3]);
    }

    #[test]
    fn scalar_accesses_are_single_and_keep_byte_order() {
        let mut buf = vec![0u8; 40];
        let r = RawRegion::from_mut_slice(&mut buf);
        // The first 8-byte aligned offset of the heap buffer.
        let k = (0..8).find(|&k| r.is_single_access(k, 8)).unwrap();
        for (off, width) in [(0, 1), (1, 1), (2, 2), (4, 4), (8, 8), (16, 8)] {
            assert!(r.is_single_access(k + off, width), "{off} {width}");
        }
        for (off, width) in [(1, 2), (2, 4), (4, 8), (0, 3), (0, 16)] {
            assert!(!r.is_single_access(k + off, width), "{off} {width}");
        }
        r.write(k + 8, &0x1122_3344_5566_7788u64.to_le_bytes())
            .unwrap();
        r.write(k + 4, &0xdead_beefu32.to_le_bytes()).unwrap();
        r.write(k + 2, &0xcafeu16.to_le_bytes()).unwrap();
        r.write(k + 1, &[0x5a]).unwrap();
        // Unaligned scalars go by copy and still land.
        r.write(k + 17, &0x0102_0304_0506_0708u64.to_le_bytes())
            .unwrap();
        let mut b8 = [0u8; 8];
        r.read(k + 8, &mut b8).unwrap();
        assert_eq!(u64::from_le_bytes(b8), 0x1122_3344_5566_7788);
        r.read(k + 17, &mut b8).unwrap();
        assert_eq!(u64::from_le_bytes(b8), 0x0102_0304_0506_0708);
        let mut b4 = [0u8; 4];
        r.read(k + 4, &mut b4).unwrap();
        assert_eq!(u32::from_le_bytes(b4), 0xdead_beef);
        let mut b2 = [0u8; 2];
        r.read(k + 2, &mut b2).unwrap();
        assert_eq!(u16::from_le_bytes(b2), 0xcafe);
        let mut b1 = [0u8; 1];
        r.read(k + 1, &mut b1).unwrap();
        assert_eq!(b1, [0x5a]);
        assert_eq!(
            buf[k..k + 16],
            [
                0, 0x5a, 0xfe, 0xca, 0xef, 0xbe, 0xad, 0xde, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33,
                0x22, 0x11
            ]
        );
    }

    #[test]
    fn read_only_regions_refuse_writes() {
        let buf = vec![1u8; 16];
        let r = RawRegion::from_slice(&buf);
        assert!(!r.is_writable());
        assert_eq!(r.write(0, &[0]), Err(RegionError::ReadOnly));
        let owned = Backing::Owned(buf.clone().into_boxed_slice());
        let mut out = [0u8; 16];
        owned.region().read(0, &mut out).unwrap();
        assert_eq!(out, [1; 16]);
        assert_eq!(owned.region().write(0, &[0]), Err(RegionError::ReadOnly));
    }

    #[test]
    fn empty_regions() {
        let r = RawRegion::from_slice(&[]);
        r.read(0, &mut []).unwrap();
        assert_eq!(r.read(0, &mut [0]), Err(RegionError::OutOfBounds));
    }
}
