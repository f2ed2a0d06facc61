//! aarch64 stage-1 translation of the kernel (TTBR1) half.
//!
//! # Geometry
//! TCR_EL1 gives the granule (TG1: 4, 16 or 64 KiB) and the size of the upper
//! half (T1SZ: `64 - T1SZ` bits of virtual address). Each level resolves
//! `granule_shift - 3` bits; the number of levels is what the address needs, so the walk
//! starts at ARM level `4 - levels` (for example level 1 for a 4 KiB granule with 39-bit
//! addresses, level 2 for 64 KiB with 42 bits).
//!
//! # Level numbering
//! As everywhere in [`crate::arch`], levels count down to the leaf: the last level (ARM
//! level 3) is our level 0, and ARM level `L` is our level `3 - L`. The root is the
//! highest number, `levels - 1`.
//!
//! # Descriptors
//! Bit 0 clear: invalid, [`Translation::NotPresent`]. Low bits `0b11`: a table above the
//! last level, a page at it. `0b01`: a block, legal at ARM level 1 and 2 with 4 KiB
//! granules (1 GiB, 2 MiB) and at ARM level 2 with 16 and 64 KiB granules (32 MiB,
//! 512 MiB); anywhere else, and at the last level, it is [`Error::BadPte`]. Output
//! addresses are bits 47 down to the granule (tables, pages) or the block size
//! (blocks); attribute bits (UXN, PXN, AF, SH, the contiguous hint) are ignored.
//!
//! # 52-bit addresses
//! - 64 KiB granule with TCR_EL1.IPS = 52 bits (FEAT_LPA): descriptors carry PA\[51:48\]
//!   in bits 15:12 and TTBR1 carries them in bits 5:2; both are decoded, and ARM level 1
//!   blocks (4 TiB) are legal. 52-bit virtual addresses (FEAT_LVA, T1SZ down to 12) work
//!   with the 64 KiB granule.
//! - TCR_EL1.DS = 1 (FEAT_LPA2, 52-bit addresses with 4 and 16 KiB granules) changes the
//!   descriptor format; it is **not supported** and [`Aarch64Paging::new`] refuses it
//!   with [`Error::BadPaging`].
//!
//! # Tagged addresses
//! With TCR_EL1.TBI1 set (KASAN software tags, MTE) the top byte of an address does not
//! take part in translation; the walker ignores it too.

use crate::addr::{low_mask, Kva, Pa};
use crate::arch::{Mapping, Translation};
use crate::error::{Error, Result};
use crate::limits::MAX_PT_LEVELS;
use crate::mem::{PhysRead, PhysReadExt};

/// Descriptor bit 0: valid.
pub const VALID: u64 = 1 << 0;
/// Descriptor bit 1: table (above the last level) or page (at it); clear for a block.
pub const TABLE_OR_PAGE: u64 = 1 << 1;
/// Descriptor bit 10: access flag.
pub const ACCESS_FLAG: u64 = 1 << 10;
/// Descriptor bits 9:8 = 0b11: inner shareable.
pub const INNER_SHAREABLE: u64 = 0b11 << 8;
/// Descriptor bit 53: privileged execute-never.
pub const PXN: u64 = 1 << 53;
/// Descriptor bit 54: unprivileged execute-never.
pub const UXN: u64 = 1 << 54;

/// TCR_EL1.T1SZ: bits 21:16.
pub const TCR_T1SZ_SHIFT: u32 = 16;
/// TCR_EL1.TG1: bits 31:30.
pub const TCR_TG1_SHIFT: u32 = 30;
/// TCR_EL1.IPS: bits 34:32.
pub const TCR_IPS_SHIFT: u32 = 32;
/// TCR_EL1.TBI1: bit 38.
pub const TCR_TBI1: u64 = 1 << 38;
/// TCR_EL1.DS: bit 59 (FEAT_LPA2).
pub const TCR_DS: u64 = 1 << 59;
/// TG1 encoding of the 4 KiB granule.
pub const TG1_4K: u64 = 0b10;
/// TG1 encoding of the 16 KiB granule.
pub const TG1_16K: u64 = 0b01;
/// TG1 encoding of the 64 KiB granule.
pub const TG1_64K: u64 = 0b11;
/// IPS encoding of a 52-bit physical address size.
pub const IPS_52_BITS: u64 = 0b110;

