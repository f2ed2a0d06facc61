//! A caller-owned translation cache.
//!
//! Three direct-mapped tables of [`TLB_SLOTS`] entries, one per size class: 4 KiB
//! (keyed by `va >> 12`), 2 MiB (`va >> 21`) and 1 GiB (`va >> 30`). A leaf of
//! `page_shift` s is stored in the table of the largest class whose shift is at most s,
//! tagged with the whole `va >> class_shift`; the aarch64 sizes fall in between (16 and
//! 64 KiB pages in the 4 KiB table, 32 and 512 MiB blocks in the 2 MiB table, 4 TiB
//! blocks in the 1 GiB table), which is correct, if less effective, because a tag match
//! in a class no larger than the leaf proves the address lies in the same leaf.
//!
//! Entries carry the epoch they were filled in; [`TranslationCache::invalidate`] moves
//! to the next epoch, which empties the cache in O(1).

use core::cell::Cell;
use core::fmt;

use crate::addr::{low_mask, Kva, Pa};
use crate::arch::{translate, Mapping, Paging, Translation};
use crate::error::Result;
use crate::mem::PhysRead;

/// log2 of [`TLB_SLOTS`].
const SLOT_BITS: u32 = 8;

/// Slots in each of the cache's three tables.
pub const TLB_SLOTS: usize = 256;

const _: () = assert!(TLB_SLOTS == 1 << SLOT_BITS);

/// The shifts of the size classes, smallest first (the probe order).
const CLASS_SHIFTS: [u32; CLASSES] = [12, 21, 30];

/// The number of size classes.
const CLASSES: usize = 3;

/// One remembered leaf.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// `va >> class_shift` of the address that filled it.
    tag: u64,
    /// The physical address of the leaf's first byte.
    base: u64,
    /// The raw leaf entry.
    raw: u64,
    /// The epoch the slot was filled in; 0 never matches.
    epoch: u32,
    /// log2 of the leaf size.
    shift: u32,
}

impl Slot {
    const EMPTY: Self = Self {
        tag: 0,
        base: 0,
        raw: 0,
        epoch: 0,
        shift: 0,
    };
}

/// Remembers page-walk results so repeated pages are not walked again.
///
/// # Ownership
/// A cache describes one memory and one paging state. The paging state is checked: a
/// lookup with a [`Paging`] other than the one the cache was filled for empties the cache
/// first (x86_64 is compared by root table and level count, aarch64 by TTBR1 and TCR).
/// The memory is not: use one cache per backend, as [`crate::KernelView`] does (it owns
/// one cache for its memory and paging state).
///
/// # When to invalidate
/// Call [`invalidate`](Self::invalidate) whenever the guest may have run since the last
/// walk: the kernel may have changed its page tables (vmalloc, module loading, memory
/// hot-plug). One pause of the guest is one epoch.
///
/// # What is cached
/// Only mapped addresses; an address that was not present is walked again each time. A
/// hit costs three slot probes at most and no memory access.
///
/// # Sharing
/// The cache uses [`Cell`]s: it is `Send` but not `Sync`. Give each thread its own.
/// It holds 3 × [`TLB_SLOTS`] slots of 32 bytes (24 KiB); keep it in a `Box` or a
/// long-lived struct rather than moving it around on the stack.
pub struct TranslationCache {
    epoch: Cell<u32>,
    owner: Cell<Option<[u64; 2]>>,
    hits: Cell<u64>,
    misses: Cell<u64>,
    slots: [[Cell<Slot>; TLB_SLOTS]; CLASSES],
}

impl TranslationCache {
    /// An empty cache.
    pub const fn new() -> Self {
        Self {
            epoch: Cell::new(1),
            owner: Cell::new(None),
            hits: Cell::new(0),
            misses: Cell::new(0),
            slots: [const { [const { Cell::new(Slot::EMPTY) }; TLB_SLOTS] }; CLASSES],
        }
    }

    /// Forgets everything: call it whenever the guest may have run since the last walk.
    ///
    /// O(1): it moves to the next epoch. Once every 2^32 - 1 calls the epoch wraps and
    /// the slots are cleared one by one.
    pub fn invalidate(&self) {
        let next = self.epoch.get().wrapping_add(1);
        if next == 0 {
            for table in &self.slots {
                for slot in table {
                    slot.set(Slot::EMPTY);
                }
            }
            self.epoch.set(1);
        } else {
            self.epoch.set(next);
        }
    }

