//! Page-table translation of kernel virtual addresses.
//!
//! Pure functions over [`PhysRead`]: give them the paging state of a vCPU (or of a dump)
//! and a virtual address, and they walk the guest's page tables. Nothing is trusted: a
//! huge-page bit where the architecture reserves it, a reserved descriptor encoding or a
//! table address outside RAM is an error naming the level and the raw entry.
//!
//! [`translate`] walks every time; [`TranslationCache`] remembers leaves so repeated
//! pages are not walked again.

pub mod aarch64;
mod tlb;
pub mod x86_64;

pub use tlb::{translate_cached, TranslationCache, TLB_SLOTS};

use crate::addr::{Kva, Pa};
use crate::error::Result;
use crate::mem::PhysRead;

/// The paging state needed to translate kernel addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// x86_64 4- or 5-level paging.
    X86_64(x86_64::X86Paging),
    /// aarch64 stage-1 translation of the upper (TTBR1) half.
    Aarch64(aarch64::Aarch64Paging),
}

/// A translated address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    /// The physical address the virtual address maps to.
    pub pa: Pa,
    /// log2 of the size of the leaf page or block that maps it (12 for 4 KiB, 21 for
    /// 2 MiB, 30 for 1 GiB, 14/16/25/29/36/42 for aarch64's other granules and blocks).
    pub page_shift: u32,
    /// The raw leaf entry.
    pub raw: u64,
}

impl Mapping {
    /// Bytes from `pa` to the end of its leaf page: how far a read may run before the
    /// next translation.
    pub const fn bytes_to_page_end(&self) -> u64 {
        // The offset's bits are a subset of the mask's, so the XOR is the difference.
        let mask = crate::addr::low_mask(self.page_shift);
        (mask ^ self.pa.page_offset(self.page_shift)).saturating_add(1)
    }
}

/// The outcome of a page walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// The address is mapped.
    Mapped(Mapping),
    /// An entry on the way was not present (or invalid, on aarch64).
    NotPresent {
        /// The level whose entry was absent: the root level is the highest number,
        /// the last level is 0.
        level: u8,
    },
}

impl Translation {
    /// The mapping, or [`crate::Error::NotMapped`] for `va`.
    ///
    /// # Errors
    /// [`crate::Error::NotMapped`] when the address is not present.
    pub fn mapped(self, va: Kva) -> Result<Mapping> {
        match self {
            Self::Mapped(m) => Ok(m),
            Self::NotPresent { level } => Err(crate::Error::NotMapped { va, level }),
        }
    }
}

/// Translates `va` by walking the page tables described by `paging`.
///
/// # Errors
/// A reserved or malformed entry ([`crate::Error::BadPte`]), an address outside the range
/// these tables translate ([`crate::Error::NotKernelAddress`]), or a failed read of a
/// table ([`crate::Error::Phys`]). A missing entry is not an error but
/// [`Translation::NotPresent`].
#[inline]
pub fn translate<M: PhysRead + ?Sized>(mem: &M, paging: &Paging, va: Kva) -> Result<Translation> {
    match paging {
        Paging::X86_64(p) => x86_64::translate(mem, p, va),
        Paging::Aarch64(p) => aarch64::translate(mem, p, va),
    }
}
