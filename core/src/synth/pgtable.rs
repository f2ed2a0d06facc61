//! Synthetic page tables: x86_64 4/5-level and aarch64 4/16/64 KiB, laid into
//! [`SynthRam`].
//!
//! Intermediate tables are allocated from the RAM's bump allocator as a mapping needs
//! them. Levels are numbered as in [`crate::arch`]: the last level is 0, the root the
//! highest number.

use crate::addr::{low_mask, Kva, Pa};
use crate::arch::aarch64::{
    Aarch64Paging, ACCESS_FLAG, INNER_SHAREABLE, IPS_52_BITS, PXN, TCR_DS, TCR_IPS_SHIFT,
    TCR_T1SZ_SHIFT, TCR_TG1_SHIFT, TG1_16K, TG1_4K, TG1_64K, UXN,
};
use crate::arch::x86_64::{
    X86Paging, ACCESSED, ADDR_MASK, DIRTY, GLOBAL, NO_EXECUTE, PAGE_SIZE, PRESENT, WRITABLE,
};
use crate::arch::Paging;

use super::SynthRam;

/// The flags of an x86_64 table entry (`_KERNPG_TABLE`: present, writable, accessed,
/// dirty).
const X86_TABLE_FLAGS: u64 = PRESENT | WRITABLE | ACCESSED | DIRTY;
/// The flags of an x86_64 leaf: a global, writable, non-executable kernel data page.
const X86_LEAF_FLAGS: u64 = PRESENT | WRITABLE | ACCESSED | DIRTY | GLOBAL | NO_EXECUTE;

/// The flags of an aarch64 leaf: a kernel data page (normal memory, attribute index 4,
/// inner shareable, accessed, never executable).
const ARM_LEAF_FLAGS: u64 = (4 << 2) | INNER_SHAREABLE | ACCESS_FLAG | PXN | UXN;

/// x86_64 4- or 5-level page tables under construction.
///
/// ```
/// use mapwalk_core::synth::{SynthRam, X86PageTables};
/// use mapwalk_core::{translate, Kva, Pa, Translation};
///
/// // 1 MiB of RAM at physical 0, a 4-level table, one 4 KiB page and one 2 MiB page.
/// let mut ram = SynthRam::new(Pa(0), 1 << 20);
/// let pt = X86PageTables::new(&mut ram, false);
/// pt.map(&mut ram, Kva(0xffff_c900_0000_1000), Pa(0x8000), 12);
/// pt.map(&mut ram, Kva(0xffff_ea00_0000_0000), Pa(0x20_0000), 21);
///
/// let t = translate(&ram.as_ram(), &pt.paging(), Kva(0xffff_c900_0000_1234)).unwrap();
/// let Translation::Mapped(m) = t else { panic!("{t:?}") };
/// assert_eq!((m.pa, m.page_shift), (Pa(0x8234), 12));
///
/// let m = translate(&ram.as_ram(), &pt.paging(), Kva(0xffff_ea00_0001_0000)).unwrap();
/// assert_eq!(m.mapped(Kva(0xffff_ea00_0001_0000)).unwrap().pa, Pa(0x21_0000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct X86PageTables {
    root: Pa,
    five_level: bool,
}

impl X86PageTables {
    /// An empty top-level table (PML4, or PML5 with `five_level`), allocated from `ram`.
    ///
    /// The table is aligned to 8 KiB, as a kernel PGD is: [`X86Paging::new`] reads
    /// CR3 bit 12 as the PTI user-half bit, not as an address bit.
    pub fn new(ram: &mut SynthRam, five_level: bool) -> Self {
        Self {
            root: ram.alloc(0x1000, 0x2000),
            five_level,
        }
    }

    /// The tables already rooted at `root` (a built guest's), to add entries to.
    pub fn at(root: Pa, five_level: bool) -> Self {
        Self { root, five_level }
    }

    /// The top-level table.
    pub fn root(&self) -> Pa {
        self.root
    }

    /// CR3 for these tables (no PCID).
    pub fn cr3(&self) -> u64 {
        self.root.0
    }

    /// The number of levels (4 or 5).
    pub fn levels(&self) -> u32 {
        if self.five_level {
            5
        } else {
            4
        }
    }

    /// The paging state that walks these tables.
    pub fn paging(&self) -> Paging {
        Paging::X86_64(X86Paging::new(self.cr3(), self.five_level))
    }

