//! Seeds of the targets that read file formats and tables: ELF cores, VMCOREINFO,
//! RAM layouts and the KVM backend's region table.

use super::*;

/// One ELF note, padded to 4 bytes.
fn note(name: &str, n_type: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&n_type.to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v.push(0);
    v.resize(v.len().next_multiple_of(4), 0);
    v.extend_from_slice(desc);
    v.resize(v.len().next_multiple_of(4), 0);
    v
}

/// A `PT_LOAD` to write: `data` at physical `paddr` (and `vaddr`), `memsz` bytes.
struct Load {
    paddr: u64,
    vaddr: u64,
    data: Vec<u8>,
    memsz: u64,
}

fn load(paddr: u64, data: Vec<u8>) -> Load {
    let memsz = data.len() as u64;
    Load {
        paddr,
        vaddr: 0,
        data,
        memsz,
    }
}

/// An ELF core as QEMU's `dump-guest-memory` writes one: the ELF header, a `PT_NOTE`
/// (when there are notes) then the `PT_LOAD`s, the notes, then each load's bytes.
fn elf(class64: bool, machine: u16, notes: &[Vec<u8>], loads: &[Load]) -> Vec<u8> {
    let (ehsize, phent) = if class64 {
        (64usize, 56usize)
    } else {
        (52, 32)
    };
    let notes: Vec<u8> = notes.concat();
    let phnum = loads.len() + usize::from(!notes.is_empty());
    let notes_at = ehsize + phnum * phent;
    let w = |v: &mut Vec<u8>, x: u64| {
        if class64 {
            v.extend_from_slice(&x.to_le_bytes());
        } else {
            v.extend_from_slice(&(x as u32).to_le_bytes());
        }
    };
    let mut v = b"\x7fELF".to_vec();
    v.extend_from_slice(&[if class64 { 2 } else { 1 }, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    v.extend_from_slice(&4u16.to_le_bytes()); // ET_CORE
    v.extend_from_slice(&machine.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    w(&mut v, 0); // e_entry
    w(&mut v, ehsize as u64); // e_phoff
    w(&mut v, 0); // e_shoff
    v.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for x in [ehsize, phent, phnum, if class64 { 64 } else { 40 }, 0, 0] {
        v.extend_from_slice(&(x as u16).to_le_bytes());
    }
    assert_eq!(v.len(), ehsize);
    let phdr = |v: &mut Vec<u8>,
                p_type: u32,
                off: u64,
                vaddr: u64,
                paddr: u64,
                filesz: u64,
                memsz: u64| {
        v.extend_from_slice(&p_type.to_le_bytes());
        if class64 {
            v.extend_from_slice(&0u32.to_le_bytes()); // p_flags
        }
        for x in [off, vaddr, paddr, filesz, memsz] {
            w(v, x);
        }
        if !class64 {
            v.extend_from_slice(&0u32.to_le_bytes()); // p_flags
        }
        w(v, 0); // p_align
    };
    if !notes.is_empty() {
        let n = notes.len() as u64;
        phdr(&mut v, 4, notes_at as u64, 0, 0, n, n);
    }
    let mut at = notes_at + notes.len();
    for l in loads {
        phdr(
            &mut v,
            1,
            at as u64,
            l.vaddr,
            l.paddr,
            l.data.len() as u64,
            l.memsz,
        );
        at += l.data.len();
    }
    v.extend_from_slice(&notes);
    for l in loads {
        v.extend_from_slice(&l.data);
    }
    v
}

/// QEMU's x86 CPU-state note (`QEMUCPUState` version 1 plus `kernel_gs_base`).
fn qemu_cpu(cr3: u64, cr4: u64) -> Vec<u8> {
    let mut d = vec![0u8; 440];
    d[0..4].copy_from_slice(&1u32.to_le_bytes());
    d[4..8].copy_from_slice(&440u32.to_le_bytes());
    d[392 + 24..392 + 32].copy_from_slice(&cr3.to_le_bytes());
    d[392 + 32..392 + 40].copy_from_slice(&cr4.to_le_bytes());
    d[432..440].copy_from_slice(&0xffff_8880_1fc0_0000u64.to_le_bytes());
    d
}

/// An `NT_PRSTATUS` descriptor with this pid: x86_64 (336 bytes) or i386 (144).
fn prstatus(pid: u32, i386: bool) -> Vec<u8> {
    let (len, pid_at) = if i386 { (144, 24) } else { (336, 32) };
    let mut d = vec![0u8; len];
    d[pid_at..pid_at + 4].copy_from_slice(&pid.to_le_bytes());
    d
}

const VMCOREINFO: &[u8] = b"OSRELEASE=6.12.38+deb13-cloud-amd64\nPAGESIZE=4096\nKERNELOFFSET=2ac00000\nSYMBOL(init_top_pgt)=ffffffffad822000\nNUMBER(phys_base)=-339738624\nNUMBER(kimage_voffset)=0xffff800008000000\nOFFSET(page.flags)=0\nSIZE(page)=64\nLENGTH(free_area)=11\nCRASHTIME=\n";

/// `n` bytes where byte i is `seed + i` (mod 256).
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

pub(super) fn elf_core_seeds() {
    use elf_core::{Header, Read};
    let t = "elf_core";
    let read = |pick, delta: i32, len| Read {
        pick,
        delta: delta as u32,
        len,
    };
    let with = |h: &Header, core: &[u8]| raw(|e| h.encode(e), core);
    // QEMU, x86_64: one vCPU, VMCOREINFO, RAM at 0 (with a copy of the text at 0x1000),
    // and a segment at 0x10000 whose last 0xf00 bytes are zero fill.
    let mut low = pattern(0x2000, 0);
    low[0x1000..0x1000 + VMCOREINFO.len() + 1].copy_from_slice(&[VMCOREINFO, b"\0"].concat());
    let mut tail = load(0x10000, pattern(0x100, 0x40));
    tail.memsz = 0x1000;
    let notes = [
        note("CORE", 1, &prstatus(1, false)),
        note("QEMU", 0, &qemu_cpu(0x2a10000, 0x750eb0)),
        note("VMCOREINFO", 0, VMCOREINFO),
    ];
    let h = Header {
        reads: [
            read(0, 0x10, 64),
            read(0x80, -8, 16),  // across the end of RAM at 0 into the hole
            read(1, 0xf8, 0x20), // file bytes then zero fill
            read(1, 0, 0x1000),
        ],
    };
    let core = elf(true, 62, &notes, &[load(0, low), tail]);
    write(t, "seed-qemu-x86", &with(&h, &core));
    // kdump: the kernel image described again, by its virtual address, inside RAM; two
    // adjacent segments; no notes.
    let mut image = load(0x1000, pattern(0x800, 0x55));
    image.vaddr = 0xffff_ffff_8100_0000;
    let core = elf(
        true,
        62,
        &[],
        &[
            load(0, pattern(0x2000, 1)),
            load(0x2000, pattern(0x1000, 2)),
            image,
        ],
    );
    let h = Header {
        reads: [
            read(0, 0x1ff8, 16), // across two adjacent segments
            read(0x81, 0, 1),    // just past the end
            read(0, -1, 2),      // just before the start
            read(1, 0, 0x2000),
        ],
    };
    write(t, "seed-kdump-alias", &with(&h, &core));
    // i386, ELFCLASS32: two CPUs' NT_PRSTATUS.
    let notes = [
        note("CORE", 1, &prstatus(1, true)),
        note("CORE", 1, &prstatus(2, true)),
    ];
    let core = elf(false, 3, &notes, &[load(0x10_0000, pattern(0x400, 9))]);
    let h = Header {
        reads: [
            read(0, 0, 8),
            read(0, 0x3fc, 8),
            read(0x80, 0, 0),
            read(5, 0x100, 0x300),
        ],
    };
    write(t, "seed-elf32-i386", &with(&h, &core));
}

pub(super) fn vmcoreinfo_seeds() {
    use vmcoreinfo::Header;
    let t = "vmcoreinfo";
    // The text itself, then a NUL and the rest of its page.
    let mut text = [VMCOREINFO, b"\0"].concat();
    text.extend_from_slice(&pattern(64, 0x80));
    let h = Header {
        base_page: 0x100,
        ..Header::default()
    };
    write(t, "seed-data-page", &raw(|e| h.encode(e), &text));
    // The note page (text 24 bytes in), in RAM that straddles 4 GiB, after the format
    // strings of .rodata.
    let mut ram = pattern(0x3000, 3);
    let rodata = b"\0VMCOREINFO\0OSRELEASE=%s\n\0PAGESIZE=%ld\n\0";
    ram[0x100..0x100 + rodata.len()].copy_from_slice(rodata);
    let mut n = note("VMCOREINFO", 0, VMCOREINFO);
    n.extend_from_slice(&[0; 12]);
    ram[0x2000..0x2000 + n.len()].copy_from_slice(&n);
    let h = Header {
        base_page: 0xf_ffff,
        ..Header::default()
    };
    write(t, "seed-note-page-4gib", &raw(|e| h.encode(e), &ram));
    // A copy at an odd offset that only a hint (or the scan) finds, hinted; the scan in
    // 1 KiB chunks when the hint is left out.
    let mut ram = vec![0u8; 0x1800];
    ram[0x123..0x123 + VMCOREINFO.len()].copy_from_slice(VMCOREINFO);
    let h = Header {
        base_page: 0x10,
        hints: [(0x5000, 0x100), (0x100, 0x200)],
        flags: 1 | (1 << 2),
    };
    write(t, "seed-hinted", &raw(|e| h.encode(e), &ram));
}

pub(super) fn ram_layout_seeds() {
    let t = "ram_layout";
    let seeds: [(&str, &str); 4] = [
        (
            "seed-q35-3g",
            "0:0:0x80000000,0x100000000:0x80000000:0x40000000",
        ),
        (
            "seed-swapped",
            "0:0x1000:0x1000,0x1000:0:0x800\n0x4000:0x2000:0x1000",
        ),
        (
            "seed-underscores-alias",
            "0x1_0000_0000:0:4096 0:0:0X1000\t0x2000:0:1",
        ),
        ("seed-overlap", "0x1000:0:0x1000,0:0x1000:0x1001"),
    ];
    for (name, text) in seeds {
        write(t, name, text.as_bytes());
    }
}

pub(super) fn kvm_regions_seeds() {
    let t = "kvm_regions";
    // q35 with 3 GiB, scaled to the small mode: 2 GiB-like below a hole, the rest
    // above; accesses inside, in the hole, across the first region's end.
    let mut e = Enc::default();
    e.u8(2);
    e.u8(0).u16(0).u16(0x8000);
    e.u8(0).u16(0xc000).u16(0x4000);
    e.u8(0).u16(0x10).u16(0x1);
    e.u8(0).u16(0xa000).u16(0x10);
    e.u8(0).u16(0x7fff).u16(0x100);
    write(t, "seed-q35", &e.0);
    // The top of the address space, raw numbers.
    let mut e = Enc::default();
    e.u8(1);
    e.u8(1).u64(u64::MAX - 0xfff).u64(0x1000);
    e.u8(1).u64(u64::MAX).u64(0x10);
    e.u8(1).u64(u64::MAX - 0x7).u64(0x80);
    write(t, "seed-top", &e.0);
    // Refused sets: two overlapping regions (and an access the table never sees).
    let mut e = Enc::default();
    e.u8(2);
    e.u8(0).u16(0x10).u16(0x20);
    e.u8(0).u16(0x20).u16(0x1);
    e.u8(0).u16(0x10).u16(0x1);
    write(t, "seed-overlap", &e.0);
}

pub(super) fn snapshot_seeds() {
    use mapwalk::snapshot::{
        BtfBlob, KernelIdentity, Snapshot, SnapshotMeta, StoredBtf, StoredEntry, StoredMap,
        StoredValue,
    };
    use mapwalk::source::{MapInfo, MapState};
    use mapwalk_core::bpf::MapName;
    use mapwalk_core::MapType;
    use mapwalk_fuzz::btf_synth::BtfBuilder;

    let t = "snapshot";
    let info = |id: u32, name: &str, map_type: MapType, value_size: u32| {
        let mut field = [0u8; 16];
        field[..name.len()].copy_from_slice(name.as_bytes());
        MapInfo {
            id,
            map_type,
            name: MapName::from_field(&field),
            key_size: 4,
            value_size,
            max_entries: 4,
            ..MapInfo::default()
        }
    };
    let mut btf = BtfBuilder::default();
    let u32_t = btf.int("u32", 4, 0);
    let mut typed = info(2, "typed", MapType::ARRAY, 4);
    typed.btf_id = 7;
    typed.btf_key_type_id = u32_t;
    typed.btf_value_type_id = u32_t;
    let k = |i: u32| i.to_le_bytes().to_vec();
    let snap = Snapshot {
        meta: SnapshotMeta {
            kernel: KernelIdentity {
                release: Some("6.1.0-seed".into()),
                boot: Some("kaslr:0x0:0x1000000".into()),
            },
            source: "seed".into(),
            taken: std::time::UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 42),
        },
        base_btf: None,
        btfs: vec![BtfBlob {
            split: false,
            bytes: btf.build(),
        }],
        unlisted: vec![(Some(9), "unreadable".into())],
        maps: vec![
            StoredMap {
                info: info(1, "h", MapType::HASH, 2),
                state: MapState::default(),
                btf: StoredBtf::None,
                entries: vec![StoredEntry {
                    key: k(1),
                    value: StoredValue::Single(vec![1, 2]),
                }],
                error: Some("walk stopped".into()),
            },
            StoredMap {
                info: typed,
                state: MapState {
                    frozen: Some(true),
                    memlock: Some(4096),
                },
                btf: StoredBtf::Index(0),
                entries: (0..2)
                    .map(|i| StoredEntry {
                        key: k(i),
                        value: StoredValue::Single(k(i + 10)),
                    })
                    .collect(),
                error: None,
            },
            StoredMap {
                info: info(3, "pc", MapType::PERCPU_ARRAY, 2),
                state: MapState::default(),
                btf: StoredBtf::Error("map BTF: bad".into()),
                entries: vec![StoredEntry {
                    key: k(0),
                    value: StoredValue::PerCpu(vec![(0, vec![1, 1]), (1, vec![2, 2])]),
                }],
                error: None,
            },
        ],
        progs: mapwalk::snapshot::StoredProgs::Read(mapwalk::progs::ProgReport {
            progs: vec![{
                let mut p = mapwalk_core::ProgInfo::default();
                p.id = 4;
                p.prog_type = mapwalk_core::ProgType(1);
                p.name = MapName::from_field(b"known\0\0\0\0\0\0\0\0\0\0\0");
                p.tag = [1, 2, 3, 4, 5, 6, 7, 8];
                p.gpl_compatible = Some(true);
                p.xlated_len = 16;
                p.jited_len = 40;
                p.uid = Some(0);
                p.set_map_ids(&[1, 2]).unwrap();
                p
            }],
            errors: vec![(None, "unreadable".into())],
        }),
    };
    let mut whole = Vec::new();
    snap.write_to(&mut whole).unwrap();
    write(t, "seed-whole", &whole);
    write(t, "seed-truncated", &whole[..whole.len() / 2]);
    let mut newer = whole.clone();
    newer[8] = 2;
    write(t, "seed-newer", &newer);
    // The first map's entry count raised past the bytes left: the body re-compressed.
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&whole[20..]), &mut body)
        .unwrap();
    let count_at = body
        .windows(9)
        .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, 4])
        .expect("the first map's entry count and key length");
    body[count_at..count_at + 8].copy_from_slice(&(1u64 << 30).to_le_bytes());
    let mut corrupt = whole[..20].to_vec();
    let mut z = flate2::write::ZlibEncoder::new(&mut corrupt, flate2::Compression::default());
    std::io::Write::write_all(&mut z, &body).unwrap();
    z.finish().unwrap();
    write(t, "seed-corrupt-count", &corrupt);
}
