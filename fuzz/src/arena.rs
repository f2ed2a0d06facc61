//! Target `arena`: [`Bpf::for_each_entry`] (hence [`Bpf::for_each_arena_page`]) over an
//! ARENA whose `struct bpf_arena` fields, kernel range, present pages and caps come
//! from the input, its pages mapped by real x86_64 page tables (4- or 5-level, built
//! by [`X86PageTables`]: absent upper-level tables included), the RAM then mutated.
//!
//! Checked: the count returned is the number of pages handed; each key is 8 bytes and
//! a user address of the arena, strictly increasing; at most `Limits::arena_bytes` of
//! pages are handed; an error that is not a cap or a bad header ends the walk; and,
//! with nothing mutated and a consistent header, exactly the pages mapped are handed,
//! each with the bytes written into it, and the walk succeeds unless a cap ends it.
//!
//! Input: `five` (u8: 5-level when odd), `pages` (u32: `max_entries`, modulo
//! 2^20 + 2), `start` (u8: the user address kind), `end_delta` (u8: added to the
//! consistent `user_vm_end`), `kern` (u32: where the kernel range lies), `caps` (u16
//! pages visited, u16 pages of bytes; 0 for the defaults), `present` (u8: up to 15
//! pages, each a u32 index), then (offset u32, byte u8) mutations of the RAM.

use std::ops::ControlFlow;

use arbitrary::Unstructured;
use mapwalk_core::bpf::{MapInfo, PerCpuOffsets, ARENA_GUARD_SZ, ARENA_PAGE_SIZE};
use mapwalk_core::kernel::{KernelAddrs, KernelView};
use mapwalk_core::layout::{ArenaLayout, KernelLayout};
use mapwalk_core::limits::ARENA_MAX_PAGES;
use mapwalk_core::synth::{SynthRam, X86PageTables};
use mapwalk_core::{Bpf, Error, Kva, Limits, MapType, Pa};

use crate::{sink, Res, RAW_DIRECT_MAP};

/// The offsets of the target's `struct bpf_arena` and `vm_struct`.
pub const LAYOUT: ArenaLayout = ArenaLayout {
    user_vm_start: 0x100,
    user_vm_end: 0x108,
    kern_vm: 0x110,
    vm_addr: 0x8,
};

/// Where the kernel ranges lie: the vmalloc area of a 4-level x86_64 kernel.
const VMALLOC: u64 = 0xffff_c900_0000_0000;

/// Mutations of the RAM one input makes at most.
const MUTATIONS: usize = 64;

/// RAM of the target's guest.
const RAM: usize = 2 << 20;

/// The byte of offset `i` of arena page `page`.
pub fn fill(page: u32, i: usize) -> u8 {
    (page.wrapping_mul(7) as usize).wrapping_add(i.wrapping_mul(13)) as u8 | 1
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let _ = go(data);
}