    /// Maps the page of `1 << page_shift` bytes (12, 21 or 30) at `va` to `pa`, as a
    /// global, writable, non-executable kernel page. An existing entry is replaced.
    ///
    /// # Panics
    /// On another `page_shift`, a `va` or `pa` not aligned to it, a non-canonical `va`,
    /// a large page in the way, or full RAM.
    pub fn map(&self, ram: &mut SynthRam, va: Kva, pa: Pa, page_shift: u32) {
        let level = match page_shift {
            12 => 0,
            21 => 1,
            30 => 2,
            _ => panic!("x86_64 has no {page_shift}-bit pages"),
        };
        assert_eq!(
            va.page_offset(page_shift),
            0,
            "{va} is not aligned to {page_shift} bits"
        );
        assert_eq!(
            pa.page_offset(page_shift),
            0,
            "{pa} is not aligned to {page_shift} bits"
        );
        assert_eq!(pa.0 & !ADDR_MASK, 0, "{pa} is beyond 52 bits");
        let ps = if level == 0 { 0 } else { PAGE_SIZE };
        self.set_entry(ram, va, level, pa.0 | X86_LEAF_FLAGS | ps);
    }

    /// Maps `len` bytes (rounded up to whole pages) at `va` to `pa` with pages of
    /// `1 << page_shift` bytes.
    ///
    /// # Panics
    /// As [`map`](Self::map).
    pub fn map_range(&self, ram: &mut SynthRam, va: Kva, pa: Pa, len: u64, page_shift: u32) {
        let size = 1u64 << page_shift;
        let mut off = 0;
        while off < len {
            self.map(ram, Kva(va.0 + off), Pa(pa.0 + off), page_shift);
            off += size;
        }
    }

    /// Writes `raw` as the entry for `va` at `level` (0 for the last level), creating
    /// the tables above it as needed, and returns the entry's address. For tests that
    /// need entries `map` would not write (reserved bits, loops, odd addresses).
    ///
    /// # Panics
    /// On a level above the root, a non-canonical `va`, a large page in the way, or
    /// full RAM.
    pub fn set_entry(&self, ram: &mut SynthRam, va: Kva, level: u32, raw: u64) -> Pa {
        let top = self.check(va, level);
        let mut table = self.root.0;
        for l in (level + 1..=top).rev() {
            let at = Pa(table + Self::index(va, l) * 8);
            table = match Self::next_table(ram, at, l, va) {
                Some(next) => next,
                None => {
                    let next = ram.alloc_page(12);
                    ram.write_u64(at, next.0 | X86_TABLE_FLAGS);
                    next.0
                }
            };
        }
        let at = Pa(table + Self::index(va, level) * 8);
        ram.write_u64(at, raw);
        at
    }

    /// The address of the entry for `va` at `level`, through the existing tables.
    ///
    /// # Panics
    /// When a table on the way is absent or a large page is in the way.
    pub fn entry_addr(&self, ram: &SynthRam, va: Kva, level: u32) -> Pa {
        let top = self.check(va, level);
        let mut table = self.root.0;
        for l in (level + 1..=top).rev() {
            let at = Pa(table + Self::index(va, l) * 8);
            table = Self::next_table(ram, at, l, va)
                .unwrap_or_else(|| panic!("no table at level {l} for {va}"));
        }
        Pa(table + Self::index(va, level) * 8)
    }

    /// Checks `va` and `level`; returns the root level.
    fn check(&self, va: Kva, level: u32) -> u32 {
        let top = self.levels() - 1;
        assert!(level <= top, "level {level} is above the root ({top})");
        let va_bits = 12 + 9 * self.levels();
        let high = va.0 >> (va_bits - 1);
        assert!(
            high == 0 || high == low_mask(65 - va_bits),
            "{va} is not canonical"
        );
        top
    }

    fn index(va: Kva, level: u32) -> u64 {
        (va.0 >> (12 + 9 * level)) & 0x1ff
    }

    /// The table the entry at `at` (of `level`) points to, if present.
    fn next_table(ram: &SynthRam, at: Pa, level: u32, va: Kva) -> Option<u64> {
        let entry = ram.read_u64(at);
        if entry & PRESENT == 0 {
            return None;
        }
        assert!(
            entry & PAGE_SIZE == 0,
            "a large page at level {level} covers {va}"
        );
        Some(entry & ADDR_MASK)
    }
}