/// Bits 47:0: the address bits of a descriptor or TTBR without FEAT_LPA.
const OA_MASK_48: u64 = 0x0000_ffff_ffff_ffff;
/// Bits 15:12 of a 64 KiB-granule descriptor: PA\[51:48\] under FEAT_LPA.
const LPA_DESC_HIGH: u64 = 0xf000;
/// Bits 5:2 of TTBR: PA\[51:48\] under FEAT_LPA.
const LPA_TTBR_HIGH: u64 = 0x3c;
/// Where PA\[51:48\] sits relative to descriptor bits 15:12.
const LPA_DESC_HIGH_SHIFT: u32 = 36;
/// Where PA\[51:48\] sits relative to TTBR bits 5:2.
const LPA_TTBR_HIGH_SHIFT: u32 = 46;
/// The top byte, ignored under TBI1.
const TOP_BYTE: u64 = 0xff00_0000_0000_0000;

/// aarch64 paging state for the upper half: TTBR1_EL1 and TCR_EL1, validated and
/// decoded once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aarch64Paging {
    ttbr1: u64,
    tcr: u64,
    /// The root table: TTBR1's base address, ASID and CnP stripped.
    root: Pa,
    /// log2 of the granule: 12, 14 or 16.
    granule_shift: u32,
    /// Virtual-address bits: `64 - T1SZ`.
    va_bits: u32,
    /// Levels walked: 1 to 4.
    levels: u32,
    /// Index bits resolved by the root level (at most `granule_shift - 3`).
    root_bits: u32,
    /// 64 KiB granule with 52-bit output addresses (FEAT_LPA).
    lpa: bool,
    /// Bits of a virtual address that do not take part in translation (TBI1).
    ignored: u64,
}

impl Aarch64Paging {
    /// Paging state from TTBR1_EL1 and TCR_EL1.
    ///
    /// T1SZ must be 16..=48 with 4 and 16 KiB granules and 12..=47 with 64 KiB (the
    /// architecture's range, FEAT_LVA and FEAT_TTST included).
    ///
    /// # Errors
    /// [`Error::BadPaging`] for a reserved granule (TG1 = 0b00), a T1SZ outside the
    /// range, or DS = 1 with a 4 or 16 KiB granule (FEAT_LPA2, not supported).
    pub fn new(ttbr1: u64, tcr: u64) -> Result<Self> {
        let granule_shift: u32 = match tcr.wrapping_shr(TCR_TG1_SHIFT) & 0b11 {
            TG1_4K => 12,
            TG1_16K => 14,
            TG1_64K => 16,
            _ => {
                return Err(Error::BadPaging {
                    what: "reserved TCR_EL1.TG1 granule",
                    value: tcr,
                })
            }
        };
        if tcr & TCR_DS != 0 && granule_shift != 16 {
            return Err(Error::BadPaging {
                what: "TCR_EL1.DS set: LPA2 (52-bit addresses with 4/16 KiB granules) is not supported",
                value: tcr,
            });
        }
        let t1sz = tcr.wrapping_shr(TCR_T1SZ_SHIFT) & 0x3f;
        let (min_t1sz, max_t1sz) = if granule_shift == 16 {
            (12, 47)
        } else {
            (16, 48)
        };
        if t1sz < min_t1sz || t1sz > max_t1sz {
            return Err(Error::BadPaging {
                what: "TCR_EL1.T1SZ outside the range of the granule",
                value: t1sz,
            });
        }
        let va_bits = 64u32.saturating_sub(u32::try_from(t1sz).unwrap_or(64));
        let bits_per_level = granule_shift.saturating_sub(3);
        let span = va_bits.saturating_sub(granule_shift);
        let levels = span.div_ceil(bits_per_level.max(1));
        let root_bits =
            span.saturating_sub(levels.saturating_sub(1).saturating_mul(bits_per_level));
        if levels == 0 || levels > MAX_PT_LEVELS {
            return Err(Error::BadPaging {
                what: "TCR_EL1.T1SZ gives no usable number of levels",
                value: t1sz,
            });
        }
        let lpa = granule_shift == 16 && tcr.wrapping_shr(TCR_IPS_SHIFT) & 0b111 == IPS_52_BITS;
        let base = if lpa {
            (ttbr1 & OA_MASK_48 & !low_mask(6))
                | (ttbr1 & LPA_TTBR_HIGH).wrapping_shl(LPA_TTBR_HIGH_SHIFT)
        } else {
            ttbr1 & OA_MASK_48
        };
        // The root table is aligned to its size (at least 8 bytes, 64 with FEAT_LPA):
        // the bits below are RES0, and dropping them also drops CnP (bit 0).
        let align = root_bits.saturating_add(3).max(if lpa { 6 } else { 3 });
        let root = Pa(base & !low_mask(align));
        let ignored = if tcr & TCR_TBI1 != 0 { TOP_BYTE } else { 0 };
        Ok(Self {
            ttbr1,
            tcr,
            root,
            granule_shift,
            va_bits,
            levels,
            root_bits,
            lpa,
            ignored,
        })
    }

