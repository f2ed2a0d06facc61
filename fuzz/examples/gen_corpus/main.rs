//! Writes the seed corpus: `cargo +nightly run --example gen_corpus` in `fuzz/`.
//!
//! Each seed is encoded with the target's own header encoder, so it decodes to the case
//! it names: a whole synthetic guest walked unchanged, the same with one corruption, or
//! small hand-made raw memories. The files are small (the synthetic guests are built by
//! the targets themselves; a seed only says how to mutate them).

use std::fs;
use std::path::Path;

use mapwalk_core::synth::{build_xarray, default_layout, SynthRam};
use mapwalk_core::Pa;
use mapwalk_fuzz::btf_synth::{self, BtfBuilder};
use mapwalk_fuzz::{
    array, btf_layout, discovery, elf_core, htab, ksymtab, objmaps, percpu, pgtable_aarch64,
    pgtable_x86_64, progs, render, stackmap, storage, structops, vmcoreinfo, xarray, Enc, Mutated,
};
use mapwalk_fuzz::{GuestKind, RAW_DIRECT_MAP};

mod files;
mod maps;
use files::{
    elf_core_seeds, kvm_regions_seeds, ram_layout_seeds, snapshot_seeds, vmcoreinfo_seeds,
};
use maps::{
    arena_seeds, objmaps_seeds, ringbuf_seeds, stackmap_seeds, storage_seeds, structops_seeds,
};

type Patch = (u8, u32, u8, bool, u64);

/// The header bytes followed by mutations of the synthetic guest.
fn synth(header: impl FnOnce(&mut Enc), patches: &[Patch], tail: (u8, u32, &[u8])) -> Vec<u8> {
    let mut e = Enc::default();
    header(&mut e);
    Mutated::encode(&mut e, patches, tail);
    e.0
}

/// The header bytes followed by raw RAM.
fn raw(header: impl FnOnce(&mut Enc), ram: &[u8]) -> Vec<u8> {
    let mut e = Enc::default();
    header(&mut e);
    e.bytes(ram);
    e.0
}

/// `synth-<guest>` for a guest selector over [`GuestKind::ALL`].
fn guest_name(selector: u8) -> String {
    let kind = GuestKind::pick(&GuestKind::ALL, selector);
    let name = match kind {
        GuestKind::X86Four => "x86-4level",
        GuestKind::X86Five => "x86-5level",
        GuestKind::A64Granule4K => "a64-4k",
        GuestKind::A64Granule16K => "a64-16k",
        GuestKind::A64Granule64K => "a64-64k",
        GuestKind::A64Lpa2Granule4K => "a64-lpa2-4k",
        GuestKind::A64Lpa2Granule16K => "a64-lpa2-16k",
    };
    format!("synth-{name}")
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    assert!(bytes.len() < 100 << 10, "{target}/{name} is too big");
    fs::write(dir.join(name), bytes).unwrap();
}

/// x86_64 tables in 0x5000 bytes at physical 0 mapping `va` to page 0x4000:
/// PML4 0x0 (or PML5 0x0 then PML4 0x5000 with `five`), PDPT 0x1000, PD 0x2000, PT 0x3000.
fn x86_tables(va: u64, five: bool) -> Vec<u8> {
    let mut b = vec![0u8; if five { 0x6000 } else { 0x5000 }];
    let mut set = |table: u64, shift: u32, entry: u64| {
        let at = (table + ((va >> shift) & 0x1ff) * 8) as usize;
        b[at..at + 8].copy_from_slice(&entry.to_le_bytes());
    };
    let pml4 = if five {
        set(0, 48, 0x5000 | 0x63);
        0x5000
    } else {
        0
    };
    set(pml4, 39, 0x1000 | 0x63);
    set(0x1000, 30, 0x2000 | 0x63);
    set(0x2000, 21, 0x3000 | 0x63);
    set(0x3000, 12, 0x4000 | 0x163);
    b[0x4000..0x4008].copy_from_slice(b"mapwalk!");
    b
}

