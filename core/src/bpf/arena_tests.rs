//! Tests of the ARENA page walk over a kernel memory whose absent entries say at which
//! page-table level they are absent, as the kernel's page tables do.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::Cell;
use core::ops::ControlFlow;

use super::*;
use crate::layout::{ArenaLayout, KernelLayout};
use crate::limits::Limits;
use crate::mem::PhysRange;
use crate::Pa;

const MAP: u64 = 0xffff_8880_0100_0000;
const VM: u64 = 0xffff_8880_0100_1000;
/// `vm_struct.addr`: 1 GiB-aligned minus the half guard, so that the kernel range
/// proper starts on a 1 GiB boundary and spans exactly four 1 GiB entries.
const KBASE: u64 = 0xffff_c900_0000_0000;
const VM_ADDR: u64 = KBASE - ARENA_GUARD_SZ / 2;
const USER: u64 = 0x1_0000_0000;

const LAYOUT: ArenaLayout = ArenaLayout {
    user_vm_start: 0x100,
    user_vm_end: 0x108,
    kern_vm: 0x110,
    vm_addr: 0x8,
};

/// Kernel memory: two small structs, and the arena's present pages.
struct Fake {
    structs: BTreeMap<u64, u8>,
    pages: BTreeMap<u64, u8>,
    limits: Limits,
    probes: Cell<u64>,
}

impl Fake {
    fn new(user_start: u64, pages: u32, present: &[(u32, u8)]) -> Self {
        let mut structs = BTreeMap::new();
        let mut put = |at: u64, v: u64| {
            for (i, b) in v.to_le_bytes().iter().enumerate() {
                structs.insert(at + i as u64, *b);
            }
        };
        put(MAP + 0x100, user_start);
        put(
            MAP + 0x108,
            if user_start == 0 {
                0
            } else {
                user_start + u64::from(pages) * PAGE
            },
        );
        put(MAP + 0x110, VM);
        put(VM + 0x8, VM_ADDR);
        let pages = present
            .iter()
            .map(|&(i, fill)| {
                let u = user_start + u64::from(i) * PAGE;
                (KBASE + (u & 0xffff_ffff), fill)
            })
            .collect();
        Self {
            structs,
            pages,
            limits: Limits::DEFAULT,
            probes: Cell::new(0),
        }
    }

    /// The level of the first absent entry on the way to `va`: 2 when its 1 GiB has
    /// no page, 1 when its 2 MiB has none, else 0.
    fn absent_level(&self, va: u64) -> u8 {
        let any = |shift: u32| {
            let lo = va >> shift << shift;
            self.pages.range(lo..lo + (1 << shift)).next().is_some()
        };
        if !any(30) {
            2
        } else if !any(21) {
            1
        } else {
            0
        }
    }
}

impl KernelRead for Fake {
    fn kva_to_pa(&self, va: Kva) -> Result<PhysRange> {
        let page = va.0 & !(PAGE - 1);
        if self.structs.contains_key(&va.0) || self.pages.contains_key(&page) {
            return Ok(PhysRange {
                start: Pa(va.0 & 0xffff_ffff),
                len: 1,
            });
        }
        self.probes.set(self.probes.get() + 1);
        Err(Error::NotMapped {
            va,
            level: self.absent_level(va.0),
        })
    }