    /// The current epoch (it changes on every [`invalidate`](Self::invalidate)).
    pub fn epoch(&self) -> u32 {
        self.epoch.get()
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    /// Lookups that walked the page tables.
    pub fn misses(&self) -> u64 {
        self.misses.get()
    }

    /// Sets both counters to zero (the cached translations stay).
    pub fn reset_stats(&self) {
        self.hits.set(0);
        self.misses.set(0);
    }

    /// The number of live slots (a linear scan; for tests and statistics).
    pub fn len(&self) -> usize {
        let epoch = self.epoch.get();
        self.slots
            .iter()
            .flatten()
            .filter(|s| s.get().epoch == epoch)
            .count()
    }

    /// Whether no slot is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached mapping of `va`, if any, without walking or counting. Checks the
    /// paging state like [`translate_cached`].
    #[inline]
    pub fn lookup(&self, paging: &Paging, va: Kva) -> Option<Mapping> {
        if self.owner.get() != Some(owner_key(paging)) {
            return None;
        }
        self.probe(va)
    }

    /// Empties the cache if it was filled for another paging state, and takes
    /// `paging` as its owner.
    #[inline]
    fn claim(&self, paging: &Paging) {
        let key = Some(owner_key(paging));
        if self.owner.get() != key {
            self.invalidate();
            self.owner.set(key);
        }
    }

    #[inline]
    fn probe(&self, va: Kva) -> Option<Mapping> {
        let epoch = self.epoch.get();
        for (table, &class_shift) in self.slots.iter().zip(CLASS_SHIFTS.iter()) {
            let tag = va.0.wrapping_shr(class_shift);
            let Some(slot) = table.get(slot_index(tag)) else {
                continue;
            };
            let s = slot.get();
            if s.epoch == epoch && s.tag == tag {
                return Some(Mapping {
                    pa: Pa(s.base | va.page_offset(s.shift)),
                    page_shift: s.shift,
                    raw: s.raw,
                });
            }
        }
        None
    }

    #[inline]
    fn insert(&self, va: Kva, m: &Mapping) {
        let Some(class) = class_of(m.page_shift) else {
            return;
        };
        let (Some(table), Some(&class_shift)) = (self.slots.get(class), CLASS_SHIFTS.get(class))
        else {
            return;
        };
        let tag = va.0.wrapping_shr(class_shift);
        if let Some(slot) = table.get(slot_index(tag)) {
            slot.set(Slot {
                tag,
                base: m.pa.page_base(m.page_shift).0,
                raw: m.raw,
                epoch: self.epoch.get(),
                shift: m.page_shift,
            });
        }
    }

    #[cfg(test)]
    fn with_epoch(epoch: u32) -> Self {
        let c = Self::new();
        c.epoch.set(epoch);
        c
    }
}

impl Default for TranslationCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TranslationCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TranslationCache")
            .field("epoch", &self.epoch.get())
            .field("hits", &self.hits.get())
            .field("misses", &self.misses.get())
            .field("live", &self.len())
            .finish_non_exhaustive()
    }
}

/// The slot of a tag: its low bits.
#[inline(always)]
fn slot_index(tag: u64) -> usize {
    usize::try_from(tag & low_mask(SLOT_BITS)).unwrap_or(0)
}

/// The size class of a leaf: the largest class whose shift is at most `page_shift`.
#[inline(always)]
fn class_of(page_shift: u32) -> Option<usize> {
    CLASS_SHIFTS.iter().rposition(|&s| s <= page_shift)
}

/// What identifies a paging state: equal keys translate identically.
#[inline(always)]
fn owner_key(paging: &Paging) -> [u64; 2] {
    match paging {
        // The root is page-aligned, so bit 0 is free for the level count. An x86 key
        // never equals an aarch64 one: a valid TCR is never 0 (TG1 = 0 is refused).
        Paging::X86_64(p) => [p.root().0 | u64::from(p.five_level()), 0],
        Paging::Aarch64(p) => [p.ttbr1(), p.tcr()],
    }
}

/// [`translate`] through `cache`: a hit returns the remembered leaf with the offset of
/// `va` inside it; a miss walks and remembers a mapped result.
///
/// # Errors
/// As [`translate`]. Errors and absent entries are never cached.
#[inline(always)]
pub fn translate_cached<M: PhysRead + ?Sized>(
    mem: &M,
    paging: &Paging,
    cache: &TranslationCache,
    va: Kva,
) -> Result<Translation> {
    // The hit path is small enough to inline into every reader; the walk is not.
    if cache.owner.get() == Some(owner_key(paging)) {
        if let Some(m) = cache.probe(va) {
            cache.hits.set(cache.hits.get().wrapping_add(1));
            return Ok(Translation::Mapped(m));
        }
    }
    translate_miss(mem, paging, cache, va)
}