    /// TTBR1_EL1 as given.
    pub const fn ttbr1(&self) -> u64 {
        self.ttbr1
    }

    /// TCR_EL1 as given.
    pub const fn tcr(&self) -> u64 {
        self.tcr
    }

    /// The root table (TTBR1 without ASID and CnP).
    pub const fn root(&self) -> Pa {
        self.root
    }

    /// The ASID of TTBR1 (bits 63:48).
    pub const fn asid(&self) -> u16 {
        // Bits 63:48 shifted down fit in 16 bits.
        let hi = self.ttbr1.wrapping_shr(48).to_le_bytes();
        u16::from_le_bytes([hi[0], hi[1]])
    }

    /// log2 of the granule: 12, 14 or 16.
    pub const fn granule_shift(&self) -> u32 {
        self.granule_shift
    }

    /// Virtual-address bits of the upper half: `64 - T1SZ`.
    pub const fn va_bits(&self) -> u32 {
        self.va_bits
    }

    /// The number of levels walked (1 to 4).
    pub const fn levels(&self) -> u32 {
        self.levels
    }

    /// The ARM number of the first level walked (`4 - levels`); our number of the same
    /// level is `levels - 1`.
    pub const fn start_level(&self) -> u32 {
        4u32.saturating_sub(self.levels)
    }

    /// Whether output addresses have 52 bits (64 KiB granule, FEAT_LPA).
    pub const fn lpa(&self) -> bool {
        self.lpa
    }

    /// The lowest address of the upper half: `!0 << va_bits`.
    pub const fn first_address(&self) -> Kva {
        Kva(!low_mask(self.va_bits))
    }

    /// Whether a block descriptor is legal at our `level` (0 is the last level).
    #[inline(always)]
    const fn block_allowed(&self, level: u32) -> bool {
        match self.granule_shift {
            12 => level == 1 || level == 2,
            _ => level == 1 || (self.lpa && level == 2),
        }
    }

    /// The output address of a descriptor: bits 47:0 (bits 51:48 from 15:12 under
    /// FEAT_LPA), before the caller masks it to the table, page or block size.
    #[inline(always)]
    const fn output_address(&self, raw: u64) -> u64 {
        let low = raw & OA_MASK_48;
        if self.lpa {
            (low & !LPA_DESC_HIGH) | (raw & LPA_DESC_HIGH).wrapping_shl(LPA_DESC_HIGH_SHIFT)
        } else {
            low
        }
    }
}

/// Translates `va` through aarch64 page tables (the TTBR1 half).
///
/// Each level costs one 8-byte read of `mem`.
///
/// # Errors
/// - [`Error::NotKernelAddress`] when the bits of `va` above `va_bits` are not all set
///   (a lower-half or out-of-range address; the top byte is exempt under TBI1);
/// - [`Error::BadPte`] for a block where the granule allows none or a `0b01` descriptor
///   at the last level;
/// - [`Error::Phys`] when a table cannot be read.
#[inline]
pub fn translate<M: PhysRead + ?Sized>(mem: &M, p: &Aarch64Paging, va: Kva) -> Result<Translation> {
    // The usual geometries get a walk with a constant level count, which unrolls.
    match (p.granule_shift, p.levels) {
        (12, 4) => walk::<M, 12, 4>(mem, p, va),
        (12, 3) => walk::<M, 12, 3>(mem, p, va),
        (12, _) => walk::<M, 12, 0>(mem, p, va),
        (14, _) => walk::<M, 14, 0>(mem, p, va),
        (_, 3) => walk::<M, 16, 3>(mem, p, va),
        (_, 2) => walk::<M, 16, 2>(mem, p, va),
        _ => walk::<M, 16, 0>(mem, p, va),
    }
}