    fn read_kernel(&self, va: Kva, buf: &mut [u8]) -> Result<()> {
        for (i, b) in buf.iter_mut().enumerate() {
            let at = va.0 + i as u64;
            *b = match (self.structs.get(&at), self.pages.get(&(at & !(PAGE - 1)))) {
                (Some(v), _) => *v,
                (None, Some(fill)) => *fill,
                (None, None) => {
                    return Err(Error::NotMapped {
                        va: Kva(at),
                        level: 0,
                    })
                }
            };
        }
        Ok(())
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

fn map(pages: u32) -> MapInfo {
    MapInfo {
        id: 7,
        map_type: MapType::ARENA,
        max_entries: pages,
        kva: Kva(MAP),
        ..MapInfo::default()
    }
}

fn layout() -> KernelLayout {
    KernelLayout {
        arena: Some(LAYOUT),
        ..KernelLayout::default()
    }
}

fn walk(mem: &Fake, pages: u32) -> Result<Vec<(u64, u8)>> {
    let layout = layout();
    let bpf = Bpf::new(mem, &layout, Kva(0));
    let mut out = Vec::new();
    let mut page = [0u8; ARENA_PAGE_SIZE];
    let n = bpf.for_each_arena_page(&map(pages), &mut page, |u, p| {
        assert!(p.iter().all(|b| *b == p[0]), "one fill per page");
        out.push((u, p[0]));
        ControlFlow::Continue(())
    })?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

#[test]
fn yields_present_pages_at_their_user_addresses() {
    // A full 4 GiB arena: pages in the first and last 1 GiB, a zero page in between;
    // the second 1 GiB has no page at all (an absent upper-level table).
    let present = [
        (0, 0xa1),
        (1, 0xa2),
        (600, 0),
        (0xc_0005, 0xb3),
        (0xf_ffff, 0xb4),
    ];
    let mem = Fake::new(USER, ARENA_MAX_PAGES, &present);
    let got = walk(&mem, ARENA_MAX_PAGES).unwrap();
    let want: Vec<_> = present
        .iter()
        .map(|&(i, f)| (USER + u64::from(i) * PAGE, f))
        .collect();
    assert_eq!(got, want);
    // Absent ranges cost one translation per absent entry, not one per page: the
    // two absent 1 GiB entries once each; in each of the other two, 510 absent 2 MiB
    // entries, and the absent pages of the 2 MiB ranges that have pages (510 + 511
    // in the first, 511 + 511 in the last).
    assert_eq!(mem.probes.get(), 2 + (510 + 510 + 511) + (510 + 511 + 511));
}

#[test]
fn lower_32_bits_index_the_kernel_range() {
    // A user range crossing a 4 GiB boundary: its top pages wrap to the start of the
    // kernel range.
    let start = 0x1_ffff_e000;
    let mem = Fake::new(start, 4, &[(1, 0x11), (2, 0x22), (3, 0x33)]);
    assert!(
        mem.pages.contains_key(&KBASE),
        "page 2 at the range's start"
    );
    let got = walk(&mem, 4).unwrap();
    assert_eq!(
        got,
        [
            (start + PAGE, 0x11),
            (start + 2 * PAGE, 0x22),
            (start + 3 * PAGE, 0x33)
        ]
    );
}

#[test]
fn never_mapped_arena_is_keyed_by_offset() {
    let mem = Fake::new(0, 16, &[(3, 9)]);
    assert_eq!(walk(&mem, 16).unwrap(), [(3 * PAGE, 9)]);
}

#[test]
fn visit_cap_at_and_one_past() {
    // Eight pages, all present: eight translations.
    let present: Vec<_> = (0..8).map(|i| (i, i as u8 + 1)).collect();
    let mut mem = Fake::new(USER, 8, &present);
    mem.limits.arena_pages = 8;
    assert_eq!(walk(&mem, 8).unwrap().len(), 8);
    mem.limits.arena_pages = 7;
    let e = walk(&mem, 8).unwrap_err();
    assert_eq!(
        e,
        Error::LimitExceeded {
            what: "arena pages visited (Limits::arena_pages)",
            limit: 7,
            at: 8,
        }
    );
}

#[test]
fn byte_cap_at_and_one_past() {
    let present: Vec<_> = (0..4).map(|i| (i * 3, 1)).collect();
    let mut mem = Fake::new(USER, 16, &present);
    mem.limits.arena_bytes = 4 * PAGE;
    assert_eq!(walk(&mem, 16).unwrap().len(), 4);
    mem.limits.arena_bytes = 4 * PAGE - 1;
    let e = walk(&mem, 16).unwrap_err();
    assert_eq!(
        e,
        Error::LimitExceeded {
            what: "arena bytes handed over (Limits::arena_bytes)",
            limit: 4 * PAGE - 1,
            at: 4 * PAGE,
        }
    );
}

#[test]
fn missing_layout_and_corrupt_headers_are_errors() {
    let mem = Fake::new(USER, 4, &[(0, 1)]);
    let none = KernelLayout::default();
    let bpf = Bpf::new(&mem, &none, Kva(0));
    assert_eq!(
        bpf.arena(&map(4)).unwrap_err(),
        Error::LayoutMissing { what: "bpf_arena" }
    );
    let layout = layout();
    let bpf = Bpf::new(&mem, &layout, Kva(0));
    // user_vm_end says 4 pages; max_entries says 5.
    assert!(matches!(
        bpf.arena(&map(5)),
        Err(Error::Corrupt { value, .. }) if value == USER + 4 * PAGE
    ));
    assert!(matches!(
        bpf.arena(&map(ARENA_MAX_PAGES + 1)),
        Err(Error::Corrupt { value, .. }) if value == u64::from(ARENA_MAX_PAGES) + 1
    ));
    let a = bpf.arena(&map(4)).unwrap();
    assert_eq!((a.user_vm_start, a.kern_vm_start), (USER, Kva(KBASE)));
}

/// Over real x86_64 page tables (4- and 5-level) and a `KernelView`: the arena's pages
/// mapped in two 1 GiB ranges, the two between with no tables at all.
#[test]
fn real_page_tables_hand_exactly_the_mapped_pages() {
    use crate::kernel::{KernelAddrs, KernelView};
    use crate::synth::{SynthRam, X86PageTables};

    const DIRECT: u64 = 0xffff_8880_0000_0000;
    for five in [false, true] {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let pt = X86PageTables::new(&mut ram, five);
        let map_pa = ram.alloc(512, 64);
        let vm_pa = ram.alloc(64, 64);
        ram.write_u64(Pa(map_pa.0 + 0x100), USER);
        ram.write_u64(Pa(map_pa.0 + 0x108), USER + (4 << 30));
        ram.write_u64(Pa(map_pa.0 + 0x110), DIRECT + vm_pa.0);
        ram.write_u64(Pa(vm_pa.0 + 0x8), VM_ADDR);
        let present = [0u32, 513, 0xc_0000, 0xf_ffff];
        for (n, &p) in present.iter().enumerate() {
            let pa = ram.alloc_page(12);
            ram.write(pa, &[n as u8 + 1; ARENA_PAGE_SIZE]);
            pt.map(&mut ram, Kva(KBASE + u64::from(p) * PAGE), pa, 12);
        }
        let view = KernelView::new(
            ram.into_ram(),
            pt.paging(),
            KernelAddrs::x86_64(DIRECT, 1 << 20, 0),
        );
        let layout = layout();
        let bpf = Bpf::new(&view, &layout, Kva(0));
        let mut out = Vec::new();
        let mut page = [0u8; ARENA_PAGE_SIZE];
        let info = MapInfo {
            kva: Kva(DIRECT + map_pa.0),
            ..map(ARENA_MAX_PAGES)
        };
        let n = bpf
            .for_each_arena_page(&info, &mut page, |u, p| {
                assert!(p.iter().all(|b| *b == p[0]));
                out.push((u, p[0]));
                ControlFlow::Continue(())
            })
            .unwrap();
        let want: Vec<_> = present
            .iter()
            .enumerate()
            .map(|(n, &p)| (USER + u64::from(p) * PAGE, n as u8 + 1))
            .collect();
        assert_eq!((n, out), (4, want), "five-level {five}");
    }
}
