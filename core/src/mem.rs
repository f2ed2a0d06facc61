//! Guest-physical memory: the traits a backend implements, and an in-memory backend.
//!
//! A backend implements [`PhysRead`] (and [`PhysWrite`] if it can write). The core never
//! asks for more than "copy these bytes at this physical address into my buffer": no
//! references into guest memory are ever formed, so a backend over live, shared guest RAM
//! stays sound.

use core::cell::RefCell;
use core::fmt;

use zerocopy::{FromBytes, IntoBytes};

use crate::addr::Pa;
use crate::error::{Access, Error, PhysError, PhysErrorKind};

/// A range of guest-physical memory that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhysRange {
    /// First address.
    pub start: Pa,
    /// Length in bytes.
    pub len: u64,
}

impl PhysRange {
    /// One past the last address, saturating at `u64::MAX`.
    pub const fn end(&self) -> u64 {
        self.start.0.saturating_add(self.len)
    }

    /// Whether `[pa, pa + len)` lies inside this range.
    pub const fn contains(&self, pa: Pa, len: u64) -> bool {
        match (pa.0.checked_sub(self.start.0), pa.0.checked_add(len)) {
            (Some(off), Some(end)) => off < self.len && end <= self.end(),
            _ => false,
        }
    }
}

/// One piece of a vectored read: fill `buf` from guest-physical address `pa`.
#[derive(Debug)]
pub struct ReadOp<'a> {
    /// Where to read from.
    pub pa: Pa,
    /// Where to put the bytes; its length is the length of the read.
    pub buf: &'a mut [u8],
}

/// The failure of one piece of a vectored read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadManyError<E> {
    /// Index of the failed [`ReadOp`]. Earlier ones may or may not have been filled.
    pub index: usize,
    /// The backend's error.
    pub error: E,
}

/// Reads guest-physical memory.
///
/// # Contract
/// - [`read_phys`](Self::read_phys) fills the *whole* buffer or returns an error; it never
///   reports success for a short read and never zero-fills what it could not read.
/// - Reads take `&self`: a paused guest's memory can be shared by several readers.
/// - All scalar readers are little-endian (x86_64 and aarch64 Linux).
///
/// A backend with a per-call cost (a file, a remote VM) should override
/// [`read_phys_many`](Self::read_phys_many), which the walkers use to fetch one tree
/// level or several fields in one call.
pub trait PhysRead {
    /// The backend's error.
    type Error: PhysError;

    /// Fills `buf` with the bytes at `pa .. pa + buf.len()`.
    ///
    /// # Errors
    /// When any byte of the range cannot be read.
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// The physical ranges that exist, in ascending order.
    fn ranges(&self) -> &[PhysRange];

    /// Performs several reads. The default calls [`read_phys`](Self::read_phys) for each.
    ///
    /// # Errors
    /// The first failed piece, by index.
    fn read_phys_many(&self, ops: &mut [ReadOp<'_>]) -> Result<(), ReadManyError<Self::Error>> {
        for (index, op) in ops.iter_mut().enumerate() {
            self.read_phys(op.pa, op.buf)
                .map_err(|error| ReadManyError { index, error })?;
        }
        Ok(())
    }
}

/// Writes guest-physical memory.
///
/// # Contract
/// - [`write_phys`](Self::write_phys) writes the whole buffer or returns an error.
/// - A write of 1, 2, 4 or 8 bytes to an address aligned to its length must land as
///   **one store** of that width, so a running guest never observes a torn value. A
///   backend that cannot promise this (say, one that writes through a file descriptor)
///   must return an error of kind [`PhysErrorKind::Denied`] for such writes rather than
///   split them.
/// - A failed write may have written part of the buffer. The core checks everything it
///   can (bounds, translations) before it starts writing, so only the backend itself can
///   cause this.
pub trait PhysWrite: PhysRead {
    /// Writes `data` at `pa .. pa + data.len()`.
    ///
    /// # Errors
    /// When any byte of the range cannot be written.
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), Self::Error>;
}

impl<M: PhysRead + ?Sized> PhysRead for &M {
    type Error = M::Error;
    #[inline]
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_phys(pa, buf)
    }
    fn ranges(&self) -> &[PhysRange] {
        (**self).ranges()
    }
    fn read_phys_many(&self, ops: &mut [ReadOp<'_>]) -> Result<(), ReadManyError<Self::Error>> {
        (**self).read_phys_many(ops)
    }
}

impl<M: PhysWrite + ?Sized> PhysWrite for &M {
    #[inline]
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), Self::Error> {
        (**self).write_phys(pa, data)
    }
}