/// aarch64 upper-half (TTBR1) page tables under construction.
///
/// ```
/// use mapwalk_core::synth::{Aarch64PageTables, SynthRam};
/// use mapwalk_core::{translate, Kva, Pa};
///
/// // RAM at 1 GiB as on QEMU `virt`; 4 KiB granule, 48-bit VAs, ASID 1.
/// let mut ram = SynthRam::new(Pa(0x4000_0000), 1 << 20);
/// let pt = Aarch64PageTables::new(&mut ram, 12, 16, 1);
/// pt.map(&mut ram, Kva(0xffff_8000_1000_0000), Pa(0x4008_0000), 12);
///
/// let va = Kva(0xffff_8000_1000_0010);
/// let m = translate(&ram.as_ram(), &pt.paging(), va).unwrap().mapped(va).unwrap();
/// assert_eq!((m.pa, m.page_shift), (Pa(0x4008_0010), 12));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64PageTables {
    root: Pa,
    granule_shift: u32,
    t1sz: u32,
    asid: u16,
    levels: u32,
    root_bits: u32,
    lpa2: bool,
}

impl Aarch64PageTables {
    /// An empty root table for a granule of `1 << granule_shift` bytes (12, 14 or 16)
    /// and `64 - t1sz` bits of virtual address, allocated from `ram`. `asid` goes into
    /// TTBR1 bits 63:48.
    ///
    /// # Panics
    /// On another granule, a T1SZ the walker refuses, or full RAM.
    pub fn new(ram: &mut SynthRam, granule_shift: u32, t1sz: u32, asid: u16) -> Self {
        Self::build(ram, granule_shift, t1sz, asid, false)
    }

    /// As [`new`](Self::new), with TCR_EL1.DS = 1 (FEAT_LPA2): a 4 or 16 KiB granule,
    /// T1SZ from 12 (52-bit VAs; five levels with 4 KiB) to 48, descriptors in the LPA2
    /// format (OA\[51:50\] in bits 9:8) and physical addresses up to 52 bits.
    ///
    /// ```
    /// use mapwalk_core::synth::{Aarch64PageTables, SynthRam};
    /// use mapwalk_core::{translate, Kva, Pa};
    ///
    /// // RAM above 1 PiB; 4 KiB granule, 52-bit VAs: five levels.
    /// let mut ram = SynthRam::new(Pa(0x000c_0000_4000_0000), 1 << 20);
    /// let pt = Aarch64PageTables::new_lpa2(&mut ram, 12, 12, 1);
    /// assert_eq!(pt.levels(), 5);
    /// pt.map(&mut ram, Kva(0xfff0_0000_1000_0000), Pa(0x000c_0000_4008_0000), 12);
    ///
    /// let va = Kva(0xfff0_0000_1000_0010);
    /// let m = translate(&ram.as_ram(), &pt.paging(), va).unwrap().mapped(va).unwrap();
    /// assert_eq!(m.pa, Pa(0x000c_0000_4008_0010));
    /// ```
    ///
    /// # Panics
    /// On a 64 KiB granule, a T1SZ the walker refuses, or full RAM.
    pub fn new_lpa2(ram: &mut SynthRam, granule_shift: u32, t1sz: u32, asid: u16) -> Self {
        assert!(
            matches!(granule_shift, 12 | 14),
            "LPA2 has no {granule_shift}-bit granule"
        );
        Self::build(ram, granule_shift, t1sz, asid, true)
    }

    fn build(ram: &mut SynthRam, granule_shift: u32, t1sz: u32, asid: u16, lpa2: bool) -> Self {
        assert!(
            matches!(granule_shift, 12 | 14 | 16),
            "no {granule_shift}-bit granule"
        );
        let (lo, hi) = if granule_shift == 16 {
            (12, 47)
        } else if lpa2 {
            (12, 48)
        } else {
            (16, 48)
        };
        assert!(
            (lo..=hi).contains(&t1sz),
            "T1SZ {t1sz} is out of range for the granule"
        );
        let bits_per_level = granule_shift - 3;
        let span = 64 - t1sz - granule_shift;
        let levels = span.div_ceil(bits_per_level);
        let root_bits = span - (levels - 1) * bits_per_level;
        // A whole granule, so any root size is aligned.
        let root = ram.alloc_page(granule_shift);
        Self {
            root,
            granule_shift,
            t1sz,
            asid,
            levels,
            root_bits,
            lpa2,
        }
    }

