//! x86_64 4-level and 5-level paging.
//!
//! Levels are numbered from the leaf up: the page table (PTE) is level 0, the page
//! directory (PMD) 1, the PDPT (PUD) 2, the PML4 3 and, with LA57, the PML5 4. The root
//! is therefore level 3 with 4-level paging and level 4 with 5-level paging; this is the
//! `level` of [`Translation::NotPresent`] and of [`Error::BadPte`].
//!
//! Leaves: a 4 KiB page at level 0, a 2 MiB page at level 1 and a 1 GiB page at level 2
//! (PS set). PS at level 3 or 4 is reserved and gives [`Error::BadPte`]. The PAT bit of a
//! large leaf (bit 12) is not part of its frame. Bits the walker does not interpret (NX,
//! protection keys, software bits, dirty/accessed) are ignored.

use crate::addr::{low_mask, Kva, Pa};
use crate::arch::{Mapping, Translation};
use crate::error::{Error, Result};
use crate::limits::MAX_PT_LEVELS;
use crate::mem::{PhysRead, PhysReadExt};

/// Entry bit 0: the entry is present.
pub const PRESENT: u64 = 1 << 0;
/// Entry bit 1: writable.
pub const WRITABLE: u64 = 1 << 1;
/// Entry bit 5: accessed.
pub const ACCESSED: u64 = 1 << 5;
/// Entry bit 6: dirty.
pub const DIRTY: u64 = 1 << 6;
/// Entry bit 7 at levels 1 and 2: the entry is a 2 MiB or 1 GiB leaf (PS). At level 0
/// the same bit is PAT.
pub const PAGE_SIZE: u64 = 1 << 7;
/// Entry bit 8: global.
pub const GLOBAL: u64 = 1 << 8;
/// Entry bit 12 of a 2 MiB or 1 GiB leaf: PAT (not an address bit).
pub const LARGE_PAT: u64 = 1 << 12;
/// Entry bit 63: no-execute.
pub const NO_EXECUTE: u64 = 1 << 63;
/// The physical-address bits of an entry (51:12).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// log2 of the base page size.
pub const PAGE_SHIFT: u32 = 12;
/// Virtual-address bits consumed per level.
pub const BITS_PER_LEVEL: u32 = 9;
/// The mask of one level's index.
const INDEX_MASK: u64 = 0x1ff;
/// The lowest level whose PS bit is reserved (the PML4; the PML5 above it too).
const FIRST_RESERVED_PS_LEVEL: u32 = 3;

/// The CR3 bits that hold the kernel half's top-level table: bits 51:13. Bits 11:0 are
/// the PCID (or PWT/PCD) and bit 12 selects the user half under PTI.
const CR3_KERNEL_ROOT_MASK: u64 = 0x000f_ffff_ffff_e000;

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
        Self {
            root: Pa(cr3 & CR3_KERNEL_ROOT_MASK),
            five_level,
        }
    }

    /// The top-level table.
    pub const fn root(&self) -> Pa {
        self.root
    }

    /// Whether 5-level paging (LA57) is on.
    pub const fn five_level(&self) -> bool {
        self.five_level
    }

    /// The number of levels: 4, or 5 with LA57.
    pub const fn levels(&self) -> u32 {
        if self.five_level {
            5
        } else {
            4
        }
    }

    /// The number of virtual-address bits: 48, or 57 with LA57.
    pub const fn va_bits(&self) -> u32 {
        if self.five_level {
            57
        } else {
            48
        }
    }
}