/// Typed readers over any [`PhysRead`], returning the core's [`Error`].
///
/// Implemented for every `PhysRead`; the core uses it everywhere so that a backend error
/// is always reported with its address and length.
pub trait PhysReadExt: PhysRead {
    /// [`PhysRead::read_phys`] with the error converted.
    ///
    /// # Errors
    /// [`Error::Phys`] naming the address and length.
    #[inline]
    fn read_bytes(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Error> {
        self.read_phys(pa, buf).map_err(|e| Error::Phys {
            access: Access::Read,
            pa,
            len: len_u64(buf.len()),
            kind: e.kind(),
        })
    }

    /// [`PhysRead::read_phys_many`] with the error converted.
    ///
    /// # Errors
    /// [`Error::Phys`] naming the address and length of the piece that failed.
    #[inline]
    fn read_many(&self, ops: &mut [ReadOp<'_>]) -> Result<(), Error> {
        self.read_phys_many(ops).map_err(|e| {
            let (pa, len) = ops
                .get(e.index)
                .map_or((Pa(0), 0), |op| (op.pa, len_u64(op.buf.len())));
            Error::Phys {
                access: Access::Read,
                pa,
                len,
                kind: e.error.kind(),
            }
        })
    }

    /// Reads a little-endian `u8`.
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn read_u8(&self, pa: Pa) -> Result<u8, Error> {
        let mut b = [0u8; 1];
        self.read_bytes(pa, &mut b)?;
        Ok(b[0])
    }

    /// Reads a little-endian `u16`.
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn read_u16(&self, pa: Pa) -> Result<u16, Error> {
        let mut b = [0u8; 2];
        self.read_bytes(pa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn read_u32(&self, pa: Pa) -> Result<u32, Error> {
        let mut b = [0u8; 4];
        self.read_bytes(pa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn read_u64(&self, pa: Pa) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        self.read_bytes(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a plain-data value (use zerocopy's `little_endian` field types in `T`).
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn read_obj<T: FromBytes + IntoBytes>(&self, pa: Pa) -> Result<T, Error> {
        let mut value = T::new_zeroed();
        self.read_bytes(pa, value.as_mut_bytes())?;
        Ok(value)
    }
}

impl<M: PhysRead + ?Sized> PhysReadExt for M {}

/// Typed writers over any [`PhysWrite`], returning the core's [`Error`].
pub trait PhysWriteExt: PhysWrite {
    /// [`PhysWrite::write_phys`] with the error converted.
    ///
    /// # Errors
    /// [`Error::Phys`] naming the address and length.
    #[inline]
    fn write_bytes(&self, pa: Pa, data: &[u8]) -> Result<(), Error> {
        self.write_phys(pa, data).map_err(|e| Error::Phys {
            access: Access::Write,
            pa,
            len: len_u64(data.len()),
            kind: e.kind(),
        })
    }

    /// Writes a little-endian `u32` (one store when `pa` is 4-byte aligned).
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn write_u32(&self, pa: Pa, value: u32) -> Result<(), Error> {
        self.write_bytes(pa, &value.to_le_bytes())
    }

    /// Writes a little-endian `u64` (one store when `pa` is 8-byte aligned).
    ///
    /// # Errors
    /// [`Error::Phys`].
    #[inline]
    fn write_u64(&self, pa: Pa, value: u64) -> Result<(), Error> {
        self.write_bytes(pa, &value.to_le_bytes())
    }
}

impl<M: PhysWrite + ?Sized> PhysWriteExt for M {}

/// A `usize` length as `u64` (lossless on every target the core supports).
#[inline]
pub(crate) fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Guest RAM held in a byte slice (or anything that derefs to one), starting at a chosen
/// physical address. Read-only; see [`RamCell`] for a writable one.
///
/// This is the backend of the synthetic guests, the fuzz targets and the benches, and a
/// fine one for a bare-metal agent that holds a copy of memory in a static buffer.
///
/// ```
/// use mapwalk_core::{Pa, PhysReadExt, Ram};
/// let bytes = [0u8, 1, 2, 3, 4, 5, 6, 7];
/// let ram = Ram::new(Pa(0x1000), &bytes[..]);
/// assert_eq!(ram.read_u32(Pa(0x1004)).unwrap(), 0x0706_0504);
/// assert!(ram.read_u32(Pa(0x1006)).is_err());
/// ```
pub struct Ram<B> {
    bytes: B,
    range: [PhysRange; 1],
}

impl<B: AsRef<[u8]>> Ram<B> {
    /// Memory whose first byte is at `base`.
    pub fn new(base: Pa, bytes: B) -> Self {
        let len = len_u64(bytes.as_ref().len());
        Self {
            bytes,
            range: [PhysRange { start: base, len }],
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The first physical address.
    pub fn base(&self) -> Pa {
        self.range[0].start
    }
}

impl<B> fmt::Debug for Ram<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ram")
            .field("range", &self.range[0])
            .finish()
    }
}

/// Finds `[pa, pa + len)` inside a slice that starts at `base`.
#[inline]
fn locate(
    base: Pa,
    total: usize,
    pa: Pa,
    len: usize,
) -> Result<core::ops::Range<usize>, PhysErrorKind> {
    let off = pa.0.checked_sub(base.0).ok_or(PhysErrorKind::Unmapped)?;
    let off = usize::try_from(off).map_err(|_| PhysErrorKind::Unmapped)?;
    if off >= total && len > 0 {
        return Err(PhysErrorKind::Unmapped);
    }
    let end = off.checked_add(len).ok_or(PhysErrorKind::OutOfRange)?;
    if end > total {
        return Err(PhysErrorKind::OutOfRange);
    }
    Ok(off..end)
}

impl<B: AsRef<[u8]>> PhysRead for Ram<B> {
    type Error = PhysErrorKind;

    #[inline]
    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
        let bytes = self.bytes.as_ref();
        let r = locate(self.range[0].start, bytes.len(), pa, buf.len())?;
        let src = bytes.get(r).ok_or(PhysErrorKind::OutOfRange)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.range
    }
}

/// Writable guest RAM in a byte buffer, starting at a chosen physical address.
///
/// Writes go through a [`RefCell`], so the memory can be shared by `&` like a real
/// backend. A write of an aligned scalar is one `copy_from_slice`, which nothing can
/// observe half-done.
pub struct RamCell<B> {
    bytes: RefCell<B>,
    range: [PhysRange; 1],
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> RamCell<B> {
    /// Memory whose first byte is at `base`.
    pub fn new(base: Pa, bytes: B) -> Self {
        let len = len_u64(bytes.as_ref().len());
        Self {
            bytes: RefCell::new(bytes),
            range: [PhysRange { start: base, len }],
        }
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> B {
        self.bytes.into_inner()
    }
}

impl<B> fmt::Debug for RamCell<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamCell")
            .field("range", &self.range[0])
            .finish()
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PhysRead for RamCell<B> {
    type Error = PhysErrorKind;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
        let guard = self.bytes.try_borrow().map_err(|_| PhysErrorKind::Other)?;
        let bytes = guard.as_ref();
        let r = locate(self.range[0].start, bytes.len(), pa, buf.len())?;
        buf.copy_from_slice(bytes.get(r).ok_or(PhysErrorKind::OutOfRange)?);
        Ok(())
    }

    fn ranges(&self) -> &[PhysRange] {
        &self.range
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PhysWrite for RamCell<B> {
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), Self::Error> {
        let mut guard = self
            .bytes
            .try_borrow_mut()
            .map_err(|_| PhysErrorKind::Other)?;
        let bytes = guard.as_mut();
        let r = locate(self.range[0].start, bytes.len(), pa, data.len())?;
        bytes
            .get_mut(r)
            .ok_or(PhysErrorKind::OutOfRange)?
            .copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_reads_whole_or_fails() {
        let bytes: [u8; 16] = core::array::from_fn(|i| i as u8);
        let ram = Ram::new(Pa(0x4000_0000), bytes);
        let mut buf = [0u8; 4];
        ram.read_phys(Pa(0x4000_000c), &mut buf).unwrap();
        assert_eq!(buf, [12, 13, 14, 15]);
        assert_eq!(
            ram.read_phys(Pa(0x4000_000d), &mut buf),
            Err(PhysErrorKind::OutOfRange)
        );
        assert_eq!(
            ram.read_phys(Pa(0x3fff_fffc), &mut buf),
            Err(PhysErrorKind::Unmapped)
        );
        assert_eq!(
            ram.read_phys(Pa(u64::MAX), &mut buf),
            Err(PhysErrorKind::Unmapped)
        );
        assert_eq!(
            ram.read_u64(Pa(0x4000_0008)).unwrap(),
            0x0f0e_0d0c_0b0a_0908
        );
        let err = ram.read_u64(Pa(0x4000_0009)).unwrap_err();
        assert_eq!(
            err,
            Error::Phys {
                access: Access::Read,
                pa: Pa(0x4000_0009),
                len: 8,
                kind: PhysErrorKind::OutOfRange
            }
        );
    }

    #[test]
    fn read_many_reports_the_failing_piece() {
        let ram = Ram::new(Pa(0), [7u8; 32]);
        let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
        let mut ops = [
            ReadOp {
                pa: Pa(0),
                buf: &mut a,
            },
            ReadOp {
                pa: Pa(30),
                buf: &mut b,
            },
        ];
        let err = ram.read_phys_many(&mut ops).unwrap_err();
        assert_eq!(err.index, 1);
        assert_eq!(a, [7; 8]);
    }

    #[test]
    fn ram_cell_writes() {
        let ram = RamCell::new(Pa(0x1000), [0u8; 16]);
        ram.write_u32(Pa(0x1004), 0xdead_beef).unwrap();
        assert_eq!(ram.read_u32(Pa(0x1004)).unwrap(), 0xdead_beef);
        assert!(ram.write_u64(Pa(0x100c), 1).is_err());
        assert_eq!(ram.into_inner()[4..8], [0xef, 0xbe, 0xad, 0xde]);
    }

    #[test]
    fn range_contains() {
        let r = PhysRange {
            start: Pa(0x1000),
            len: 0x1000,
        };
        assert!(r.contains(Pa(0x1000), 0x1000));
        assert!(!r.contains(Pa(0x1000), 0x1001));
        assert!(!r.contains(Pa(0xfff), 1));
        assert!(!r.contains(Pa(u64::MAX), 2));
    }
}