    /// Whether the tables use the LPA2 format ([`new_lpa2`](Self::new_lpa2)).
    pub fn lpa2(&self) -> bool {
        self.lpa2
    }

    /// The address bits of a descriptor pointing at `pa`: `pa` itself, or under LPA2
    /// PA\[49:0\] with PA\[51:50\] moved to bits 9:8.
    pub fn encode_oa(&self, pa: Pa) -> u64 {
        if self.lpa2 {
            (pa.0 & 0x0003_ffff_ffff_ffff) | ((pa.0 >> 50 & 0b11) << 8)
        } else {
            pa.0
        }
    }

    /// The root table.
    pub fn root(&self) -> Pa {
        self.root
    }

    /// log2 of the granule.
    pub fn granule_shift(&self) -> u32 {
        self.granule_shift
    }

    /// The number of levels.
    pub fn levels(&self) -> u32 {
        self.levels
    }

    /// Virtual-address bits: `64 - T1SZ`.
    pub fn va_bits(&self) -> u32 {
        64 - self.t1sz
    }

    /// TTBR1_EL1: the root with the ASID in bits 63:48 (under LPA2, PA\[51:48\] of the
    /// root in bits 5:2).
    pub fn ttbr1(&self) -> u64 {
        let base = if self.lpa2 {
            (self.root.0 & 0x0000_ffff_ffff_ffc0) | ((self.root.0 >> 48) << 2)
        } else {
            self.root.0
        };
        base | (u64::from(self.asid) << 48)
    }

    /// TCR_EL1 as Linux would set it for this geometry: T1SZ and TG1 (T0SZ and TG0 to
    /// match), 48-bit IPS, inner-shareable write-back walks; under LPA2 also DS and a
    /// 52-bit IPS.
    pub fn tcr(&self) -> u64 {
        let t = u64::from(self.t1sz);
        let (tg1, tg0) = match self.granule_shift {
            12 => (TG1_4K, 0b00),
            14 => (TG1_16K, 0b10),
            _ => (TG1_64K, 0b01),
        };
        let walk_attrs = (0b01 << 8) | (0b01 << 10) | (0b11 << 12); // IRGN0, ORGN0, SH0
        let walk_attrs1 = (0b01 << 24) | (0b01 << 26) | (0b11 << 28); // IRGN1, ORGN1, SH1
        t | (tg0 << 14)
            | walk_attrs
            | (t << TCR_T1SZ_SHIFT)
            | walk_attrs1
            | (tg1 << TCR_TG1_SHIFT)
            | if self.lpa2 {
                (IPS_52_BITS << TCR_IPS_SHIFT) | TCR_DS
            } else {
                0b101 << TCR_IPS_SHIFT
            }
    }

    /// The paging state that walks these tables.
    pub fn paging(&self) -> Paging {
        Paging::Aarch64(
            Aarch64Paging::new(self.ttbr1(), self.tcr()).expect("the builder's TCR is valid"),
        )
    }