/// Translates `va` through x86_64 page tables.
///
/// Each level costs one 8-byte read of `mem`. Any canonical address is translated, the
/// lower half included.
///
/// # Errors
/// - [`Error::NotKernelAddress`] when `va` is not canonical (bits above 47, or 56 with
///   5-level paging, are not copies of bit 47 / 56);
/// - [`Error::BadPte`] for a PS bit at the PML4 or PML5 level;
/// - [`Error::Phys`] when a table cannot be read.
///
/// # Example
/// A 4-level walk over tables laid out by hand: PML4 (8 KiB aligned, as CR3 bit 12 is
/// the PTI bit), PDPT, PD and PT in consecutive pages, mapping `0xffff_c900_0000_3000`
/// to the page at `0x6000`.
/// ```
/// use mapwalk_core::arch::x86_64::{translate, X86Paging};
/// use mapwalk_core::{Kva, Pa, Ram, Translation};
///
/// let va = 0xffff_c900_0000_3000u64;
/// let mut bytes = vec![0u8; 0x7000];
/// let mut set = |table: u64, index: u64, entry: u64| {
///     let at = (table + index * 8) as usize;
///     bytes[at..at + 8].copy_from_slice(&entry.to_le_bytes());
/// };
/// let index = |shift: u32| (va >> shift) & 0x1ff;
/// set(0x2000, index(39), 0x3000 | 0x63); // PML4 -> PDPT
/// set(0x3000, index(30), 0x4000 | 0x63); // PDPT -> PD
/// set(0x4000, index(21), 0x5000 | 0x63); // PD -> PT
/// set(0x5000, index(12), 0x6000 | 0x163); // PT -> page (global)
/// let ram = Ram::new(Pa(0), bytes);
///
/// // CR3 with PCID 5: the low bits are ignored.
/// let paging = X86Paging::new(0x2005, false);
/// let Translation::Mapped(m) = translate(&ram, &paging, Kva(va + 0x123)).unwrap() else {
///     panic!("not mapped")
/// };
/// assert_eq!((m.pa, m.page_shift, m.raw), (Pa(0x6123), 12, 0x6163));
///
/// // Another page of the same PT is absent: level 0 says so.
/// let t = translate(&ram, &paging, Kva(va + 0x1000)).unwrap();
/// assert_eq!(t, Translation::NotPresent { level: 0 });
/// ```
#[inline]
pub fn translate<M: PhysRead + ?Sized>(mem: &M, p: &X86Paging, va: Kva) -> Result<Translation> {
    if p.five_level {
        walk::<M, 5>(mem, p.root, va)
    } else {
        walk::<M, 4>(mem, p.root, va)
    }
}

/// Whether `va` is canonical for `va_bits` bits of virtual address: bits 63 down to
/// `va_bits - 1` all equal.
#[inline(always)]
const fn is_canonical(va: u64, va_bits: u32) -> bool {
    let high = va.wrapping_shr(va_bits.wrapping_sub(1));
    high == 0 || high == low_mask(65u32.wrapping_sub(va_bits))
}

/// Converts a level (at most [`MAX_PT_LEVELS`]) for an error or outcome.
#[inline(always)]
fn level_u8(level: u32) -> u8 {
    u8::try_from(level).unwrap_or(u8::MAX)
}