/// The miss path of [`translate_cached`]: claim the cache, walk, remember.
#[cold]
#[inline(never)]
fn translate_miss<M: PhysRead + ?Sized>(
    mem: &M,
    paging: &Paging,
    cache: &TranslationCache,
    va: Kva,
) -> Result<Translation> {
    // The caller probed already when the owner matched; when it did not, `claim`
    // empties the cache, so probing again could only miss.
    cache.claim(paging);
    cache.misses.set(cache.misses.get().wrapping_add(1));
    let t = translate(mem, paging, va)?;
    if let Translation::Mapped(m) = &t {
        cache.insert(va, m);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::X86Paging;
    use crate::synth::{Aarch64PageTables, SynthRam, X86PageTables};

    const VA: u64 = 0xffff_c900_0000_0000;

    fn pa_of(t: Translation) -> Pa {
        match t {
            Translation::Mapped(m) => m.pa,
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn hits_after_the_first_walk_until_invalidated() {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let pt = X86PageTables::new(&mut ram, false);
        pt.map(&mut ram, Kva(VA), Pa(0x8000), 12);
        let paging = pt.paging();
        let cache = TranslationCache::new();

        let t = translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA + 0x10)).unwrap();
        assert_eq!(pa_of(t), Pa(0x8010));
        assert_eq!((cache.hits(), cache.misses(), cache.len()), (0, 1, 1));
        let t = translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA + 0xff8)).unwrap();
        assert_eq!(
            t,
            translate(&ram.as_ram(), &paging, Kva(VA + 0xff8)).unwrap()
        );
        assert_eq!((cache.hits(), cache.misses()), (1, 1));

        // Remap the page behind the cache's back: the cache still answers.
        pt.map(&mut ram, Kva(VA), Pa(0x9000), 12);
        let t = translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA + 0x10)).unwrap();
        assert_eq!(pa_of(t), Pa(0x8010));
        // Corrupt the root: still cached.
        ram.write_u64(Pa(pt.cr3() + ((VA >> 39) & 0x1ff) * 8), 0);
        assert_eq!(
            pa_of(translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA)).unwrap()),
            Pa(0x8000)
        );
        assert_eq!(
            cache.lookup(&paging, Kva(VA + 1)).map(|m| m.pa),
            Some(Pa(0x8001))
        );

        // After invalidation the tables are read again.
        let epoch = cache.epoch();
        cache.invalidate();
        assert_eq!(cache.epoch(), epoch + 1);
        assert!(cache.is_empty());
        assert_eq!(cache.lookup(&paging, Kva(VA)), None);
        let t = translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA)).unwrap();
        assert_eq!(t, Translation::NotPresent { level: 3 });
        // Absent addresses are not cached.
        assert!(cache.is_empty());
        translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA)).unwrap();
        assert_eq!((cache.hits(), cache.misses()), (3, 3));
        // Repair: the remapped page shows.
        pt.map(&mut ram, Kva(VA), Pa(0x9000), 12);
        assert_eq!(
            pa_of(translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA)).unwrap()),
            Pa(0x9000)
        );
        cache.reset_stats();
        assert_eq!((cache.hits(), cache.misses()), (0, 0));
    }

    #[test]
    fn large_leaves_are_cached_by_class() {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let pt = X86PageTables::new(&mut ram, false);
        let va2m = 0xffff_ea00_0020_0000u64;
        let va1g = 0xffff_ffff_c000_0000u64;
        pt.map(&mut ram, Kva(va2m), Pa(0x4020_0000), 21);
        pt.map(&mut ram, Kva(va1g), Pa(0x8000_0000), 30);
        let paging = pt.paging();
        let cache = TranslationCache::new();
        let mem = ram.as_ram();
        translate_cached(&mem, &paging, &cache, Kva(va2m)).unwrap();
        translate_cached(&mem, &paging, &cache, Kva(va1g)).unwrap();
        assert_eq!(cache.misses(), 2);
        // Anywhere else inside the same leaves is a hit, with the right offset.
        let t = translate_cached(&mem, &paging, &cache, Kva(va2m + 0x1f_fff0)).unwrap();
        assert_eq!(t, translate(&mem, &paging, Kva(va2m + 0x1f_fff0)).unwrap());
        assert_eq!(pa_of(t), Pa(0x403f_fff0));
        let t = translate_cached(&mem, &paging, &cache, Kva(va1g + 0x3fff_0123)).unwrap();
        assert_eq!(pa_of(t), Pa(0xbfff_0123));
        assert_eq!((cache.hits(), cache.misses()), (2, 2));
        // The next 2 MiB is a different leaf (absent here), not a false hit.
        let t = translate_cached(&mem, &paging, &cache, Kva(va2m + 0x20_0000)).unwrap();
        assert_eq!(t, Translation::NotPresent { level: 1 });
        // Addresses that share a slot index but not a tag do not alias.
        let alias = va2m + ((TLB_SLOTS as u64) << 21);
        assert_eq!(slot_index(alias >> 21), slot_index(va2m >> 21));
        assert_eq!(cache.lookup(&paging, Kva(alias)), None);
    }

    #[test]
    fn aarch64_sizes_between_classes() {
        let mut ram = SynthRam::new(Pa(0x4000_0000), 4 << 20);
        let pt = Aarch64PageTables::new(&mut ram, 16, 22, 3);
        let page = 0xffff_fc00_0001_0000u64;
        let block = 0xffff_fc00_2000_0000u64;
        pt.map(&mut ram, Kva(page), Pa(0x4010_0000), 16);
        pt.map(&mut ram, Kva(block), Pa(0x6000_0000), 29);
        let paging = pt.paging();
        let cache = TranslationCache::new();
        let mem = ram.as_ram();
        for (va, want, shift) in [
            (page + 0x10, 0x4010_0010u64, 16),
            (page + 0x10, 0x4010_0010, 16),
            (page + 0xfff0, 0x4010_fff0, 16), // another 4K of the same 64K page
            (block + 0x1234_5678, 0x7234_5678, 29),
            (block + 0x1fff_fff0, 0x7fff_fff0, 29),
        ] {
            let m = translate_cached(&mem, &paging, &cache, Kva(va))
                .unwrap()
                .mapped(Kva(va))
                .unwrap();
            assert_eq!((m.pa, m.page_shift), (Pa(want), shift));
        }
        // The 64K page is cached per 4K piece; the 512M block per 2M piece.
        assert_eq!((cache.hits(), cache.misses()), (1, 4));
    }

    #[test]
    fn another_paging_state_empties_the_cache() {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let a = X86PageTables::new(&mut ram, false);
        let b = X86PageTables::new(&mut ram, false);
        a.map(&mut ram, Kva(VA), Pa(0x1_0000), 12);
        b.map(&mut ram, Kva(VA), Pa(0x2_0000), 12);
        let cache = TranslationCache::new();
        let mem = ram.as_ram();
        for _ in 0..2 {
            assert_eq!(
                pa_of(translate_cached(&mem, &a.paging(), &cache, Kva(VA)).unwrap()),
                Pa(0x1_0000)
            );
            assert_eq!(
                pa_of(translate_cached(&mem, &b.paging(), &cache, Kva(VA)).unwrap()),
                Pa(0x2_0000)
            );
        }
        assert_eq!(cache.lookup(&a.paging(), Kva(VA)), None);
        // The same root with another PCID is the same paging state.
        let b_pcid = Paging::X86_64(X86Paging::new(b.cr3() | 0x7, false));
        assert!(cache.lookup(&b_pcid, Kva(VA)).is_some());
        assert_eq!((cache.hits(), cache.misses()), (0, 4));
    }

    #[test]
    fn epoch_wrap_clears_the_slots() {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let pt = X86PageTables::new(&mut ram, false);
        pt.map(&mut ram, Kva(VA), Pa(0x8000), 12);
        let paging = pt.paging();
        let mem = ram.as_ram();
        let cache = TranslationCache::with_epoch(u32::MAX - 1);
        cache.claim(&paging); // moves to u32::MAX
        assert_eq!(cache.epoch(), u32::MAX);
        translate_cached(&mem, &paging, &cache, Kva(VA)).unwrap();
        assert_eq!(cache.len(), 1);
        cache.invalidate();
        assert_eq!(cache.epoch(), 1);
        assert!(cache.is_empty());
        assert_eq!(cache.lookup(&paging, Kva(VA)), None);
        // The cache fills again in the new round of epochs.
        translate_cached(&mem, &paging, &cache, Kva(VA)).unwrap();
        assert!(cache.lookup(&paging, Kva(VA)).is_some());
    }

    #[test]
    fn errors_are_not_cached() {
        let ram = SynthRam::new(Pa(0), 0x1000);
        let paging = Paging::X86_64(X86Paging::new(0x10_0000, false));
        let cache = TranslationCache::new();
        assert!(translate_cached(&ram.as_ram(), &paging, &cache, Kva(VA)).is_err());
        assert!(
            translate_cached(&ram.as_ram(), &paging, &cache, Kva(0x8000_0000_0000_0000)).is_err()
        );
        assert!(cache.is_empty());
        assert_eq!(cache.misses(), 2);
    }

    #[test]
    fn debug_is_short() {
        extern crate std;
        let s = std::format!("{:?}", TranslationCache::new());
        assert_eq!(
            s,
            "TranslationCache { epoch: 1, hits: 0, misses: 0, live: 0, .. }"
        );
    }
}