/// The walk, monomorphised per granule so that the geometry is constant, and per level
/// count for the usual ones (`LEVELS` = 0: take it from `p`).
#[inline(always)]
fn walk<M: PhysRead + ?Sized, const GRANULE_SHIFT: u32, const LEVELS: u32>(
    mem: &M,
    p: &Aarch64Paging,
    va: Kva,
) -> Result<Translation> {
    let addr = va.0 | p.ignored;
    if addr | low_mask(p.va_bits) != u64::MAX {
        return Err(Error::NotKernelAddress { va });
    }
    let bits_per_level = GRANULE_SHIFT.wrapping_sub(3);
    let mut table = p.root.0;
    let mut index_mask = low_mask(p.root_bits);
    // The cap: one iteration per level, root first. Every path through the body either
    // descends one level or returns, and level 0 always returns.
    let levels = if LEVELS != 0 { LEVELS } else { p.levels };
    let levels = if levels < MAX_PT_LEVELS {
        levels
    } else {
        MAX_PT_LEVELS
    };
    for level in (0..levels).rev() {
        let shift = GRANULE_SHIFT.wrapping_add(level.wrapping_mul(bits_per_level));
        let index = addr.wrapping_shr(shift) & index_mask;
        // `table` is aligned to the table's size, so the OR is the sum.
        let raw = mem.read_u64(Pa(table | index.wrapping_mul(8)))?;
        let level8 = u8::try_from(level).unwrap_or(u8::MAX);
        if raw & VALID == 0 {
            return Ok(Translation::NotPresent { level: level8 });
        }
        let table_or_page = raw & TABLE_OR_PAGE != 0;
        if level != 0 && table_or_page {
            table = p.output_address(raw) & !low_mask(GRANULE_SHIFT);
            index_mask = low_mask(bits_per_level);
            continue;
        }
        // A page (level 0, 0b11) or a block (0b01 above level 0).
        if !table_or_page && (level == 0 || !p.block_allowed(level)) {
            return Err(Error::BadPte {
                va,
                level: level8,
                raw,
            });
        }
        let frame = p.output_address(raw) & !low_mask(shift);
        return Ok(Translation::Mapped(Mapping {
            pa: Pa(frame | va.page_offset(shift)),
            page_shift: shift,
            raw,
        }));
    }
    Err(Error::LimitExceeded {
        what: "page-table levels",
        limit: u64::from(MAX_PT_LEVELS),
        at: va.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Paging;
    use crate::error::{Access, PhysErrorKind};
    use crate::synth::{Aarch64PageTables, SynthRam};

    const RAM_BASE: u64 = 0x4000_0000;

    fn setup(granule: u32, t1sz: u32) -> (SynthRam, Aarch64PageTables) {
        let mut ram = SynthRam::new(Pa(RAM_BASE), 8 << 20);
        let pt = Aarch64PageTables::new(&mut ram, granule, t1sz, 0x2a);
        (ram, pt)
    }

    fn arm(pt: &Aarch64PageTables) -> Aarch64Paging {
        match pt.paging() {
            Paging::Aarch64(p) => p,
            Paging::X86_64(_) => unreachable!(),
        }
    }

    fn mapped(ram: &SynthRam, p: &Aarch64Paging, va: u64) -> Mapping {
        match translate(&ram.as_ram(), p, Kva(va)).unwrap() {
            Translation::Mapped(m) => m,
            t => panic!("{va:#x}: {t:?}"),
        }
    }

    /// Maps `va` to `pa` with a leaf of `shift`, then checks a translation inside it.
    fn check_leaf(ram: &mut SynthRam, pt: &Aarch64PageTables, va: u64, pa: u64, shift: u32) {
        pt.map(ram, Kva(va), Pa(pa), shift);
        let p = arm(pt);
        let off = (1u64 << shift) - 8;
        let m = mapped(ram, &p, va + off);
        assert_eq!(
            (m.pa, m.page_shift),
            (Pa(pa + off), shift),
            "va {va:#x} shift {shift}"
        );
        assert_eq!(
            m.raw & 0b11,
            if shift == p.granule_shift() {
                0b11
            } else {
                0b01
            }
        );
        assert_eq!(m.bytes_to_page_end(), 8);
    }

    #[test]
    fn geometry() {
        // (granule, T1SZ) -> (levels, ARM start level, root index bits)
        let cases = [
            (12, 16, 4, 0, 9),  // 4K, 48-bit
            (12, 25, 3, 1, 9),  // 4K, 39-bit
            (12, 24, 4, 0, 1),  // 4K, 40-bit
            (14, 16, 4, 0, 1),  // 16K, 48-bit
            (14, 17, 3, 1, 11), // 16K, 47-bit
            (14, 28, 2, 2, 11), // 16K, 36-bit
            (16, 16, 3, 1, 6),  // 64K, 48-bit
            (16, 22, 2, 2, 13), // 64K, 42-bit
            (16, 12, 3, 1, 10), // 64K, 52-bit (FEAT_LVA)
            (12, 48, 1, 3, 4),  // 4K, 16-bit (FEAT_TTST)
            (16, 47, 1, 3, 1),  // 64K, 17-bit
        ];
        for (g, t1sz, levels, start, root_bits) in cases {
            let tg1 = match g {
                12 => TG1_4K,
                14 => TG1_16K,
                _ => TG1_64K,
            };
            let tcr = (t1sz << TCR_T1SZ_SHIFT) | (tg1 << TCR_TG1_SHIFT);
            let p = Aarch64Paging::new(0x4000_0000, tcr).unwrap();
            assert_eq!(
                (
                    p.granule_shift(),
                    p.va_bits(),
                    p.levels(),
                    p.start_level(),
                    p.root_bits
                ),
                (g, 64 - t1sz as u32, levels, start, root_bits),
                "granule {g} T1SZ {t1sz}"
            );
        }
    }

    #[test]
    fn bad_paging_states() {
        let bad = |tcr: u64| match Aarch64Paging::new(0x4000_0000, tcr) {
            Err(Error::BadPaging { what, .. }) => what,
            other => panic!("{tcr:#x}: {other:?}"),
        };
        // TG1 = 0b00 is reserved.
        assert_eq!(bad(16 << 16), "reserved TCR_EL1.TG1 granule");
        // T1SZ out of range for the granule.
        let t4k = TG1_4K << TCR_TG1_SHIFT;
        let t64k = TG1_64K << TCR_TG1_SHIFT;
        assert!(bad(t4k | (15 << 16)).contains("T1SZ"));
        assert!(bad(t4k | (12 << 16)).contains("T1SZ"));
        assert!(bad(t4k | (49 << 16)).contains("T1SZ"));
        assert!(bad(t64k | (11 << 16)).contains("T1SZ"));
        assert!(bad(t64k | (48 << 16)).contains("T1SZ"));
        // LPA2 with 4K and 16K granules.
        assert!(bad(t4k | (16 << 16) | TCR_DS).contains("LPA2"));
        assert!(bad((TG1_16K << TCR_TG1_SHIFT) | (16 << 16) | TCR_DS).contains("LPA2"));
        // DS does nothing with 64K granules.
        assert!(Aarch64Paging::new(0x4000_0000, t64k | (16 << 16) | TCR_DS).is_ok());
    }

    #[test]
    fn four_k_granule_pages_and_blocks() {
        for t1sz in [16, 25] {
            let (mut ram, pt) = setup(12, t1sz);
            let top = !low_mask(64 - t1sz);
            // A page, a 2 MiB block, a 1 GiB block; physical RAM starts at 1 GiB.
            check_leaf(
                &mut ram,
                &pt,
                top | 0x0012_3456_7000 & low_mask(64 - t1sz),
                RAM_BASE + 0x5000,
                12,
            );
            check_leaf(
                &mut ram,
                &pt,
                top | 0x0000_8060_0000,
                RAM_BASE + 0x0020_0000,
                21,
            );
            check_leaf(&mut ram, &pt, top | 0x0001_0000_0000, RAM_BASE, 30);
            assert_eq!(arm(&pt).levels(), if t1sz == 16 { 4 } else { 3 });
        }
    }

    #[test]
    fn sixteen_k_granule_pages_and_blocks() {
        for t1sz in [16, 17] {
            let (mut ram, pt) = setup(14, t1sz);
            let top = !low_mask(64 - t1sz);
            check_leaf(&mut ram, &pt, top | 0x0000_1234_4000, RAM_BASE + 0xc000, 14);
            check_leaf(
                &mut ram,
                &pt,
                top | 0x0000_4200_0000,
                RAM_BASE + 0x0200_0000,
                25,
            );
            // The topmost address of the half.
            check_leaf(&mut ram, &pt, !low_mask(14), RAM_BASE + 0x0001_0000, 14);
            assert_eq!(arm(&pt).levels(), if t1sz == 16 { 4 } else { 3 });
        }
    }

    #[test]
    fn sixty_four_k_granule_pages_and_blocks() {
        for t1sz in [16, 22] {
            let mut ram = SynthRam::new(Pa(RAM_BASE), 40 << 20);
            let pt = Aarch64PageTables::new(&mut ram, 16, t1sz, 7);
            let top = !low_mask(64 - t1sz);
            check_leaf(
                &mut ram,
                &pt,
                top | 0x0000_1234_0000,
                RAM_BASE + 0x0003_0000,
                16,
            );
            check_leaf(
                &mut ram,
                &pt,
                top | 0x0000_6000_0000,
                RAM_BASE + 0x2000_0000,
                29,
            );
            assert_eq!(arm(&pt).levels(), if t1sz == 16 { 3 } else { 2 });
        }
    }

    #[test]
    fn small_address_spaces() {
        // (granule, T1SZ, levels): the walks without a constant level count.
        for (g, t1sz, levels) in [
            (12, 34, 2),
            (12, 48, 1),
            (14, 28, 2),
            (14, 48, 1),
            (16, 47, 1),
            (16, 12, 3),
        ] {
            let (mut ram, pt) = setup(g, t1sz);
            assert_eq!(pt.levels(), levels);
            let va = !low_mask(64 - t1sz) | (1 << g);
            check_leaf(&mut ram, &pt, va, RAM_BASE + (7 << g), g);
            let below = !low_mask(64 - t1sz) - 1;
            assert_eq!(
                translate(&ram.as_ram(), &arm(&pt), Kva(below)),
                Err(Error::NotKernelAddress { va: Kva(below) })
            );
        }
    }

    #[test]
    fn asid_and_cnp_are_stripped() {
        let (mut ram, pt) = setup(12, 16);
        let va = 0xffff_8000_0012_3000;
        pt.map(&mut ram, Kva(va), Pa(RAM_BASE + 0x7000), 12);
        assert_eq!(pt.ttbr1() >> 48, 0x2a);
        let p = Aarch64Paging::new(pt.ttbr1() | 1, pt.tcr()).unwrap();
        assert_eq!(p.asid(), 0x2a);
        assert_eq!(p.root().0, pt.ttbr1() & 0xffff_ffff_ffff);
        assert_eq!(mapped(&ram, &p, va + 4).pa, Pa(RAM_BASE + 0x7004));
        let p = Aarch64Paging::new(pt.ttbr1() | (0xffff << 48), pt.tcr()).unwrap();
        assert_eq!(mapped(&ram, &p, va + 4).pa, Pa(RAM_BASE + 0x7004));
    }

    #[test]
    fn attribute_bits_are_not_address() {
        let (mut ram, pt) = setup(12, 16);
        let va = 0xffff_8000_0040_0000u64;
        // A 2 MiB block with the contiguous hint, nT (bit 16), UXN/PXN, software bits
        // and junk in RES0 bits 20:17.
        let raw = (RAM_BASE + 0x0040_0000)
            | (1 << 52)
            | (1 << 16)
            | (0xf << 17)
            | UXN
            | PXN
            | (0xf << 55)
            | 0x701;
        pt.set_entry(&mut ram, Kva(va), 1, raw);
        let m = mapped(&ram, &arm(&pt), va + 0x1_0008);
        assert_eq!(
            (m.pa, m.page_shift, m.raw),
            (Pa(RAM_BASE + 0x0041_0008), 21, raw)
        );
        // 16K pages: bits 13:12 are not address bits.
        let (mut ram, pt) = setup(14, 17);
        let va = 0xffff_8000_0000_4000u64;
        pt.set_entry(&mut ram, Kva(va), 0, (RAM_BASE + 0x8000) | 0x3000 | 0x703);
        assert_eq!(mapped(&ram, &arm(&pt), va + 0x10).pa, Pa(RAM_BASE + 0x8010));
    }

    #[test]
    fn blocks_at_illegal_levels_are_bad() {
        // (granule, T1SZ, our level, block size)
        for (g, t1sz, level) in [(12, 16, 3u32), (14, 16, 2), (14, 16, 3), (16, 16, 2)] {
            let (mut ram, pt) = setup(g, t1sz);
            let va = 0xffff_0000_0000_0000u64;
            let raw = RAM_BASE | ACCESS_FLAG | 0b01;
            pt.set_entry(&mut ram, Kva(va), level, raw);
            let err = translate(&ram.as_ram(), &arm(&pt), Kva(va)).unwrap_err();
            assert_eq!(
                err,
                Error::BadPte {
                    va: Kva(va),
                    level: level as u8,
                    raw
                },
                "granule {g} level {level}"
            );
        }
    }

    #[test]
    fn block_encoding_at_the_last_level_is_reserved() {
        for g in [12, 14, 16] {
            let (mut ram, pt) = setup(g, 16);
            let va = 0xffff_8000_0000_0000u64 | (5 << g);
            let raw = (RAM_BASE + 0x10_0000) | ACCESS_FLAG | 0b01;
            pt.set_entry(&mut ram, Kva(va), 0, raw);
            let err = translate(&ram.as_ram(), &arm(&pt), Kva(va)).unwrap_err();
            assert_eq!(
                err,
                Error::BadPte {
                    va: Kva(va),
                    level: 0,
                    raw
                }
            );
        }
    }

    #[test]
    fn lower_half_and_out_of_range_addresses_are_refused() {
        let (ram, pt) = setup(12, 25); // 39-bit
        let p = arm(&pt);
        assert_eq!(p.first_address(), Kva(0xffff_ff80_0000_0000));
        for va in [
            0u64,
            0x0000_ffff_ffff_f000,
            0xffff_0000_0000_0000,
            0xffff_ff7f_ffff_ffff,
            0x7fff_ff80_0000_0000,
        ] {
            assert_eq!(
                translate(&ram.as_ram(), &p, Kva(va)),
                Err(Error::NotKernelAddress { va: Kva(va) })
            );
        }
        assert_eq!(
            translate(&ram.as_ram(), &p, Kva(0xffff_ff80_0000_0000)),
            Ok(Translation::NotPresent { level: 2 })
        );
    }

    #[test]
    fn top_byte_ignored_with_tbi1() {
        let (mut ram, pt) = setup(12, 16);
        let va = 0xffff_8000_0012_3000u64;
        pt.map(&mut ram, Kva(va), Pa(RAM_BASE + 0x9000), 12);
        let tagged = (va & !TOP_BYTE) | (0xf3 << 56);
        assert_eq!(
            translate(&ram.as_ram(), &arm(&pt), Kva(tagged)),
            Err(Error::NotKernelAddress { va: Kva(tagged) })
        );
        let p = Aarch64Paging::new(pt.ttbr1(), pt.tcr() | TCR_TBI1).unwrap();
        assert_eq!(mapped(&ram, &p, tagged + 1).pa, Pa(RAM_BASE + 0x9001));
    }

    #[test]
    fn not_present_at_each_level() {
        for (g, t1sz) in [(12, 16), (14, 17), (16, 22)] {
            let (mut ram, pt) = setup(g, t1sz);
            let va = !low_mask(g) & !(1 << 33);
            pt.map(&mut ram, Kva(va), Pa(RAM_BASE + (3 << g)), g);
            let p = arm(&pt);
            for level in 0..p.levels() {
                let at = pt.entry_addr(&ram, Kva(va), level);
                let old = ram.read_u64(at);
                ram.write_u64(at, old & !VALID);
                let t = translate(&ram.as_ram(), &p, Kva(va)).unwrap();
                assert_eq!(
                    t,
                    Translation::NotPresent { level: level as u8 },
                    "granule {g}"
                );
            }
        }
    }

    #[test]
    fn table_outside_ram_is_a_read_error() {
        let (mut ram, pt) = setup(12, 16);
        let va = 0xffff_8000_0000_0000u64;
        pt.map(&mut ram, Kva(va), Pa(RAM_BASE), 12);
        // The level-1 entry (ARM level 2) points below RAM.
        pt.set_entry(&mut ram, Kva(va), 1, 0x1000_0000 | 0b11);
        let err = translate(&ram.as_ram(), &arm(&pt), Kva(va)).unwrap_err();
        assert_eq!(
            err,
            Error::Phys {
                access: Access::Read,
                pa: Pa(0x1000_0000),
                len: 8,
                kind: PhysErrorKind::Unmapped
            }
        );
    }

    #[test]
    fn a_cycle_back_to_the_root_terminates() {
        let (mut ram, pt) = setup(12, 25);
        let p = arm(&pt);
        let root = p.root().0;
        let va = 0xffff_ffc0_4020_1000u64; // indices 257, 1, 1
        assert_eq!(pt.entry_addr(&ram, Kva(va), 2), Pa(root + 257 * 8));
        // Both entries the walk reads point back at the root.
        ram.write_u64(Pa(root + 257 * 8), root | 0x403);
        ram.write_u64(Pa(root + 8), root | 0x403);
        // Three reads of the root, ending on a page: the root page itself.
        let m = mapped(&ram, &p, va + 0x20);
        assert_eq!(
            (m.pa, m.page_shift, m.raw),
            (Pa(root + 0x20), 12, root | 0x403)
        );
        // As a block descriptor, the same slot ends the walk one level earlier.
        ram.write_u64(Pa(root + 8), root | 0x401);
        let m = mapped(&ram, &p, va + 0x20);
        assert_eq!(
            (m.pa, m.page_shift),
            (Pa((root & !0x1f_ffff) + (va & 0x1f_ffff) + 0x20), 21)
        );
    }

    #[test]
    fn sixty_four_k_with_52_bit_output_addresses() {
        // FEAT_LPA: RAM above 256 TiB, with PA[51:48] in bits 15:12 of the descriptors
        // and bits 5:2 of TTBR1. 64K granule, 42-bit VA: two levels.
        let base = 0x000a_0000_4000_0000u64;
        let mut ram = SynthRam::new(Pa(base), 0x40000);
        let root = base;
        let last = base + 0x10000;
        let page = base + 0x20000;
        let encode = |pa: u64| (pa & 0x0000_ffff_ffff_0000) | ((pa >> 48) << 12);
        let va = 0xffff_fc00_1234_5678u64;
        let i1 = (va >> 29) & 0x1fff;
        let i0 = (va >> 16) & 0x1fff;
        ram.write_u64(Pa(root + i1 * 8), encode(last) | 0b11);
        ram.write_u64(Pa(last + i0 * 8), encode(page) | ACCESS_FLAG | 0b11);
        let ttbr1 = (root & 0x0000_ffff_ffff_ffc0) | ((root >> 48) << 2) | (9 << 48);
        let tcr =
            (22 << TCR_T1SZ_SHIFT) | (TG1_64K << TCR_TG1_SHIFT) | (IPS_52_BITS << TCR_IPS_SHIFT);
        let p = Aarch64Paging::new(ttbr1, tcr).unwrap();
        assert!(p.lpa());
        assert_eq!(p.root(), Pa(root));
        let m = mapped(&ram, &p, va);
        assert_eq!((m.pa, m.page_shift), (Pa(page + 0x5678), 16));
        // A 512 MiB block at level 1 under FEAT_LPA.
        let va = 0xffff_fc00_2000_0000u64 + 0x10;
        let i1 = (va >> 29) & 0x1fff;
        ram.write_u64(
            Pa(root + i1 * 8),
            encode(0x000f_0000_0000_0000) | ACCESS_FLAG | 0b01,
        );
        assert_eq!(mapped(&ram, &p, va).pa, Pa(0x000f_0000_0000_0010));
        // The same state without 52-bit IPS reads bits 15:12 as nothing.
        let p48 = Aarch64Paging::new(ttbr1, tcr & !(0b111 << TCR_IPS_SHIFT)).unwrap();
        assert!(!p48.lpa());
        assert!(matches!(
            translate(&ram.as_ram(), &p48, Kva(va)),
            Err(Error::Phys { .. })
        ));
    }

    #[test]
    fn sixty_four_k_level_1_blocks_need_lpa() {
        // 64K, 52-bit VA (3 levels): ARM level 1 is our level 2.
        let mut ram = SynthRam::new(Pa(RAM_BASE), 0x10000);
        let root = RAM_BASE;
        let va = 0xfff0_0400_0000_1234u64;
        let i2 = (va >> 42) & 0x3ff;
        let raw = ACCESS_FLAG | 0b01; // a 4 TiB block at PA 0
        ram.write_u64(Pa(root + i2 * 8), raw);
        let tcr = (12 << TCR_T1SZ_SHIFT) | (TG1_64K << TCR_TG1_SHIFT);
        let p = Aarch64Paging::new(root, tcr).unwrap();
        assert_eq!(p.levels(), 3);
        assert_eq!(
            translate(&ram.as_ram(), &p, Kva(va)),
            Err(Error::BadPte {
                va: Kva(va),
                level: 2,
                raw
            })
        );
        let p = Aarch64Paging::new(root, tcr | (IPS_52_BITS << TCR_IPS_SHIFT)).unwrap();
        let m = mapped(&ram, &p, va);
        assert_eq!((m.pa, m.page_shift), (Pa(0x1234), 42));
    }
}