fn pgtable_x86_64_seeds() {
    use pgtable_x86_64::Header;
    let t = "pgtable_x86_64";
    for (guest, name) in [(0u8, "synth-4level"), (1, "synth-5level")] {
        let h = Header {
            guest,
            vas: [(0, 0, 0), (3, 0x1000, 0), (8, 0, 0), (12, 0xffff_f000, 0)],
            ..Header::default()
        };
        write(t, name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
        // A flipped bit in the root table region (region 1 starts at the root).
        let patch = [(1, 0x800 + 8 * u32::from(guest), 1, true, 0x80)];
        write(
            t,
            &format!("{name}-ps-bit"),
            &synth(|e| h.encode(e), &patch, (0, 0, &[])),
        );
    }
    let va = 0xffff_c900_0000_3000u64;
    for (five, name) in [(false, "raw-4level"), (true, "raw-5level")] {
        let va = if five { 0xff11_0000_0000_3000 } else { va };
        let h = Header {
            mode: 1,
            five_level: five,
            cr3: 0,
            vas: [
                (0, 0, va),
                (0, 0, va + 0x123),
                (0, 0, va + 0x1000),
                (0, 0, 0x1234),
            ],
            ..Header::default()
        };
        write(t, name, &raw(|e| h.encode(e), &x86_tables(va, five)));
    }
}

/// aarch64 4 KiB granule, T1SZ 25 (39 bits, 3 levels): tables at 0x0, 0x1000, 0x2000
/// mapping `va` to page 0x3000, and a 2 MiB block at level 1 for `va + 2 MiB`.
fn a64_tables(va: u64) -> Vec<u8> {
    let mut b = vec![0u8; 0x4000];
    let mut set = |table: u64, shift: u32, entry: u64| {
        let at = (table + ((va >> shift) & 0x1ff) * 8) as usize;
        b[at..at + 8].copy_from_slice(&entry.to_le_bytes());
    };
    set(0, 30, 0x1000 | 0b11);
    set(0x1000, 21, 0x2000 | 0b11);
    set(0x2000, 12, 0x3000 | 0x400 | 0b11);
    let at = (0x1000 + (((va >> 21) + 1) & 0x1ff) * 8) as usize;
    b[at..at + 8].copy_from_slice(&(0x20_0000u64 | 0x401).to_le_bytes());
    b
}

/// aarch64 LPA2, 4 KiB granule, T1SZ 12 (52 bits, 5 levels) in RAM at `base`: tables
/// at offsets 0x0 to 0x4000 mapping `va` to the page at 0x5000, every descriptor with
/// PA\[51:50\] in bits 9:8.
fn a64_lpa2_tables(base: u64, va: u64) -> Vec<u8> {
    let mut b = vec![0u8; 0x6000];
    let encode = |off: u64| {
        let pa = base + off;
        (pa & 0x0003_ffff_ffff_ffff) | ((pa >> 50 & 0b11) << 8)
    };
    for (i, shift) in [48u32, 39, 30, 21, 12].into_iter().enumerate() {
        let table = i as u64 * 0x1000;
        let bits = if shift == 48 { 0xf } else { 0x1ff };
        let at = (table + ((va >> shift) & bits) * 8) as usize;
        let flags = if shift == 12 { 0x400 | 0b11 } else { 0b11 };
        b[at..at + 8].copy_from_slice(&(encode(table + 0x1000) | flags).to_le_bytes());
    }
    b
}

fn pgtable_aarch64_seeds() {
    use pgtable_aarch64::Header;
    let t = "pgtable_aarch64";
    for (guest, name) in [
        (0u8, "synth-4k"),
        (1, "synth-16k"),
        (2, "synth-64k"),
        (3, "synth-lpa2-4k"),
        (4, "synth-lpa2-16k"),
    ] {
        let h = Header {
            guest,
            vas: [(0, 0, 0), (3, 0x1000, 0), (8, 0, 0), (12, 0xffff_f000, 0)],
            ..Header::default()
        };
        write(t, name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
    }
    // TBI1 on and a tagged address, on the 4 KiB guest.
    let h = Header {
        tcr: 1 << 38,
        vas: [
            (1, 0, 0),
            (0, 0, 0x5aff_8000_8000_0040),
            (2, 8, 0),
            (5, 0, 0),
        ],
        ..Header::default()
    };
    write(t, "synth-4k-tbi", &synth(|e| h.encode(e), &[], (0, 0, &[])));
    let va = 0xffff_ffc0_0040_5000u64;
    // TG1 = 4 KiB, T1SZ = 25.
    let tcr = (0b10 << 30) | (25 << 16);
    let h = Header {
        mode: 1,
        tcr,
        vas: [
            (0, 0, va),
            (0, 0, va + 0x20_0123),
            (0, 0, va + 0x1000),
            (0, 0, 0x1234),
        ],
        ..Header::default()
    };
    write(t, "raw-4k-39bit", &raw(|e| h.encode(e), &a64_tables(va)));
    // LPA2: 4 KiB granule, T1SZ 12 (five levels), RAM at PA[51:50] = 0b11.
    let base = 0x000c_0000_0000_0000u64;
    let va = 0xfffa_bcde_f012_3000u64;
    let tcr = (1 << 59) | (0b110 << 32) | (0b10 << 30) | (12 << 16);
    let h = Header {
        mode: 1,
        tcr,
        ttbr1_rel: true,
        base,
        vas: [
            (0, 0, va),
            (0, 0, va + 0x7f8),
            (0, 0, va + 0x1000),
            (0, 0, 0xfff0_0000_0000_0000),
        ],
        ..Header::default()
    };
    write(
        t,
        "raw-lpa2-4k-52bit",
        &raw(|e| h.encode(e), &a64_lpa2_tables(base, va)),
    );
}

fn xarray_seeds() {
    use xarray::Header;
    let t = "xarray";
    for guest in 0..5u8 {
        let h = Header {
            guest,
            loads: [1, 70, 4097, 5],
            ..Header::default()
        };
        let name = guest_name(guest);
        write(t, &name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
    }
    // A node's shift byte changed (the xarray nodes follow the map objects in the heap).
    let h = Header {
        loads: [1, 70, 4097, 0],
        ..Header::default()
    };
    let patch = [(1, 0x6000, 1, true, 6)];
    write(
        t,
        "synth-x86-shift",
        &synth(|e| h.encode(e), &patch, (0, 0, &[])),
    );
    // Raw: a small tree of three levels built in 32 KiB.
    let mut ram = SynthRam::new(Pa(0), 32 << 10);
    let entries: Vec<(u64, u64)> = [0u64, 5, 63, 64, 4095, 4096, 70_000]
        .iter()
        .map(|&i| (i, RAW_DIRECT_MAP + 0x40 + i * 8))
        .collect();
    let head = build_xarray(
        &mut ram,
        &mapwalk_core::synth::KERNEL_XARRAY_LAYOUT,
        RAW_DIRECT_MAP,
        &entries,
    );
    let h = Header {
        mode: 1,
        layout: [8, 0, 40],
        head,
        loads: [5, 4096, 70_000, 1 << 40],
        ..Header::default()
    };
    let used = ram.bytes().iter().rposition(|&b| b != 0).unwrap() + 1;
    write(
        t,
        "raw-three-levels",
        &raw(|e| h.encode(e), &ram.bytes()[..used]),
    );
}

fn discovery_seeds() {
    use discovery::Header;
    let t = "discovery";
    for guest in 0..5u8 {
        let mut h = Header {
            guest,
            ids: [9, 4097],
            suffix_len: 4,
            ..Header::default()
        };
        h.suffix[..4].copy_from_slice(b".bss");
        let name = guest_name(guest);
        write(t, &name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
    }
    // The name offset moved: every map reads another name.
    let mut h = Header {
        ids: [1, 12],
        suffix_len: 3,
        ..Header::default()
    };
    h.offsets[11] = 8;
    h.suffix[..3].copy_from_slice(b"ers");
    write(
        t,
        "synth-x86-name-moved",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
    // Raw: map_idr, an xarray and two bpf_map headers in 16 KiB, default layout.
    let l = default_layout();
    let mut ram = SynthRam::new(Pa(0), 16 << 10);
    let map_idr = ram.alloc(64, 64);
    let mut maps = Vec::new();
    for (id, name) in [(3u32, &b"counters"[..]), (77, b"prog.bss")] {
        let pa = ram.alloc(512, 64);
        let m = l.bpf_map;
        ram.write_u32(Pa(pa.0 + u64::from(m.map_type)), 2);
        ram.write_u32(Pa(pa.0 + u64::from(m.key_size)), 4);
        ram.write_u32(Pa(pa.0 + u64::from(m.value_size)), 8);
        ram.write_u32(Pa(pa.0 + u64::from(m.max_entries)), 4);
        ram.write_u32(Pa(pa.0 + u64::from(m.id)), id);
        ram.write(Pa(pa.0 + u64::from(m.name)), name);
        let a = l.array.unwrap();
        ram.write_u32(Pa(pa.0 + u64::from(a.elem_size)), 8);
        maps.push((u64::from(id), RAW_DIRECT_MAP + pa.0));
    }
    let head = build_xarray(&mut ram, &l.xarray, RAW_DIRECT_MAP, &maps);
    ram.write_u64(
        Pa(map_idr.0 + u64::from(l.idr.idr_rt + l.xarray.xa_head)),
        head,
    );
    ram.write_u32(Pa(map_idr.0 + u64::from(l.idr.idr_next)), 78);
    let mut h = Header {
        mode: 1,
        offsets: discovery::offsets(&l).map(|o| o as u16),
        map_idr: map_idr.0,
        map_idr_rel: true,
        ids: [3, 77],
        suffix_len: 4,
        ..Header::default()
    };
    h.suffix[..4].copy_from_slice(b".bss");
    let used = ram.bytes().iter().rposition(|&b| b != 0).unwrap() + 1;
    write(
        t,
        "raw-two-maps",
        &raw(|e| h.encode(e), &ram.bytes()[..used]),
    );
}

fn progs_seeds() {
    use progs::Header;
    let t = "progs";
    for guest in 0..5u8 {
        let h = Header {
            guest,
            ids: [65, 4100],
            ..Header::default()
        };
        write(
            t,
            &guest_name(guest),
            &synth(|e| h.encode(e), &[], (0, 0, &[])),
        );
    }
    // `aux` moved: every program's aux pointer is read from the wrong place.
    let mut h = Header {
        ids: [1, 2],
        ..Header::default()
    };
    h.offsets[4] = 8;
    write(
        t,
        "synth-x86-aux-moved",
        &synth(|e| h.encode(e), &[], (0, 0, &[])),
    );
    // Raw: prog_idr, an xarray and two programs (bpf_prog + bpf_prog_aux) in 16 KiB.
    let l = default_layout();
    let p = l.prog.unwrap();
    let mut ram = SynthRam::new(Pa(0), 16 << 10);
    let prog_idr = ram.alloc(64, 64);
    let mut progs = Vec::new();
    for (id, name) in [(5u32, &b"known"[..]), (300, b"other")] {
        let prog = ram.alloc(512, 64);
        let aux = ram.alloc(512, 64);
        ram.write_u32(Pa(prog.0 + u64::from(p.prog_type)), 1);
        ram.write_u32(Pa(prog.0 + u64::from(p.len)), 2);
        ram.write_u32(Pa(prog.0 + u64::from(p.jited_len)), 40);
        ram.write_u64(Pa(prog.0 + u64::from(p.aux)), RAW_DIRECT_MAP + aux.0);
        ram.write_u32(Pa(aux.0 + u64::from(p.aux_id)), id);
        ram.write_u64(Pa(aux.0 + u64::from(p.aux_prog)), RAW_DIRECT_MAP + prog.0);
        ram.write(Pa(aux.0 + u64::from(p.aux_name)), name);
        progs.push((u64::from(id), RAW_DIRECT_MAP + prog.0));
    }
    let head = build_xarray(&mut ram, &l.xarray, RAW_DIRECT_MAP, &progs);
    ram.write_u64(
        Pa(prog_idr.0 + u64::from(l.idr.idr_rt + l.xarray.xa_head)),
        head,
    );
    let h = Header {
        mode: 1,
        offsets: progs::offsets(&p).map(|o| o as u16),
        prog_idr: prog_idr.0,
        prog_idr_rel: true,
        ids: [5, 300],
        ..Header::default()
    };
    // Whole pages: the last xarray node ends in zero slots.
    let used = (ram.bytes().iter().rposition(|&b| b != 0).unwrap() + 1).next_multiple_of(4096);
    write(
        t,
        "raw-two-progs",
        &raw(|e| h.encode(e), &ram.bytes()[..used]),
    );
}

fn array_seeds() {
    use array::{Header, Op};
    let t = "array";
    let ops = [
        Op {
            key: 0,
            offset: 0,
            len: 8,
            kind: 0,
            fill: 0,
        },
        Op {
            key: 1,
            offset: 2,
            len: 4,
            kind: 1,
            fill: 0xab,
        },
        Op {
            key: 1,
            offset: 0,
            len: 24,
            kind: 4 | 2,
            fill: 0,
        },
        Op {
            key: 2,
            offset: 4000,
            len: 96,
            kind: 1 | 2,
            fill: 0x11,
        },
    ];
    // Discovered maps in id order: counters, prog.bss, flows (HASH), big_mmap, far.
    for (guest, pick, name) in [
        (0u8, 0u8, "synth-x86-counters"),
        (0, 1, "synth-x86-vmalloc"),
        (1, 3, "synth-x86-5level-mmapable"),
        (2, 3, "synth-a64-4k-mmapable"),
        (4, 1, "synth-a64-64k-vmalloc"),
        (0, 2, "synth-x86-hash"),
    ] {
        let h = Header {
            guest,
            pick,
            ops,
            ..Header::default()
        };
        write(t, name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
    }
    // Raw: an ARRAY of 4 values of 12 bytes (stride 16) at 0x100, default offsets.
    let a = default_layout().array.unwrap();
    let mut ram = vec![0u8; 0x100 + a.value as usize + 64];
    ram[0x100 + a.elem_size as usize..][..4].copy_from_slice(&16u32.to_le_bytes());
    for (i, b) in ram[0x100 + a.value as usize..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let h = Header {
        mode: 1,
        array: [a.elem_size as u16, a.value as u16],
        kva: 0x100,
        info: [0, 0, 12, 4],
        ops: [
            Op {
                key: 3,
                offset: 0,
                len: 12,
                kind: 4,
                fill: 0,
            },
            Op {
                key: 2,
                offset: 8,
                len: 4,
                kind: 1,
                fill: 0x77,
            },
            Op {
                key: 2,
                offset: 0,
                len: 12,
                kind: 0,
                fill: 0,
            },
            Op {
                key: 4,
                offset: 0,
                len: 1,
                kind: 0,
                fill: 0,
            },
        ],
        ..Header::default()
    };
    write(t, "raw-array", &raw(|e| h.encode(e), &ram));
}

fn htab_seeds() {
    use htab::Header;
    let t = "htab";
    // Hash maps of the hash guests, in id order: flows (HASH, with a chain of three),
    // lru (LRU_HASH), pkts_old (PERCPU_HASH, pointer after the key), pkts_new
    // (PERCPU_HASH, aligned pointer, vmalloc'd copies), lru_pc (LRU_PERCPU_HASH). The
    // standard guests' empty HASH (id 12) comes first.
    for (guest, pick, force, name) in [
        (0u8, 1u8, 0u8, "synth-x86-hash-chain"),
        (2, 2, 0, "synth-a64-4k-lru-hash"),
        (1, 3, 0, "synth-x86-5level-percpu-keysize"),
        (0, 4, 0, "synth-x86-percpu-aligned-vmalloc"),
        (4, 3, 2, "synth-a64-64k-percpu-forced-wrong"),
        (3, 5, 0, "synth-a64-16k-lru-percpu"),
    ] {
        let h = Header {
            guest,
            pick,
            force,
            cpu: 1,
            ..Header::default()
        };
        write(t, name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
    }
    // Raw: a HASH of 4 buckets (default offsets) with one element of key 4, value 8.
    let l = default_layout().htab.unwrap();
    let mut ram = vec![0u8; 0x1000];
    let map = 0x100u64;
    let buckets = 0x800u64;
    let elem = 0xa00u64;
    let put = |ram: &mut Vec<u8>, at: u64, v: &[u8]| {
        ram[at as usize..at as usize + v.len()].copy_from_slice(v)
    };
    put(
        &mut ram,
        map + u64::from(l.buckets),
        &(RAW_DIRECT_MAP + buckets).to_le_bytes(),
    );
    put(&mut ram, map + u64::from(l.n_buckets), &4u32.to_le_bytes());
    put(
        &mut ram,
        map + u64::from(l.elem_size),
        &(l.elem_key + 8 + 8).to_le_bytes(),
    );
    for b in 0..4u64 {
        let head = if b == 2 {
            RAW_DIRECT_MAP + elem
        } else {
            (b << 1) | 1
        };
        put(
            &mut ram,
            buckets + b * u64::from(l.bucket_size) + u64::from(l.bucket_head),
            &head.to_le_bytes(),
        );
    }
    put(
        &mut ram,
        elem + u64::from(l.elem_hash_node),
        &((2u64 << 1) | 1).to_le_bytes(),
    );
    // Its back link: bucket 2's head.
    put(
        &mut ram,
        elem + u64::from(l.elem_hash_node) + 8,
        &(RAW_DIRECT_MAP + buckets + 2 * u64::from(l.bucket_size) + u64::from(l.bucket_head))
            .to_le_bytes(),
    );
    put(&mut ram, elem + u64::from(l.elem_key), &7u32.to_le_bytes());
    put(
        &mut ram,
        elem + u64::from(l.elem_key) + 8,
        &70u64.to_le_bytes(),
    );
    let h = Header {
        mode: 1,
        layout: htab::htab_fields(&l).map(|f| f as u16),
        kva: map as u32,
        info: [0, 4, 8, 4],
        ..Header::default()
    };
    write(t, "raw-hash-one-elem", &raw(|e| h.encode(e), &ram));
}

fn percpu_seeds() {
    use percpu::Header;
    let t = "percpu";
    let reads = [(0, 0, 0, 8), (1, 1, 4, 4), (3, 2, 0, 40)];
    for (guest, pick, cpus, name) in [
        (0u8, 0u8, 0u8, "synth-x86-cnt"),
        (0, 1, 0, "synth-x86-big-vmalloc"),
        (2, 0, 3, "synth-a64-4k-cnt-3cpus"),
        (4, 1, 0, "synth-a64-64k-big"),
        (1, 2, 0, "synth-x86-5level-not-percpu"),
    ] {
        let h = Header {
            guest,
            pick,
            cpus,
            reads,
            ..Header::default()
        };
        write(t, name, &synth(|e| h.encode(e), &[], (0, 0, &[])));
    }
    // Raw: a PERCPU_ARRAY of 2 values of 8 bytes at 0x100, 2 CPUs whose copies are 0x40
    // apart in the direct map, the per-CPU objects at 0x800.
    let a = default_layout().array.unwrap();
    let mut ram = vec![0u8; 0x1000];
    ram[0x100 + a.elem_size as usize..][..4].copy_from_slice(&8u32.to_le_bytes());
    for k in 0..2usize {
        let pptr = 0x800u64 + k as u64 * 8;
        ram[0x100 + a.value as usize + k * 8..][..8].copy_from_slice(&pptr.to_le_bytes());
        for cpu in 0..2usize {
            ram[0x800 + cpu * 0x40 + k * 8..][..8]
                .copy_from_slice(&((k * 10 + cpu) as u64).to_le_bytes());
        }
    }
    let h = Header {
        mode: 1,
        array: [a.elem_size as u16, a.value as u16],
        cpus: 1,
        reads,
        kva: 0x100,
        info: [0, 0, 8, 2],
        offsets: [RAW_DIRECT_MAP, RAW_DIRECT_MAP + 0x40, 0, 0],
        ..Header::default()
    };
    write(t, "raw-percpu-array", &raw(|e| h.encode(e), &ram));
}

fn btf_layout_seeds() {
    use btf_layout::Header;
    let t = "btf_layout";
    let kernel = btf_synth::kernel_btf();
    let h = Header { mode: 0, at: 0 };
    write(t, "seed-raw", &raw(|e| h.encode(e), kernel));
    let (types, _) = btf_synth::section_lens(kernel);
    let h = Header {
        mode: 1,
        at: types as u16,
    };
    write(
        t,
        "seed-framed",
        &raw(|e| h.encode(e), &kernel[btf_synth::HDR_LEN..]),
    );
    let h = Header { mode: 2, at: 0 };
    write(t, "seed-synth", &raw(|e| h.encode(e), &[]));
    // `xa_head` renamed: a required member missing.
    let at = kernel.windows(8).position(|w| w == b"xa_head\0").unwrap();
    let h = Header {
        mode: 2,
        at: at as u16,
    };
    write(
        t,
        "seed-synth-no-xa-head",
        &raw(|e| h.encode(e), b"xa_heap"),
    );
    // `hash_node` renamed: the optional hash group left out, with a warning.
    let at = kernel
        .windows(10)
        .position(|w| w == b"hash_node\0")
        .unwrap();
    let h = Header {
        mode: 2,
        at: at as u16,
    };
    write(t, "seed-synth-no-htab", &raw(|e| h.encode(e), b"hash_nope"));
}

fn kallsyms_seeds() {
    let t = "kallsyms";
    let seeds: [(&str, &str); 4] = [
        (
            "seed-kallsyms",
            "0000000000000000 A fixed_percpu_data\nffffffff81000000 T _text\nffffffff81001000 t helper\nffffffff82a1c010 D phys_base\nffffffff82b00000 b helper\nffffffffc0a01000 t veth_open\t[veth]\nffffffffc0a02000 T init_module\t[veth]\nffffffffc0b00000 T init_module\t[nf_tables]\nffffffffc0b01000 t helper\t[nf_tables]\n",
        ),
        (
            "seed-system-map",
            "ffffffff81000000 T _stext\r\nffffffff81000000 T _text\r\n\r\nffffffff82000000 R __start_rodata\r\n",
        ),
        ("seed-hidden", "0000000000000000 T _text\n0000000000000000 t veth_open\t[veth]\n"),
        ("seed-bad-line", "ffffffff81000000 T _text\nffffffff8100zz00 T nope\n"),
    ];
    for (name, text) in seeds {
        write(t, name, text.as_bytes());
    }
}

fn ksymtab_seeds() {
    use ksymtab::Header;
    use mapwalk::describe::ksymtab::{BuildEncoding, KsymtabBuilder};
    use mapwalk_core::kernel::X86_START_KERNEL_MAP;
    let t = "ksymtab";
    const TEXT: u64 = 0xffff_ffff_8100_0000;
    let mut b = KsymtabBuilder::new();
    b.token(0x80, "map_")
        .token(0x81, "_base")
        .push('A', "fixed_percpu_data", 0)
        .push('A', "cpu_number", 0x2_0000)
        .push('T', "_text", TEXT)
        .push('t', "helper", TEXT + 0x100)
        .push('T', "helper", TEXT + 0x200)
        .push('d', "map_idr", TEXT + 0x150_0000)
        .push('D', "page_offset_base", TEXT + 0x150_0040)
        .push('D', "phys_base", TEXT + 0x150_0080);
    let seed = |b: &KsymtabBuilder, enc| {
        let (image, loc) = b.build(X86_START_KERNEL_MAP, enc).unwrap();
        raw(|e| Header::of(&loc).encode(e), &image)
    };
    // x86_64 SMP before 6.15: absolute per-CPU symbols, tokens.
    write(
        t,
        "seed-absolute-percpu",
        &seed(&b, BuildEncoding::AbsolutePercpu),
    );
    // A name of 300 characters: a length of two bytes.
    let mut long = KsymtabBuilder::new();
    long.push('T', "_text", TEXT)
        .push('t', &"long_name_".repeat(30), TEXT + 0x10)
        .push('D', "map_idr", TEXT + 0x20);
    write(
        t,
        "seed-relative-long-name",
        &seed(&long, BuildEncoding::Relative),
    );
    // Place-relative offsets, no relative base.
    let mut place = KsymtabBuilder::new();
    place
        .token(0x80, "map_")
        .push('T', "_text", TEXT)
        .push('D', "map_idr", TEXT + 0x40);
    write(
        t,
        "seed-place-relative",
        &seed(&place, BuildEncoding::PlaceRelative),
    );
    // A token index past the token table.
    let (mut image, loc) = b
        .build(X86_START_KERNEL_MAP, BuildEncoding::AbsolutePercpu)
        .unwrap();
    let index = (loc.token_index.0 - X86_START_KERNEL_MAP) as usize;
    image[index + 2 * 0x41..][..2].copy_from_slice(&0xfff0u16.to_le_bytes());
    write(
        t,
        "seed-bad-token",
        &raw(|e| Header::of(&loc).encode(e), &image),
    );
}

fn render_seeds() {
    use render::Header;
    let t = "render";
    let (map, ids) = btf_synth::map_btf();
    // A value of `struct value`: n = -2, flags, color BLUE, text "mapwalk", p, the
    // anonymous union, pair = {1, -1}, x = 1.5.
    let mut value = Vec::new();
    value.extend_from_slice(&(-2i32).to_le_bytes());
    value.extend_from_slice(&0x8012_3c05u32.to_le_bytes());
    value.extend_from_slice(&7u32.to_le_bytes());
    value.extend_from_slice(b"mapwalk\0");
    value.extend_from_slice(&0xffff_8880_0123_4560u64.to_le_bytes());
    value.extend_from_slice(&0xdead_beefu32.to_le_bytes());
    value.extend_from_slice(&1i64.to_le_bytes());
    value.extend_from_slice(&(-1i64).to_le_bytes());
    value.extend_from_slice(&1.5f64.to_le_bytes());
    assert_eq!(value.len(), 56);
    let key = 3u32.to_le_bytes();
    let entry = |h: &Header, btf: &[u8], value: &[u8]| {
        let mut e = Enc::default();
        h.encode(&mut e);
        e.bytes(btf).bytes(&key).bytes(value);
        e.0
    };
    let synth = Header {
        mode: 2,
        key_id: ids.u32_t,
        value_id: ids.value,
        key_len: 4,
        ..Header::default()
    };
    write(t, "seed-synth-struct", &entry(&synth, &[], &value));
    let percpu = Header { cpus: 2, ..synth };
    let two = [value.clone(), value.iter().map(|b| b ^ 0x5a).collect()].concat();
    write(t, "seed-synth-percpu", &entry(&percpu, &[], &two));
    let mut bss = 0x1234_5678_9abc_def0u64.to_le_bytes().to_vec();
    bss.extend_from_slice(b"bss\0\0\0\0\0");
    let datasec = Header {
        key_id: 0,
        value_id: ids.bss,
        ..synth
    };
    write(t, "seed-synth-bss", &entry(&datasec, &[], &bss));
    let raw_btf = Header {
        mode: 0,
        btf_len: map.len() as u16,
        ..synth
    };
    write(t, "seed-raw-struct", &entry(&raw_btf, map, &value));
    // Split BTF over the kernel BTF: a struct of a kernel `unsigned int` (id 1) and a
    // pointer, as module and program BTF refer to vmlinux types.
    let base_types = btf_synth::kernel_types();
    let (_, base_strs) = btf_synth::section_lens(btf_synth::kernel_btf());
    let mut b = BtfBuilder::split(base_types + 1, base_strs as u32);
    let p = b.ptr(1);
    let s = b.aggregate(
        false,
        "split_value",
        16,
        &[("count", 1, 0), ("where", p, 8)],
    );
    let split = b.build();
    let h = Header {
        mode: 1,
        btf_len: split.len() as u16,
        key_id: 1,
        value_id: s,
        key_len: 4,
        ..Header::default()
    };
    write(t, "seed-split", &entry(&h, &split, &value[..16]));
}

fn main() {
    elf_core_seeds();
    vmcoreinfo_seeds();
    ram_layout_seeds();
    kvm_regions_seeds();
    btf_layout_seeds();
    kallsyms_seeds();
    ksymtab_seeds();
    render_seeds();
    htab_seeds();
    percpu_seeds();
    pgtable_x86_64_seeds();
    pgtable_aarch64_seeds();
    xarray_seeds();
    discovery_seeds();
    array_seeds();
    progs_seeds();
    storage_seeds();
    objmaps_seeds();
    ringbuf_seeds();
    stackmap_seeds();
    structops_seeds();
    snapshot_seeds();
    arena_seeds();
}