    /// The leaf shifts this geometry allows: the granule, then each legal block size.
    pub fn leaf_shifts(&self) -> impl Iterator<Item = u32> {
        let g = self.granule_shift;
        let bpl = g - 3;
        let levels = self.levels;
        let blocks: &'static [u32] = match (g, self.lpa2) {
            (12, true) => &[1, 2, 3],
            (12, false) | (14, true) => &[1, 2],
            _ => &[1],
        };
        core::iter::once(g).chain(
            blocks
                .iter()
                .filter(move |&&l| l < levels)
                .map(move |&l| g + l * bpl),
        )
    }

    /// Maps the page or block of `1 << page_shift` bytes at `va` to `pa`, as
    /// non-executable kernel data. `page_shift` is the granule or a legal block size
    /// (21 or 30 with 4 KiB granules, 25 with 16 KiB, 29 with 64 KiB; under LPA2 also 39
    /// with 4 KiB and 36 with 16 KiB). An existing entry is replaced.
    ///
    /// # Panics
    /// On another `page_shift`, a `va` or `pa` not aligned to it, a `va` outside the
    /// upper half, a block in the way, or full RAM.
    pub fn map(&self, ram: &mut SynthRam, va: Kva, pa: Pa, page_shift: u32) {
        assert!(
            self.leaf_shifts().any(|s| s == page_shift),
            "no {page_shift}-bit leaves with a {}-bit granule and {} levels",
            self.granule_shift,
            self.levels
        );
        assert_eq!(
            va.page_offset(page_shift),
            0,
            "{va} is not aligned to {page_shift} bits"
        );
        assert_eq!(
            pa.page_offset(page_shift),
            0,
            "{pa} is not aligned to {page_shift} bits"
        );
        let pa_bits = if self.lpa2 { 52 } else { 48 };
        assert!(pa.0 < 1 << pa_bits, "{pa} is beyond {pa_bits} bits");
        let level = (page_shift - self.granule_shift) / (self.granule_shift - 3);
        let kind = if level == 0 { 0b11 } else { 0b01 };
        // Under LPA2 bits 9:8 are address bits: shareability comes from TCR_EL1.
        let flags = if self.lpa2 {
            ARM_LEAF_FLAGS & !INNER_SHAREABLE
        } else {
            ARM_LEAF_FLAGS
        };
        self.set_entry(ram, va, level, self.encode_oa(pa) | flags | kind);
    }

    /// Maps `len` bytes (rounded up to whole leaves) at `va` to `pa` with leaves of
    /// `1 << page_shift` bytes.
    ///
    /// # Panics
    /// As [`map`](Self::map).
    pub fn map_range(&self, ram: &mut SynthRam, va: Kva, pa: Pa, len: u64, page_shift: u32) {
        let size = 1u64 << page_shift;
        let mut off = 0;
        while off < len {
            self.map(ram, Kva(va.0 + off), Pa(pa.0 + off), page_shift);
            off += size;
        }
    }

    /// Writes `raw` as the descriptor for `va` at `level` (0 for the last level),
    /// creating the tables above it as needed, and returns its address.
    ///
    /// # Panics
    /// On a level above the root, a `va` outside the upper half, a block in the way, or
    /// full RAM.
    pub fn set_entry(&self, ram: &mut SynthRam, va: Kva, level: u32, raw: u64) -> Pa {
        let top = self.check(va, level);
        let mut table = self.root.0;
        for l in (level + 1..=top).rev() {
            let at = Pa(table + self.index(va, l) * 8);
            table = match self.next_table(ram, at, l, va) {
                Some(next) => next,
                None => {
                    let next = ram.alloc_page(self.granule_shift);
                    ram.write_u64(at, self.encode_oa(next) | 0b11);
                    next.0
                }
            };
        }
        let at = Pa(table + self.index(va, level) * 8);
        ram.write_u64(at, raw);
        at
    }

    /// The address of the descriptor for `va` at `level`, through the existing tables.
    ///
    /// # Panics
    /// When a table on the way is absent or a block is in the way.
    pub fn entry_addr(&self, ram: &SynthRam, va: Kva, level: u32) -> Pa {
        let top = self.check(va, level);
        let mut table = self.root.0;
        for l in (level + 1..=top).rev() {
            let at = Pa(table + self.index(va, l) * 8);
            table = self
                .next_table(ram, at, l, va)
                .unwrap_or_else(|| panic!("no table at level {l} for {va}"));
        }
        Pa(table + self.index(va, level) * 8)
    }

    /// Checks `va` and `level`; returns the root level.
    fn check(&self, va: Kva, level: u32) -> u32 {
        let top = self.levels - 1;
        assert!(level <= top, "level {level} is above the root ({top})");
        assert_eq!(
            va.0 | low_mask(self.va_bits()),
            u64::MAX,
            "{va} is not in the upper half"
        );
        top
    }

    fn index(&self, va: Kva, level: u32) -> u64 {
        let bpl = self.granule_shift - 3;
        let bits = if level == self.levels - 1 {
            self.root_bits
        } else {
            bpl
        };
        (va.0 >> (self.granule_shift + level * bpl)) & low_mask(bits)
    }

    /// The table the descriptor at `at` (of `level`) points to, if valid.
    fn next_table(&self, ram: &SynthRam, at: Pa, level: u32, va: Kva) -> Option<u64> {
        let entry = ram.read_u64(at);
        if entry & 1 == 0 {
            return None;
        }
        assert!(entry & 0b10 != 0, "a block at level {level} covers {va}");
        let addr = if self.lpa2 {
            (entry & 0x0003_ffff_ffff_ffff) | ((entry >> 8 & 0b11) << 50)
        } else {
            entry & 0x0000_ffff_ffff_ffff
        };
        Some(addr & !low_mask(self.granule_shift))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aarch64_leaf_shifts() {
        let mut ram = SynthRam::new(Pa(0x4000_0000), 1 << 20);
        let shifts = |g, t1sz, ram: &mut SynthRam| {
            Aarch64PageTables::new(ram, g, t1sz, 0)
                .leaf_shifts()
                .collect::<alloc::vec::Vec<_>>()
        };
        assert_eq!(shifts(12, 16, &mut ram), [12, 21, 30]);
        assert_eq!(shifts(12, 34, &mut ram), [12, 21]); // 30-bit VA: two levels
        assert_eq!(shifts(14, 17, &mut ram), [14, 25]);
        assert_eq!(shifts(16, 22, &mut ram), [16, 29]);
        let lpa2 = |g, t1sz, ram: &mut SynthRam| {
            Aarch64PageTables::new_lpa2(ram, g, t1sz, 0)
                .leaf_shifts()
                .collect::<alloc::vec::Vec<_>>()
        };
        assert_eq!(lpa2(12, 12, &mut ram), [12, 21, 30, 39]);
        assert_eq!(lpa2(12, 25, &mut ram), [12, 21, 30]); // 39-bit VA: three levels
        assert_eq!(lpa2(14, 12, &mut ram), [14, 25, 36]);
    }

    #[test]
    fn tcr_decodes_to_the_builder_geometry() {
        let mut ram = SynthRam::new(Pa(0x4000_0000), 1 << 20);
        for (g, t1sz) in [(12, 16), (12, 25), (14, 17), (16, 22)] {
            let pt = Aarch64PageTables::new(&mut ram, g, t1sz, 0xbeef);
            let Paging::Aarch64(p) = pt.paging() else {
                unreachable!()
            };
            assert_eq!(
                (p.granule_shift(), p.va_bits(), p.levels(), p.root()),
                (g, 64 - t1sz, pt.levels(), pt.root())
            );
            assert_eq!(p.asid(), 0xbeef);
            assert!(!p.lpa2());
        }
        let mut high = SynthRam::new(Pa(0x000f_0000_4000_0000), 1 << 20);
        for (g, t1sz, levels) in [(12, 12, 5), (12, 16, 4), (14, 12, 4)] {
            let pt = Aarch64PageTables::new_lpa2(&mut high, g, t1sz, 0xbeef);
            let Paging::Aarch64(p) = pt.paging() else {
                unreachable!()
            };
            assert_eq!(
                (p.granule_shift(), p.va_bits(), p.levels(), p.root()),
                (g, 64 - t1sz, levels, pt.root())
            );
            assert_eq!(pt.levels(), levels);
            assert!(p.lpa2() && pt.lpa2());
            assert_eq!(p.asid(), 0xbeef);
        }
    }

    #[test]
    fn x86_tables_are_shared_between_mappings() {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let pt = X86PageTables::new(&mut ram, false);
        pt.map_range(
            &mut ram,
            Kva(0xffff_c900_0000_0000),
            Pa(0x10_0000),
            0x4000,
            12,
        );
        // Root, PDPT, PD and one PT: four pages.
        let used = ram.alloc(0, 1).0;
        assert_eq!(used, 0x4000);
        // After an odd page, a second root skips one: roots are 8 KiB aligned.
        ram.alloc(0x1000, 0x1000);
        let second = X86PageTables::new(&mut ram, true);
        assert_eq!(second.cr3(), 0x6000);
        assert_eq!(
            second.paging(),
            Paging::X86_64(X86Paging::new(0x6000, true))
        );
        assert_eq!(
            pt.entry_addr(&ram, Kva(0xffff_c900_0000_3000), 0).0 & 0xfff,
            3 * 8
        );
    }

    #[test]
    #[should_panic(expected = "not canonical")]
    fn x86_refuses_non_canonical() {
        let mut ram = SynthRam::new(Pa(0), 1 << 16);
        let pt = X86PageTables::new(&mut ram, false);
        pt.map(&mut ram, Kva(0x0000_8000_0000_0000), Pa(0), 12);
    }

    #[test]
    #[should_panic(expected = "no 25-bit leaves")]
    fn aarch64_refuses_illegal_blocks() {
        let mut ram = SynthRam::new(Pa(0), 1 << 16);
        let pt = Aarch64PageTables::new(&mut ram, 12, 16, 0);
        pt.map(&mut ram, Kva(0xffff_0000_0000_0000), Pa(0), 25);
    }
}