fn go(data: &[u8]) -> Res<()> {
    let mut u = Unstructured::new(data);
    let five = u.arbitrary::<u8>()? & 1 == 1;
    let pages = u.arbitrary::<u32>()? % (ARENA_MAX_PAGES + 2);
    let start = match u.arbitrary::<u8>()? % 4 {
        0 => 0,
        1 => 0x3f00_0000_0000,
        // Crossing a 4 GiB boundary: the kernel range wraps.
        2 => 0x1_0000_0000 - 0x8000,
        _ => u.arbitrary::<u64>()? & !0xfff,
    };
    let end_delta = u64::from(u.arbitrary::<u8>()?);
    let kern = VMALLOC + (u64::from(u.arbitrary::<u32>()?) & 0x3fff_f000) + ARENA_GUARD_SZ / 2;
    let (cap_pages, cap_bytes) = (u.arbitrary::<u16>()?, u.arbitrary::<u16>()?);
    let count = u.arbitrary::<u8>()? % 16;
    let mut present = Vec::new();
    for _ in 0..count {
        let i = u.arbitrary::<u32>()?;
        if pages > 0 {
            present.push(i % pages.min(ARENA_MAX_PAGES));
        }
    }
    present.sort_unstable();
    present.dedup();

    let mut ram = SynthRam::new(Pa(0), RAM);
    let pt = X86PageTables::new(&mut ram, five);
    let map_pa = ram.alloc(512, 64);
    let vm_pa = ram.alloc(64, 64);
    let consistent_end = if start == 0 {
        0
    } else {
        start.wrapping_add(u64::from(pages).wrapping_mul(4096))
    };
    ram.write_u64(Pa(map_pa.0 + 0x100), start);
    ram.write_u64(Pa(map_pa.0 + 0x108), consistent_end.wrapping_add(end_delta));
    ram.write_u64(Pa(map_pa.0 + 0x110), RAW_DIRECT_MAP + vm_pa.0);
    ram.write_u64(Pa(vm_pa.0 + 0x8), kern - ARENA_GUARD_SZ / 2);
    let mut kvas = Vec::new();
    for &p in &present {
        let uaddr = start.wrapping_add(u64::from(p) * 4096);
        let kva = kern + (uaddr & 0xffff_ffff);
        if kvas.iter().any(|&(k, _, _)| k == kva) {
            continue;
        }
        let pa = ram.alloc_page(12);
        let bytes: Vec<u8> = (0..ARENA_PAGE_SIZE).map(|i| fill(p, i)).collect();
        ram.write(pa, &bytes);
        pt.map(&mut ram, Kva(kva), pa, 12);
        kvas.push((kva, uaddr, p));
    }
    let mut mutated = false;
    // `Unstructured` gives zeros once drained: read mutations only while bytes are
    // left, at most MUTATIONS of them.
    for _ in 0..MUTATIONS {
        if u.len() < 5 {
            break;
        }
        let (at, b) = (u.arbitrary::<u32>()?, u.arbitrary::<u8>()?);
        let at = at as usize % RAM;
        ram.bytes_mut()[at] = b;
        mutated = true;
    }

    let limits = Limits {
        arena_pages: if cap_pages == 0 {
            Limits::DEFAULT.arena_pages
        } else {
            u32::from(cap_pages)
        },
        arena_bytes: if cap_bytes == 0 {
            Limits::DEFAULT.arena_bytes
        } else {
            u64::from(cap_bytes) * 4096
        },
        ..Limits::DEFAULT
    };
    let paging = pt.paging();
    let view = KernelView::new(
        ram.into_ram(),
        paging,
        KernelAddrs::x86_64(RAW_DIRECT_MAP, RAM as u64, 0),
    )
    .with_limits(limits);
    let layout = KernelLayout {
        arena: Some(LAYOUT),
        ..KernelLayout::default()
    };
    let bpf = Bpf::new(&view, &layout, Kva(0));
    let map = MapInfo {
        id: 1,
        map_type: MapType::ARENA,
        max_entries: pages,
        kva: Kva(RAW_DIRECT_MAP + map_pa.0),
        ..MapInfo::default()
    };
    let (mut key, mut value) = ([0u8; 8], vec![0u8; ARENA_PAGE_SIZE]);
    let mut got: Vec<(u64, bool)> = Vec::new();
    let r = bpf.for_each_entry(
        &map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let uaddr = u64::from_le_bytes(k.try_into().expect("8-byte key"));
            let mapwalk_core::bpf::EntryValue::Single(bytes) = v else {
                panic!("an arena page per CPU");
            };
            assert_eq!(bytes.len(), ARENA_PAGE_SIZE);
            let index = uaddr.wrapping_sub(start) / 4096;
            let whole = index < u64::from(pages)
                && bytes
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == fill(index as u32, i));
            got.push((uaddr, whole));
            ControlFlow::Continue(())
        },
    );
    if let Err(e) = &r {
        sink(e);
    }
    if let Ok(n) = r {
        assert_eq!(n, got.len() as u64);
    }
    assert!(got.len() as u64 * 4096 <= limits.arena_bytes);
    for w in got.windows(2) {
        assert!(
            w[0].0.wrapping_sub(start) < w[1].0.wrapping_sub(start),
            "{got:x?}"
        );
    }
    let consistent = end_delta == 0 && pages <= ARENA_MAX_PAGES;
    if !mutated && consistent && start.checked_add(4 << 30).is_some() {
        let mut want: Vec<u64> = kvas.iter().map(|&(_, uaddr, _)| uaddr).collect();
        want.sort_unstable_by_key(|a| a.wrapping_sub(start));
        let capped = matches!(r, Err(Error::LimitExceeded { .. }));
        if !capped {
            r.as_ref().expect("a consistent arena walks");
            let addrs: Vec<u64> = got.iter().map(|g| g.0).collect();
            assert_eq!(addrs, want);
        } else {
            assert!(want.starts_with(&got.iter().map(|g| g.0).collect::<Vec<_>>()));
        }
        assert!(got.iter().all(|g| g.1), "a page's bytes differ");
    }
    Ok(())
}
