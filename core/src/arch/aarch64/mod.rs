//! aarch64 stage-1 translation of the kernel (TTBR1) half.
//!
//! # Geometry
//! TCR_EL1 gives the granule (TG1: 4, 16 or 64 KiB) and the size of the upper
//! half (T1SZ: `64 - T1SZ` bits of virtual address). Each level resolves
//! `granule_shift - 3` bits; the number of levels is what the address needs, so the walk
//! starts at ARM level `4 - levels` (for example level 1 for a 4 KiB granule with 39-bit
//! addresses, level 2 for 64 KiB with 42 bits, level -1 for 4 KiB with 52 bits under
//! LPA2).
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
//! - TCR_EL1.DS = 1 with 4 and 16 KiB granules (FEAT_LPA2): T1SZ may go down to 12
//!   (52-bit virtual addresses). A 4 KiB granule then needs a fifth level, ARM level -1
//!   (our level 4), resolving VA\[51:48\] with 16 entries; a 16 KiB granule keeps four
//!   levels with a 32-entry root. Descriptors carry OA\[49:granule\] in place and
//!   OA\[51:50\] in bits 9:8 (where the shareability field was: under DS it comes from
//!   TCR_EL1); bits 51:50 of a descriptor are attributes (DBM, GP), not address. TTBR1
//!   carries PA\[51:48\] in bits 5:2 as under FEAT_LPA. Blocks become legal one level
//!   higher: ARM level 0 (512 GiB) with 4 KiB granules, ARM level 1 (64 GiB) with
//!   16 KiB. Without DS the same granules keep the 48-bit rules: T1SZ below 16 is
//!   refused, bits 9:8 are attributes and ARM level 0 holds no block.
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
/// Bits 49:0: the address bits of an LPA2 descriptor (OA\[51:50\] is elsewhere).
const OA_MASK_LPA2: u64 = 0x0003_ffff_ffff_ffff;
/// Bits 9:8 of an LPA2 descriptor: OA\[51:50\].
const LPA2_DESC_HIGH: u64 = 0b11 << 8;
/// Where OA\[51:50\] sits relative to descriptor bits 9:8.
const LPA2_DESC_HIGH_SHIFT: u32 = 42;
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
    /// 4 or 16 KiB granule with TCR_EL1.DS = 1 (FEAT_LPA2).
    lpa2: bool,
    /// Bits of a virtual address that do not take part in translation (TBI1).
    ignored: u64,
}

impl Aarch64Paging {
    /// Paging state from TTBR1_EL1 and TCR_EL1.
    ///
    /// T1SZ must be 16..=48 with 4 and 16 KiB granules (12..=48 with TCR_EL1.DS = 1,
    /// FEAT_LPA2) and 12..=47 with 64 KiB (the architecture's range, FEAT_LVA and
    /// FEAT_TTST included).
    ///
    /// # Errors
    /// [`Error::BadPaging`] for a reserved granule (TG1 = 0b00) or a T1SZ outside the
    /// range.
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
        let lpa2 = tcr & TCR_DS != 0 && granule_shift != 16;
        let t1sz = tcr.wrapping_shr(TCR_T1SZ_SHIFT) & 0x3f;
        let (min_t1sz, max_t1sz) = if granule_shift == 16 {
            (12, 47)
        } else if lpa2 {
            (12, 48)
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
        let wide = lpa || lpa2;
        let base = if wide {
            (ttbr1 & OA_MASK_48 & !low_mask(6))
                | (ttbr1 & LPA_TTBR_HIGH).wrapping_shl(LPA_TTBR_HIGH_SHIFT)
        } else {
            ttbr1 & OA_MASK_48
        };
        // The root table is aligned to its size (at least 8 bytes, 64 with FEAT_LPA):
        // the bits below are RES0, and dropping them also drops CnP (bit 0).
        let align = root_bits.saturating_add(3).max(if wide { 6 } else { 3 });
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
            lpa2,
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

    /// The ARM number of the first level walked (`4 - levels`: -1 for a five-level LPA2
    /// walk); our number of the same level is `levels - 1`.
    pub const fn start_level(&self) -> i32 {
        // `levels` is 1..=5.
        match self.levels {
            5 => -1,
            4 => 0,
            3 => 1,
            2 => 2,
            _ => 3,
        }
    }

    /// Whether output addresses have 52 bits (64 KiB granule, FEAT_LPA).
    pub const fn lpa(&self) -> bool {
        self.lpa
    }

    /// Whether TCR_EL1.DS = 1 with a 4 or 16 KiB granule (FEAT_LPA2): the LPA2
    /// descriptor format, 52-bit output addresses and T1SZ down to 12.
    pub const fn lpa2(&self) -> bool {
        self.lpa2
    }

    /// Whether output addresses may have 52 bits (FEAT_LPA or FEAT_LPA2).
    pub const fn pa_52_bits(&self) -> bool {
        self.lpa || self.lpa2
    }

    /// The lowest address of the upper half: `!0 << va_bits`.
    pub const fn first_address(&self) -> Kva {
        Kva(!low_mask(self.va_bits))
    }

    /// Whether a block descriptor is legal at our `level` (0 is the last level).
    #[inline(always)]
    const fn block_allowed(&self, level: u32) -> bool {
        match self.granule_shift {
            12 => level == 1 || level == 2 || (self.lpa2 && level == 3),
            14 => level == 1 || (self.lpa2 && level == 2),
            _ => level == 1 || (self.lpa && level == 2),
        }
    }

    /// The output address of a descriptor: bits 47:0 (bits 51:48 from 15:12 under
    /// FEAT_LPA; bits 49:0 and 51:50 from 9:8 under FEAT_LPA2), before the caller masks
    /// it to the table, page or block size.
    #[inline(always)]
    const fn output_address(&self, raw: u64) -> u64 {
        if self.lpa2 {
            return (raw & OA_MASK_LPA2 & !LPA2_DESC_HIGH)
                | (raw & LPA2_DESC_HIGH).wrapping_shl(LPA2_DESC_HIGH_SHIFT);
        }
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
/// - [`Error::BadPte`] for a block where the granule (and LPA2) allows none or a `0b01` descriptor
///   at the last level;
/// - [`Error::Phys`] when a table cannot be read.
#[inline]
pub fn translate<M: PhysRead + ?Sized>(mem: &M, p: &Aarch64Paging, va: Kva) -> Result<Translation> {
    // The usual geometries get a walk with a constant level count, which unrolls.
    match (p.granule_shift, p.levels) {
        (12, 5) => walk::<M, 12, 5>(mem, p, va),
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
mod tests;
#[cfg(test)]
mod tests_lpa2;