/// The walk, monomorphised per level count so that the loop unrolls.
#[inline(always)]
fn walk<M: PhysRead + ?Sized, const LEVELS: u32>(
    mem: &M,
    root: Pa,
    va: Kva,
) -> Result<Translation> {
    let va_bits = PAGE_SHIFT.wrapping_add(BITS_PER_LEVEL.wrapping_mul(LEVELS));
    if !is_canonical(va.0, va_bits) {
        return Err(Error::NotKernelAddress { va });
    }
    let mut table = root.0;
    // The cap: one iteration per level, root level first. Every path through the body
    // either descends one level or returns, and level 0 always returns.
    let levels = if LEVELS < MAX_PT_LEVELS {
        LEVELS
    } else {
        MAX_PT_LEVELS
    };
    for level in (0..levels).rev() {
        let shift = PAGE_SHIFT.wrapping_add(level.wrapping_mul(BITS_PER_LEVEL));
        let index = va.0.wrapping_shr(shift) & INDEX_MASK;
        // `table` has its low 12 bits clear, so the OR is the sum.
        let raw = mem.read_u64(Pa(table | index.wrapping_mul(8)))?;
        if raw & PRESENT == 0 {
            return Ok(Translation::NotPresent {
                level: level_u8(level),
            });
        }
        if level == 0 || raw & PAGE_SIZE != 0 {
            if level >= FIRST_RESERVED_PS_LEVEL {
                return Err(Error::BadPte {
                    va,
                    level: level_u8(level),
                    raw,
                });
            }
            // Frame bits 51:shift; for a large leaf this drops PAT (bit 12) and the
            // reserved bits below the frame.
            let frame = raw & ADDR_MASK & !low_mask(shift);
            return Ok(Translation::Mapped(Mapping {
                pa: Pa(frame | va.page_offset(shift)),
                page_shift: shift,
                raw,
            }));
        }
        table = raw & ADDR_MASK;
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
    use crate::synth::{SynthRam, X86PageTables};

    const KVA: u64 = 0xffff_c900_1234_5000;

    fn setup(five_level: bool) -> (SynthRam, X86PageTables) {
        let mut ram = SynthRam::new(Pa(0), 16 << 20);
        let pt = X86PageTables::new(&mut ram, five_level);
        (ram, pt)
    }

    fn x86(pt: &X86PageTables) -> X86Paging {
        match pt.paging() {
            Paging::X86_64(p) => p,
            Paging::Aarch64(_) => unreachable!(),
        }
    }

    fn mapped(ram: &SynthRam, p: &X86Paging, va: u64) -> Mapping {
        match translate(&ram.as_ram(), p, Kva(va)).unwrap() {
            Translation::Mapped(m) => m,
            t => panic!("{va:#x}: {t:?}"),
        }
    }

    #[test]
    fn every_leaf_size_in_both_modes() {
        for five in [false, true] {
            let (mut ram, pt) = setup(five);
            let va4k = if five { 0xff11_2233_4455_6000 } else { KVA };
            let va2m = 0xffff_ea00_0040_0000;
            let va1g = 0xffff_ffff_c000_0000;
            pt.map(&mut ram, Kva(va4k), Pa(0x0077_7000), 12);
            pt.map(&mut ram, Kva(va2m), Pa(0x0060_0000), 21);
            pt.map(&mut ram, Kva(va1g), Pa(0x4000_0000), 30);
            let p = x86(&pt);
            assert_eq!(p.levels(), if five { 5 } else { 4 });

            let m = mapped(&ram, &p, va4k + 0xabc);
            assert_eq!((m.pa, m.page_shift), (Pa(0x0077_7abc), 12));
            assert_eq!(m.raw & ADDR_MASK, 0x0077_7000);
            assert_eq!(m.bytes_to_page_end(), 0x1000 - 0xabc);

            let m = mapped(&ram, &p, va2m + 0x1_2345);
            assert_eq!((m.pa, m.page_shift), (Pa(0x0061_2345), 21));
            assert_ne!(m.raw & PAGE_SIZE, 0);

            let m = mapped(&ram, &p, va1g + 0x3fff_fff8);
            assert_eq!((m.pa, m.page_shift), (Pa(0x7fff_fff8), 30));
        }
    }

    #[test]
    fn map_range_and_user_half() {
        let (mut ram, pt) = setup(false);
        pt.map_range(&mut ram, Kva(KVA), Pa(0x10_0000), 0x3000, 12);
        // The canonical lower half is translated too.
        pt.map(&mut ram, Kva(0x0000_7fff_ffff_f000), Pa(0x20_0000), 12);
        let p = x86(&pt);
        for i in 0..3u64 {
            assert_eq!(
                mapped(&ram, &p, KVA + i * 0x1000 + 8).pa,
                Pa(0x10_0008 + i * 0x1000)
            );
        }
        assert_eq!(mapped(&ram, &p, 0x0000_7fff_ffff_ffff).pa, Pa(0x20_0fff));
    }

    #[test]
    fn pat_bit_of_large_leaves_is_not_address() {
        let (mut ram, pt) = setup(false);
        let va2m = 0xffff_ea00_0040_0000;
        let va1g = 0xffff_ffff_c000_0000;
        pt.set_entry(
            &mut ram,
            Kva(va2m),
            1,
            0x0060_0000 | LARGE_PAT | PAGE_SIZE | PRESENT | NO_EXECUTE,
        );
        // A 1 GiB frame: bits 29:13 are reserved and must not leak into the address.
        pt.set_entry(
            &mut ram,
            Kva(va1g),
            2,
            0x8000_0000 | 0x1f_e000 | LARGE_PAT | PAGE_SIZE | PRESENT,
        );
        let p = x86(&pt);
        let m = mapped(&ram, &p, va2m + 0x10);
        assert_eq!((m.pa, m.page_shift), (Pa(0x0060_0010), 21));
        assert_eq!(
            m.raw,
            0x0060_0000 | LARGE_PAT | PAGE_SIZE | PRESENT | NO_EXECUTE
        );
        let m = mapped(&ram, &p, va1g + 0x10);
        assert_eq!((m.pa, m.page_shift), (Pa(0x8000_0010), 30));
        // At level 0 bit 12 is an address bit and bit 7 is PAT, not PS.
        pt.set_entry(&mut ram, Kva(KVA), 0, 0x0012_3000 | PAGE_SIZE | PRESENT);
        let m = mapped(&ram, &p, KVA + 1);
        assert_eq!((m.pa, m.page_shift), (Pa(0x0012_3001), 12));
    }

    #[test]
    fn cr3_pcid_and_pti_bits_are_ignored() {
        let (mut ram, pt) = setup(false);
        pt.map(&mut ram, Kva(KVA), Pa(0x0077_7000), 12);
        let cr3 = pt.cr3();
        assert_eq!(cr3 & 0x1fff, 0);
        for noisy in [cr3 | 0xfff, cr3 | 0x1000, cr3 | 0x1abc] {
            let p = X86Paging::new(noisy, false);
            assert_eq!(p.root(), Pa(cr3));
            assert_eq!(mapped(&ram, &p, KVA).pa, Pa(0x0077_7000));
        }
    }

    #[test]
    fn huge_bit_at_pml4_and_pml5_is_reserved() {
        for (five, level) in [(false, 3u8), (true, 4), (true, 3)] {
            let (mut ram, pt) = setup(five);
            let raw = 0x4000_0000 | PAGE_SIZE | PRESENT;
            pt.set_entry(&mut ram, Kva(KVA), u32::from(level), raw);
            let err = translate(&ram.as_ram(), &x86(&pt), Kva(KVA)).unwrap_err();
            assert_eq!(
                err,
                Error::BadPte {
                    va: Kva(KVA),
                    level,
                    raw
                }
            );
        }
    }

    #[test]
    fn non_canonical_addresses_are_refused() {
        let (ram, pt) = setup(false);
        let p4 = x86(&pt);
        let p5 = X86Paging::new(pt.cr3(), true);
        for va in [
            0x0000_8000_0000_0000u64,
            0xffff_7fff_ffff_ffff,
            0x8000_0000_0000_0000,
            0x0100_0000_0000_0000,
        ] {
            assert_eq!(
                translate(&ram.as_ram(), &p4, Kva(va)),
                Err(Error::NotKernelAddress { va: Kva(va) })
            );
        }
        // Canonical under 5-level paging, not under 4-level.
        let va = 0xff11_0000_0000_0000;
        assert_eq!(
            translate(&ram.as_ram(), &p4, Kva(va)),
            Err(Error::NotKernelAddress { va: Kva(va) })
        );
        assert_eq!(
            translate(&ram.as_ram(), &p5, Kva(va)),
            Ok(Translation::NotPresent { level: 4 })
        );
        for va in [0x0100_0000_0000_0000u64, 0xfeff_ffff_ffff_ffff] {
            assert_eq!(
                translate(&ram.as_ram(), &p5, Kva(va)),
                Err(Error::NotKernelAddress { va: Kva(va) })
            );
        }
    }

    #[test]
    fn not_present_at_each_level() {
        for five in [false, true] {
            let (mut ram, pt) = setup(five);
            pt.map(&mut ram, Kva(KVA), Pa(0x0077_7000), 12);
            let p = x86(&pt);
            let top = p.levels() - 1;
            // Clear the entries from the leaf upwards: each time the walk stops one level
            // higher.
            for level in 0..=top {
                let at = pt.entry_addr(&ram, Kva(KVA), level);
                // Keep the other bits: only PRESENT matters.
                let old = ram.read_u64(at);
                ram.write_u64(at, old & !PRESENT);
                let t = translate(&ram.as_ram(), &p, Kva(KVA)).unwrap();
                assert_eq!(t, Translation::NotPresent { level: level as u8 });
                assert_eq!(
                    t.mapped(Kva(KVA)),
                    Err(Error::NotMapped {
                        va: Kva(KVA),
                        level: level as u8
                    })
                );
            }
        }
    }

    #[test]
    fn table_outside_ram_is_a_read_error() {
        let (mut ram, pt) = setup(false);
        pt.map(&mut ram, Kva(KVA), Pa(0x0077_7000), 12);
        let at = pt.entry_addr(&ram, Kva(KVA), 2);
        ram.write_u64(at, 0x0008_0000_0000_0000 | 0x63);
        let err = translate(&ram.as_ram(), &x86(&pt), Kva(KVA)).unwrap_err();
        let index = (KVA >> 21) & 0x1ff;
        assert_eq!(
            err,
            Error::Phys {
                access: Access::Read,
                pa: Pa(0x0008_0000_0000_0000 + index * 8),
                len: 8,
                kind: PhysErrorKind::Unmapped,
            }
        );
        // A root outside RAM fails on the first read.
        let p = X86Paging::new(0x000f_ffff_ffff_e000, false);
        assert!(matches!(
            translate(&ram.as_ram(), &p, Kva(KVA)),
            Err(Error::Phys { .. })
        ));
    }

    #[test]
    fn a_cycle_back_to_the_root_terminates() {
        for five in [false, true] {
            let (mut ram, pt) = setup(five);
            let p = x86(&pt);
            let root = pt.cr3();
            // Every level's entry for KVA is the root itself (a recursive mapping).
            pt.set_entry(&mut ram, Kva(KVA), p.levels() - 1, root | 0x63);
            // The walk reads the root once per level and ends on a 4 KiB leaf: the root
            // page. The walk always ends after `levels` reads.
            let idx_top = (KVA >> (12 + 9 * (p.levels() - 1))) & 0x1ff;
            for level in 0..p.levels() - 1 {
                let idx = (KVA >> (12 + 9 * level)) & 0x1ff;
                if idx != idx_top {
                    ram.write_u64(Pa(root + idx * 8), root | 0x63);
                }
            }
            let m = mapped(&ram, &p, KVA + 0x18);
            assert_eq!(
                (m.pa, m.page_shift, m.raw),
                (Pa(root + 0x18), 12, root | 0x63)
            );
            // With PS on the self-entry, the top level reports a reserved entry rather
            // than looping.
            ram.write_u64(Pa(root + idx_top * 8), root | 0xe3);
            let err = translate(&ram.as_ram(), &p, Kva(KVA)).unwrap_err();
            assert_eq!(
                err,
                Error::BadPte {
                    va: Kva(KVA),
                    level: (p.levels() - 1) as u8,
                    raw: root | 0xe3
                }
            );
        }
    }

    #[test]
    fn five_level_tables_use_the_pml5_index() {
        let (mut ram, pt) = setup(true);
        let a = 0xff11_0000_0000_0000u64;
        let b = 0xff12_0000_0000_0000u64; // differs only in the PML5 index
        pt.map(&mut ram, Kva(a), Pa(0x0010_0000), 12);
        pt.map(&mut ram, Kva(b), Pa(0x0020_0000), 12);
        let p = x86(&pt);
        assert_eq!(mapped(&ram, &p, a).pa, Pa(0x0010_0000));
        assert_eq!(mapped(&ram, &p, b).pa, Pa(0x0020_0000));
        // The same tables read as 4-level give nothing sensible for `a`: non-canonical.
        assert!(translate(&ram.as_ram(), &X86Paging::new(pt.cr3(), false), Kva(a)).is_err());
    }
}
