//! A memory backend that fails chosen reads, to drive the error paths of a walker.

use core::cell::Cell;

use crate::addr::Pa;
use crate::error::PhysErrorKind;
use crate::mem::{PhysRange, PhysRead, PhysWrite};

/// Wraps a backend and fails every access that touches `[start, start + len)` with
/// `kind`; counts the accesses it let through and the ones it failed.
///
/// ```
/// use mapwalk_core::synth::FaultyMem;
/// use mapwalk_core::{Pa, PhysErrorKind, PhysReadExt, Ram};
/// let mem = FaultyMem::new(Ram::new(Pa(0), [1u8; 64]), Pa(32), 8, PhysErrorKind::Io);
/// assert_eq!(mem.read_u64(Pa(0)).unwrap(), 0x0101_0101_0101_0101);
/// assert!(mem.read_u64(Pa(28)).is_err());
/// assert_eq!((mem.passed(), mem.failed()), (1, 1));
/// ```
#[derive(Debug)]
pub struct FaultyMem<M> {
    inner: M,
    start: Pa,
    len: u64,
    kind: PhysErrorKind,
    passed: Cell<u32>,
    failed: Cell<u32>,
}

impl<M> FaultyMem<M> {
    /// Fails accesses that touch `len` bytes at `start`.
    pub fn new(inner: M, start: Pa, len: u64, kind: PhysErrorKind) -> Self {
        Self {
            inner,
            start,
            len,
            kind,
            passed: Cell::new(0),
            failed: Cell::new(0),
        }
    }

    /// Moves the faulty window.
    pub fn set_window(&mut self, start: Pa, len: u64) {
        self.start = start;
        self.len = len;
    }

    /// Accesses let through.
    pub fn passed(&self) -> u32 {
        self.passed.get()
    }

    /// Accesses failed.
    pub fn failed(&self) -> u32 {
        self.failed.get()
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    fn check(&self, pa: Pa, len: usize) -> Result<(), PhysErrorKind> {
        let end = pa.0.saturating_add(len as u64);
        let bad_end = self.start.0.saturating_add(self.len);
        if pa.0 < bad_end && self.start.0 < end {
            self.failed.set(self.failed.get() + 1);
            Err(self.kind)
        } else {
            self.passed.set(self.passed.get() + 1);
            Ok(())
        }
    }
}

impl<M: PhysRead> PhysRead for FaultyMem<M> {
    type Error = PhysErrorKind;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), PhysErrorKind> {
        self.check(pa, buf.len())?;
        self.inner
            .read_phys(pa, buf)
            .map_err(|e| crate::PhysError::kind(&e))
    }

    fn ranges(&self) -> &[PhysRange] {
        self.inner.ranges()
    }
}

impl<M: PhysWrite> PhysWrite for FaultyMem<M> {
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), PhysErrorKind> {
        self.check(pa, data.len())?;
        self.inner
            .write_phys(pa, data)
            .map_err(|e| crate::PhysError::kind(&e))
    }
}
