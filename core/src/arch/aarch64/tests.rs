//! Unit tests of the 48-bit and FEAT_LPA walks.

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
    // 52-bit VAs with 4K and 16K granules need DS (LPA2); with DS, T1SZ 11 is still out.
    let t16k = TG1_16K << TCR_TG1_SHIFT;
    assert!(bad(t16k | (12 << 16)).contains("T1SZ"));
    assert!(bad(t4k | (11 << 16) | TCR_DS).contains("T1SZ"));
    assert!(bad(t16k | (11 << 16) | TCR_DS).contains("T1SZ"));
    // DS does nothing with 64K granules.
    let p = Aarch64Paging::new(0x4000_0000, t64k | (16 << 16) | TCR_DS).unwrap();
    assert!(!p.lpa2() && !p.pa_52_bits());
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
    let tcr = (22 << TCR_T1SZ_SHIFT) | (TG1_64K << TCR_TG1_SHIFT) | (IPS_52_BITS << TCR_IPS_SHIFT);
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
