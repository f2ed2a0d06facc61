//! Unit tests of LPA2 (TCR_EL1.DS = 1) walks, and of what a 48-bit configuration of the
//! same granules must still refuse.

use super::*;
use crate::arch::Paging;
use crate::synth::{Aarch64PageTables, SynthRam};

/// RAM with PA\[51:50\] = 0b11 and PA\[49:48\] = 0b00: only bits 9:8 of a descriptor can
/// carry the top of these addresses.
const HIGH_RAM: u64 = 0x000c_0000_4000_0000;
/// RAM on QEMU `virt`.
const RAM_BASE: u64 = 0x4000_0000;

fn lpa2(base: u64, granule: u32, t1sz: u32) -> (SynthRam, Aarch64PageTables) {
    let mut ram = SynthRam::new(Pa(base), 8 << 20);
    let pt = Aarch64PageTables::new_lpa2(&mut ram, granule, t1sz, 0x2a);
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

fn tcr(granule: u32, t1sz: u64) -> u64 {
    let tg1 = if granule == 12 { TG1_4K } else { TG1_16K };
    (t1sz << TCR_T1SZ_SHIFT) | (tg1 << TCR_TG1_SHIFT)
}

#[test]
fn geometry() {
    // (granule, T1SZ) -> (levels, ARM start level, root index bits), all with DS = 1.
    let cases = [
        (12, 12, 5, -1, 4), // 4K, 52-bit: level -1 resolves VA[51:48]
        (12, 16, 4, 0, 9),  // 4K, 48-bit with the LPA2 format
        (12, 25, 3, 1, 9),  // 4K, 39-bit
        (12, 13, 5, -1, 3), // 4K, 51-bit
        (14, 12, 4, 0, 5),  // 16K, 52-bit: still four levels, a 32-entry root
        (14, 16, 4, 0, 1),  // 16K, 48-bit
        (14, 17, 3, 1, 11), // 16K, 47-bit
    ];
    for (g, t1sz, levels, start, root_bits) in cases {
        let p = Aarch64Paging::new(RAM_BASE, tcr(g, t1sz) | TCR_DS).unwrap();
        assert!(p.lpa2() && p.pa_52_bits() && !p.lpa());
        assert_eq!(
            (p.va_bits(), p.levels(), p.start_level(), p.root_bits),
            (64 - t1sz as u32, levels, start, root_bits),
            "granule {g} T1SZ {t1sz}"
        );
    }
}

#[test]
fn four_k_52_bit_five_levels() {
    let (mut ram, pt) = lpa2(HIGH_RAM, 12, 12);
    let p = arm(&pt);
    assert_eq!((p.levels(), p.start_level()), (5, -1));
    assert_eq!(p.first_address(), Kva(0xfff0_0000_0000_0000));
    // TTBR1 carries PA[51:48] of the root in bits 5:2.
    assert_eq!(pt.ttbr1() & 0x3c, 0xc << 2);
    assert_eq!(p.root(), pt.root());
    // The lowest and the highest page of the half, a 2 MiB, a 1 GiB and a 512 GiB block.
    let cases = [
        (0xfff0_0000_0000_0000, HIGH_RAM + 0x3000, 12),
        (!low_mask(12), HIGH_RAM + 0x0001_0000, 12),
        (0xfff8_0000_0060_0000, HIGH_RAM + 0x0040_0000, 21),
        (
            0xfffc_0001_0000_0000,
            HIGH_RAM - 0x4000_0000 + 0x8000_0000,
            30,
        ),
        (0xfff4_0080_0000_0000, 0x000f_ff80_0000_0000, 39),
    ];
    for (va, pa, shift) in cases {
        pt.map(&mut ram, Kva(va), Pa(pa), shift);
        let off = (1u64 << shift) - 8;
        let m = mapped(&ram, &p, va + off);
        assert_eq!(
            (m.pa, m.page_shift),
            (Pa(pa + off), shift),
            "va {va:#x} shift {shift}"
        );
        // The descriptor holds PA[51:50] in bits 9:8, not in place.
        assert_eq!(m.raw >> 8 & 0b11, pa >> 50, "va {va:#x}");
        assert_eq!(m.raw & (0b11 << 50), 0, "va {va:#x}");
    }
    // Level -1 (our level 4) is read: clearing its entry makes the address absent there.
    let va = 0xfff0_0000_0000_0000u64;
    let at = pt.entry_addr(&ram, Kva(va), 4);
    assert_eq!(at, pt.root());
    ram.write_u64(at, 0);
    assert_eq!(
        translate(&ram.as_ram(), &p, Kva(va)),
        Ok(Translation::NotPresent { level: 4 })
    );
}

#[test]
fn sixteen_k_52_bit() {
    let (mut ram, pt) = lpa2(HIGH_RAM, 14, 12);
    let p = arm(&pt);
    assert_eq!((p.levels(), p.start_level()), (4, 0));
    // A page, a 32 MiB block and a 64 GiB block (ARM level 1, legal only under LPA2).
    let cases = [
        (0xfff0_0000_0000_4000, HIGH_RAM + 0xc000, 14),
        (0xfff7_0000_0200_0000, HIGH_RAM + 0x0200_0000, 25),
        (0xffff_f000_0000_0000, 0x000f_fff0_0000_0000, 36),
    ];
    for (va, pa, shift) in cases {
        pt.map(&mut ram, Kva(va), Pa(pa), shift);
        let off = (1u64 << shift) - 0x10;
        let m = mapped(&ram, &p, va + off);
        assert_eq!((m.pa, m.page_shift), (Pa(pa + off), shift), "va {va:#x}");
    }
}

#[test]
fn lpa2_descriptor_attribute_bits_are_not_address() {
    let (mut ram, pt) = lpa2(RAM_BASE, 12, 12);
    let va = 0xfff1_0000_0040_0000u64;
    // A 2 MiB block at 0x0002_0000_0040_0000 (PA[49:48] in place) with DBM (51), GP
    // (50), the contiguous hint (52), UXN/PXN, software bits, AF and nG (11).
    let pa = 0x0002_0000_0040_0000u64;
    let raw = pa | (1 << 51) | (1 << 50) | (1 << 52) | UXN | PXN | (0xf << 55) | 0xc01;
    pt.set_entry(&mut ram, Kva(va), 1, raw);
    let p = arm(&pt);
    // The block is outside the RAM: the walk ends in the mapping, with the right PA.
    let m = mapped(&ram, &p, va + 0x1_0008);
    assert_eq!((m.pa, m.page_shift, m.raw), (Pa(pa + 0x1_0008), 21, raw));
    // Bits 9:8 = 0b01: PA[50] set.
    pt.set_entry(&mut ram, Kva(va), 1, raw | (0b01 << 8));
    let m = mapped(&ram, &p, va);
    assert_eq!(m.pa, Pa(pa | 1 << 50));
}

#[test]
fn lpa2_blocks_at_illegal_levels_are_bad() {
    // (granule, our level): ARM level -1 with 4K, ARM level 0 with 16K.
    for (g, level) in [(12u32, 4u32), (14, 3)] {
        let (mut ram, pt) = lpa2(RAM_BASE, g, 12);
        let va = 0xfff8_0000_0000_0000u64;
        let raw = ACCESS_FLAG | 0b01;
        pt.set_entry(&mut ram, Kva(va), level, raw);
        assert_eq!(
            translate(&ram.as_ram(), &arm(&pt), Kva(va)),
            Err(Error::BadPte {
                va: Kva(va),
                level: level as u8,
                raw
            }),
            "granule {g}"
        );
    }
}

#[test]
fn tables_above_48_bits_are_followed() {
    // Every table of the walk lives at PA[51:50] = 0b11: a walk that dropped bits 9:8 of
    // a table descriptor would read below the RAM and fail.
    let (mut ram, pt) = lpa2(HIGH_RAM, 12, 12);
    let va = 0xfffa_bcde_f012_3000u64;
    pt.map(&mut ram, Kva(va), Pa(HIGH_RAM + 0x5000), 12);
    for level in 1..=4 {
        let at = pt.entry_addr(&ram, Kva(va), level);
        assert_eq!(at.0 >> 48, 0xc);
        let raw = ram.read_u64(at);
        assert_eq!((raw >> 8 & 0b11, raw >> 48), (0b11, 0), "level {level}");
    }
    assert_eq!(
        mapped(&ram, &arm(&pt), va + 0x7f8).pa,
        Pa(HIGH_RAM + 0x57f8)
    );
}

#[test]
fn forty_eight_bit_configuration_still_refuses() {
    // 4K granule, 48-bit VAs, no DS: the tables Linux builds without LPA2.
    let mut ram = SynthRam::new(Pa(RAM_BASE), 8 << 20);
    let pt = Aarch64PageTables::new(&mut ram, 12, 16, 0x2a);
    let p = arm(&pt);
    assert!(!p.lpa2() && !p.pa_52_bits());
    assert_eq!(p.levels(), 4);
    // 52-bit VAs are not in the half.
    for va in [0xfff0_0000_0000_0000u64, 0xfffe_ffff_ffff_f000] {
        assert_eq!(
            translate(&ram.as_ram(), &p, Kva(va)),
            Err(Error::NotKernelAddress { va: Kva(va) })
        );
    }
    // T1SZ below 16 needs DS.
    let t = pt.tcr() & !(0x3f << TCR_T1SZ_SHIFT);
    assert!(matches!(
        Aarch64Paging::new(pt.ttbr1(), t | (12 << TCR_T1SZ_SHIFT)),
        Err(Error::BadPaging { .. })
    ));
    // A block at ARM level 0 (our level 3) is legal only under LPA2.
    let va = 0xffff_0000_0000_0000u64;
    let raw = ACCESS_FLAG | 0b01;
    pt.set_entry(&mut ram, Kva(va), 3, raw);
    assert_eq!(
        translate(&ram.as_ram(), &p, Kva(va)),
        Err(Error::BadPte {
            va: Kva(va),
            level: 3,
            raw
        })
    );
    // Bits 9:8 are shareability and bits 49:48 nothing: a page descriptor with both set
    // still maps the 48-bit address.
    let va = 0xffff_8000_0012_3000u64;
    pt.map(&mut ram, Kva(va), Pa(RAM_BASE + 0x9000), 12);
    let at = pt.entry_addr(&ram, Kva(va), 0);
    let raw = (RAM_BASE + 0x9000) | (0b11 << 48) | INNER_SHAREABLE | ACCESS_FLAG | 0b11;
    ram.write_u64(at, raw);
    assert_eq!(mapped(&ram, &p, va + 4).pa, Pa(RAM_BASE + 0x9004));
    // The same tables read with DS set take bits 9:8 and 49:48 as address: the page moves
    // to PA[51:48] = 0xf.
    let ds = Aarch64Paging::new(pt.ttbr1(), pt.tcr() | TCR_DS).unwrap();
    assert!(ds.lpa2());
    assert_eq!(
        mapped(&ram, &ds, va + 4).pa,
        Pa(0x000f_0000_0000_0000 | (RAM_BASE + 0x9004))
    );
    // TTBR1 bits 5:2 are not address bits without DS (the root stays aligned).
    let p = Aarch64Paging::new(pt.ttbr1() | 0x3c, pt.tcr()).unwrap();
    assert_eq!(p.root(), pt.root());
    let ds = Aarch64Paging::new(pt.ttbr1() | 0x3c, pt.tcr() | TCR_DS).unwrap();
    assert_eq!(ds.root(), Pa(pt.root().0 | 0x000f_0000_0000_0000));
}
