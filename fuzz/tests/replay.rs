//! Replays the seed corpus and the saved regressions through the targets (no libFuzzer
//! needed: `cargo test` in `fuzz/`), and checks that the seeds reach what they claim.

use std::fs;
use std::path::Path;

use arbitrary::Unstructured;
use mapwalk_core::kernel::KernelView;
use mapwalk_core::{Bpf, Pa, Paging, Ram, Translation};
use mapwalk_fuzz::{guest, hash_guest, pick_va, GuestKind, Mutated, RAW_VAS};

type Run = fn(&[u8]);

const TARGETS: [(&str, Run); 23] = [
    ("pgtable_x86_64", mapwalk_fuzz::pgtable_x86_64::run),
    ("pgtable_aarch64", mapwalk_fuzz::pgtable_aarch64::run),
    ("xarray", mapwalk_fuzz::xarray::run),
    ("discovery", mapwalk_fuzz::discovery::run),
    ("array", mapwalk_fuzz::array::run),
    ("htab", mapwalk_fuzz::htab::run),
    ("percpu", mapwalk_fuzz::percpu::run),
    ("elf_core", mapwalk_fuzz::elf_core::run),
    ("vmcoreinfo", mapwalk_fuzz::vmcoreinfo::run),
    ("ram_layout", mapwalk_fuzz::ram_layout::run),
    ("kvm_regions", mapwalk_fuzz::kvm_regions::run),
    ("btf_layout", mapwalk_fuzz::btf_layout::run),
    ("kallsyms", mapwalk_fuzz::kallsyms::run),
    ("ksymtab", mapwalk_fuzz::ksymtab::run),
    ("render", mapwalk_fuzz::render::run),
    ("progs", mapwalk_fuzz::progs::run),
    ("snapshot", mapwalk_fuzz::snapshot::run),
    ("storage", mapwalk_fuzz::storage::run),
    ("objmaps", mapwalk_fuzz::objmaps::run),
    ("ringbuf", mapwalk_fuzz::ringbuf::run),
    ("arena", mapwalk_fuzz::arena::run),
    ("stackmap", mapwalk_fuzz::stackmap::run),
    ("structops", mapwalk_fuzz::structops::run),
];

fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(kind)
        .join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn corpus_and_regressions_replay() {
    for (target, run) in TARGETS {
        let seeds = files("corpus", target);
        assert!(seeds.len() >= 3, "{target} has {} seeds", seeds.len());
        for (_, data) in seeds.iter().chain(files("regressions", target).iter()) {
            run(data);
        }
        // Degenerate inputs.
        run(&[]);
        run(&[1]);
        run(&[0xff; 300]);
    }
}

#[test]
fn every_guest_is_whole() {
    for kind in GuestKind::ALL {
        let g = guest(kind);
        let view = KernelView::new(Mutated::pristine(g), g.g.paging, g.g.addrs);
        let bpf = Bpf::new(&view, &g.g.layout, g.g.map_idr);
        let ids: Vec<u32> = bpf.maps().unwrap().map(|m| m.unwrap().id).collect();
        assert_eq!(ids, [1, 9, 12, 70, 4097], "{kind:?}");
        for &va in &g.vas {
            let t = mapwalk_core::translate(&Mutated::pristine(g), &g.g.paging, va);
            // Linear-region addresses may lie outside the page tables' reach only on
            // purpose; everything the guest lists is mapped.
            assert!(
                matches!(t, Ok(Translation::Mapped(_))),
                "{kind:?} {va}: {t:?}"
            );
        }
        // The heap region covers the page tables and map objects.
        assert!(g.regions[1].len > 0x1000, "{kind:?}: {:?}", g.regions);
    }
}

#[test]
fn every_hash_guest_is_whole() {
    use mapwalk_core::bpf::{CpuCopy, PossibleCpus};
    for kind in GuestKind::ALL {
        let g = hash_guest(kind);
        let view = KernelView::new(Mutated::pristine(g), g.g.paging, g.g.addrs);
        let bpf = Bpf::new(&view, &g.g.layout, g.g.map_idr);
        let maps: Vec<_> = bpf.maps().unwrap().map(|m| m.unwrap()).collect();
        assert_eq!(maps.len(), 12, "{kind:?}");
        let offsets = mapwalk_core::bpf::PerCpuOffsets::read_vec(
            &view,
            g.g.symbols.per_cpu_offset,
            PossibleCpus::NrCpuIds(g.g.symbols.nr_cpu_ids),
        )
        .unwrap();
        assert_eq!(offsets.possible(), 3);
        let mut elems = 0;
        for m in &maps {
            let h = match m.map_type {
                mapwalk_core::MapType::HASH | mapwalk_core::MapType::LRU_HASH => bpf.htab(m),
                mapwalk_core::MapType::PERCPU_HASH | mapwalk_core::MapType::LRU_PERCPU_HASH => {
                    bpf.percpu_htab(m, &offsets, None)
                }
                mapwalk_core::MapType::PERCPU_ARRAY => {
                    let a = bpf.percpu_array(m).unwrap();
                    for key in 0..m.max_entries {
                        let v = a.values(&view, &offsets, key).unwrap();
                        assert!(v.iter().all(CpuCopy::is_present), "{kind:?} {}", m.name);
                    }
                    continue;
                }
                _ => continue,
            };
            let h = h.unwrap_or_else(|e| panic!("{kind:?} {}: {e}", m.name));
            for e in h.walk(&view) {
                e.unwrap();
                elems += 1;
            }
        }
        assert_eq!(elems, 9 + 4 + 3 + 2 + 1, "{kind:?}");
    }
}

#[test]
fn raw_page_table_seeds_translate() {
    use mapwalk_fuzz::pgtable_x86_64::Header;
    for name in ["raw-4level", "raw-5level"] {
        let data = fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("corpus/pgtable_x86_64")
                .join(name),
        )
        .unwrap();
        let mut u = Unstructured::new(&data);
        let h = Header::decode(&mut u).unwrap();
        let ram = Ram::new(Pa(h.base), u.take_rest());
        let paging = Paging::X86_64(mapwalk_core::arch::x86_64::X86Paging::new(
            h.cr3,
            h.five_level,
        ));
        let (pick, delta, absolute) = h.vas[1];
        let va = pick_va(&RAW_VAS, pick, delta, absolute);
        let t = mapwalk_core::translate(&ram, &paging, va).unwrap();
        assert!(
            matches!(t, Translation::Mapped(m) if m.pa == Pa(0x4123)),
            "{name}: {t:?}"
        );
    }
}

#[test]
fn headers_round_trip() {
    use mapwalk_fuzz::Enc;
    for (target, _) in TARGETS {
        for (path, data) in files("corpus", target) {
            let mut u = Unstructured::new(&data);
            let mut e = Enc::default();
            match target {
                "pgtable_x86_64" => mapwalk_fuzz::pgtable_x86_64::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "pgtable_aarch64" => mapwalk_fuzz::pgtable_aarch64::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "xarray" => mapwalk_fuzz::xarray::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "progs" => mapwalk_fuzz::progs::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "discovery" => mapwalk_fuzz::discovery::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "array" => mapwalk_fuzz::array::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "htab" => mapwalk_fuzz::htab::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "percpu" => mapwalk_fuzz::percpu::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "elf_core" => mapwalk_fuzz::elf_core::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "vmcoreinfo" => mapwalk_fuzz::vmcoreinfo::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "btf_layout" => mapwalk_fuzz::btf_layout::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "render" => mapwalk_fuzz::render::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "ksymtab" => mapwalk_fuzz::ksymtab::Header::decode(&mut u)
                    .unwrap()
                    .encode(&mut e),
                "storage" => mapwalk_fuzz::storage::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "objmaps" => mapwalk_fuzz::objmaps::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "ringbuf" => mapwalk_fuzz::ringbuf::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "stackmap" => mapwalk_fuzz::stackmap::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                "structops" => mapwalk_fuzz::structops::Header::decode(&mut u)
                    .unwrap()
                    .0
                    .encode(&mut e),
                // Text inputs, and whole files, no header.
                "ram_layout" | "kallsyms" | "kvm_regions" | "snapshot" => continue,
                // Scalars read in order, no header struct.
                "arena" => continue,
                _ => unreachable!(),
            }
            assert_eq!(e.0[..], data[..e.0.len()], "{path}");
        }
    }
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target)
            .join(name),
    )
    .unwrap()
}

#[test]
fn elf_core_seeds_parse() {
    use mapwalk_core::PhysReadExt;
    use mapwalk_file::ElfCore;
    let data = seed("elf_core", "seed-qemu-x86");
    let mut u = Unstructured::new(&data);
    mapwalk_fuzz::elf_core::Header::decode(&mut u).unwrap();
    let core = ElfCore::from_bytes(u.take_rest()).unwrap();
    let starts: Vec<u64> = core.segments().iter().map(|s| s.paddr.0).collect();
    assert_eq!(starts, [0, 0x10000]);
    assert_eq!(core.segments()[1].mem_size, 0x1000);
    let cpus = core.vcpus();
    assert_eq!(cpus.len(), 1);
    assert_eq!(
        (cpus[0].cr3(), cpus[0].cr4()),
        (Some(0x2a10000), Some(0x750eb0))
    );
    assert_eq!(cpus[0].prstatus.as_ref().unwrap().pid, 1);
    let info = mapwalk::describe::Vmcoreinfo::parse(core.vmcoreinfo_note().unwrap());
    assert_eq!(info.osrelease(), Some("6.12.38+deb13-cloud-amd64"));
    assert_eq!(core.read_u8(Pa(0x10ff0)).unwrap(), 0);
    let found = mapwalk::describe::find_vmcoreinfo(&core, &[])
        .unwrap()
        .unwrap();
    assert_eq!(found.pa, Pa(0x1000));

    let data = seed("elf_core", "seed-kdump-alias");
    let core = ElfCore::from_bytes(&data[28..]).unwrap();
    assert_eq!(core.segments().len(), 2);
    assert_eq!(core.aliases()[0].vaddr, 0xffff_ffff_8100_0000);

    let data = seed("elf_core", "seed-elf32-i386");
    let core = ElfCore::from_bytes(&data[28..]).unwrap();
    assert!(!core.is_64bit());
    assert_eq!(core.vcpus().len(), 2);
    assert_eq!(core.read_u8(Pa(0x10_0001)).unwrap(), 10);
}

#[test]
fn vmcoreinfo_seeds_are_found() {
    use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo, FindMethod};
    let cases = [
        ("seed-data-page", 0x10_0000, FindMethod::PageProbe),
        (
            "seed-note-page-4gib",
            0xffff_f000 + 0x2018,
            FindMethod::PageProbe,
        ),
        ("seed-hinted", 0x10_123, FindMethod::Hint(1)),
    ];
    for (name, pa, method) in cases {
        let data = seed("vmcoreinfo", name);
        let mut u = Unstructured::new(&data);
        let h = mapwalk_fuzz::vmcoreinfo::Header::decode(&mut u).unwrap();
        let ram = Ram::new(Pa(u64::from(h.base_page) * 4096), u.take_rest());
        let hints: Vec<_> = h
            .hints
            .iter()
            .map(|&(off, len)| mapwalk_core::PhysRange {
                start: Pa(ram.base().0 + u64::from(off)),
                len: u64::from(len),
            })
            .collect();
        let found = find_vmcoreinfo(&ram, &hints).unwrap().unwrap();
        assert_eq!((found.pa, found.method), (Pa(pa), method), "{name}");
        assert_eq!(found.vmcoreinfo.len(), 10, "{name}");
    }
}

#[test]
fn synthetic_kernel_btf_resolves_to_the_default_layout() {
    use mapwalk_fuzz::btf_layout::blob_of;
    use mapwalk_fuzz::btf_synth::kernel_btf;
    let r = mapwalk::btf::layout_from_bytes(kernel_btf()).unwrap();
    // The synthetic kernel BTF has no `bpf_prog`, `lpm_trie`, `bpf_queue_stack`,
    // `bpf_stack_map`, `bpf_struct_ops_map`, local storage or any of the object maps' structs: left out.
    let layout = mapwalk_core::KernelLayout {
        prog: None,
        lpm: None,
        queue: None,
        storage: None,
        bloom: None,
        devmap: None,
        cpumap: None,
        sock: None,
        sockmap: None,
        reuseport: None,
        cgroup: None,
        perf_event: None,
        xskmap: None,
        ringbuf: None,
        stackmap: None,
        struct_ops: None,
        ..mapwalk_core::synth::default_layout()
    };
    assert_eq!(r.layout, layout);
    assert_eq!(
        r.warnings,
        [
            "bpf_prog (programs) disabled: BTF: no struct bpf_prog",
            "lpm_trie (LPM_TRIE maps) disabled: BTF: no struct lpm_trie",
            "bpf_queue_stack (QUEUE and STACK maps) disabled: BTF: no struct bpf_queue_stack",
            "bpf_stack_map (STACK_TRACE maps) disabled: BTF: no struct bpf_stack_map",
            "bpf_struct_ops_map (STRUCT_OPS maps) disabled: BTF: no struct bpf_struct_ops_map",
            "bpf_local_storage_map (TASK, INODE, SK and CGRP_STORAGE maps) disabled: BTF: no \
             struct bpf_local_storage_map",
            "bpf_bloom_filter (BLOOM_FILTER maps) disabled: BTF: no struct bpf_bloom_filter",
            "bpf_dtab (DEVMAP maps) disabled: BTF: no struct bpf_dtab",
            "bpf_cpu_map (CPUMAP maps) disabled: BTF: no struct bpf_cpu_map",
            "sock (socket cookies) disabled: BTF: no struct sock",
            "bpf_stab (SOCKMAP and SOCKHASH maps) disabled: BTF: no struct bpf_stab",
            "reuseport_array (REUSEPORT_SOCKARRAY maps) disabled: BTF: no struct reuseport_array",
            "cgroup (CGROUP_ARRAY maps) disabled: BTF: no struct cgroup",
            "bpf_event_entry (PERF_EVENT_ARRAY maps) disabled: BTF: no struct bpf_event_entry",
            "xsk_map (XSKMAP maps) disabled: BTF: no struct xsk_map",
            "bpf_ringbuf (RINGBUF and USER_RINGBUF maps) disabled: BTF: no struct \
             bpf_ringbuf_map",
        ]
    );
    for name in ["seed-raw", "seed-framed", "seed-synth"] {
        let b = blob_of(&seed("btf_layout", name), kernel_btf()).unwrap();
        assert_eq!(b, kernel_btf(), "{name}");
    }
    let b = blob_of(&seed("btf_layout", "seed-synth-no-xa-head"), kernel_btf()).unwrap();
    assert_eq!(
        mapwalk::btf::layout_from_bytes(&b),
        Err(mapwalk::btf::BtfError::NoMember("xarray.xa_head".into()))
    );
    let b = blob_of(&seed("btf_layout", "seed-synth-no-htab"), kernel_btf()).unwrap();
    let r = mapwalk::btf::layout_from_bytes(&b).unwrap();
    assert_eq!(r.layout.htab, None);
    // bpf_htab, and bpf_prog, lpm_trie, bpf_queue_stack, bpf_stack_map,
    // bpf_struct_ops_map, bpf_local_storage_map, the nine object map groups and
    // bpf_ringbuf (which the synthetic BTF never has; nor bpf_arena, which, like a
    // kernel before 6.9, is no warning).
    assert_eq!(r.warnings.len(), 17, "{:?}", r.warnings);
}

#[test]
fn synthetic_map_btf_renders() {
    use mapwalk::render::typed::TypeRenderer;
    use mapwalk_fuzz::btf_synth::map_btf;
    let (blob, ids) = map_btf();
    let btf = mapwalk::btf::MapBtf::new(blob.to_vec()).unwrap();
    let data = seed("render", "seed-synth-struct");
    let value = &data[data.len() - 56..];
    let v = TypeRenderer::new(&btf).render(ids.value, value);
    assert_eq!(
        v.to_string(),
        r#"{"n":-2,"flags":{"a":"0x5","b":"0x780","c":"0x0","d":"0x801"},"color":"BLUE","text":"mapwalk","p":18446612682089121120,"as_int":-559038737,"as_u32":3735928559,"pair":[1,-1],"x":1.5}"#
    );
    let bss = TypeRenderer::new(&btf).render(ids.bss, &seed("render", "seed-synth-bss")[15 + 4..]);
    assert_eq!(
        bss.to_string(),
        r#"{".bss":[{"counter":1311768467463790320},{"label":"bss"}]}"#
    );
    assert_eq!(ids.count, btf.last_id());
    // The split seed reads over the kernel BTF and names its struct.
    let kernel =
        mapwalk::btf::BaseBtf::new(mapwalk_fuzz::btf_synth::kernel_btf().to_vec()).unwrap();
    let data = seed("render", "seed-split");
    let mut u = Unstructured::new(&data);
    let h = mapwalk_fuzz::render::Header::decode(&mut u).unwrap();
    let rest = u.take_rest();
    let split =
        mapwalk::btf::MapBtf::split(rest[..usize::from(h.btf_len)].to_vec(), &kernel).unwrap();
    let v = TypeRenderer::new(&split).render(h.value_id, &rest[usize::from(h.btf_len) + 4..]);
    assert!(v.get("count").is_some() && v.get("where").is_some(), "{v}");
}

#[test]
fn ksymtab_seeds_read() {
    use mapwalk::describe::ksymtab::{AddressEncoding, Ksymtab, KsymtabError};
    use mapwalk_core::arch::x86_64::X86Paging;
    use mapwalk_core::kernel::KernelAddrs;
    let read = |name: &str| {
        let data = seed("ksymtab", name);
        let mut u = Unstructured::new(&data);
        let h = mapwalk_fuzz::ksymtab::Header::decode(&mut u).unwrap();
        let addrs = KernelAddrs {
            direct_map: None,
            ..KernelAddrs::x86_64(0, 0, 0)
        };
        let view = KernelView::new(
            Ram::new(Pa(0), u.take_rest().to_vec()),
            Paging::X86_64(X86Paging::new(0, false)),
            addrs,
        );
        Ksymtab::read(&view, &h.location())
    };
    let t = read("seed-absolute-percpu").unwrap();
    assert_eq!(t.len(), 8);
    assert!(matches!(
        t.encoding(),
        AddressEncoding::AbsolutePercpu { .. }
    ));
    assert_eq!(t.lookup("map_idr"), Some(0xffff_ffff_8250_0000));
    assert_eq!(t.lookup("cpu_number"), Some(0x2_0000));
    let t = read("seed-relative-long-name").unwrap();
    assert!(matches!(t.encoding(), AddressEncoding::Relative { .. }));
    assert_eq!(t.iter().nth(1).unwrap().name.len(), 300);
    let t = read("seed-place-relative").unwrap();
    assert!(matches!(
        t.encoding(),
        AddressEncoding::PlaceRelative { .. }
    ));
    assert_eq!(t.lookup("map_idr"), Some(0xffff_ffff_8100_0040));
    let err = read("seed-bad-token").unwrap_err();
    assert!(
        matches!(
            err,
            KsymtabError::Read {
                what: "kallsyms_token_table",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn every_prog_guest_is_whole() {
    use mapwalk_core::ProgIdr;
    use mapwalk_fuzz::progs::prog_guest;
    for kind in GuestKind::ALL {
        let g = prog_guest(kind);
        let view = KernelView::new(Mutated::pristine(g), g.g.paging, g.g.addrs);
        let bpf = Bpf::new(&view, &g.g.layout, g.g.map_idr);
        assert_eq!(bpf.maps().unwrap().count(), 11, "{kind:?}");
        let mut popped = Vec::new();
        for id in [84, 85] {
            let m = bpf.map_by_id(id).unwrap().unwrap();
            bpf.for_each_queue_value(&m, &mut [0; 4], |v| {
                popped.push(v[0]);
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        }
        // Queue: slots 3, 4, 0; stack (head 3, tail 1): slots 2, 1.
        assert_eq!(popped, [3, 4, 0, 2, 1], "{kind:?}");
        let lpm = bpf.map_by_id(83).unwrap().unwrap();
        let mut prefixes = Vec::new();
        bpf.for_each_lpm_entry(&lpm, &mut [0; 8], &mut [0; 8], |k, v| {
            prefixes.push((k[0], v[0]));
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(prefixes, [(24, 2), (24, 3), (16, 1), (0, 4)], "{kind:?}");
        let mut slots = Vec::new();
        for id in [80, 81, 82] {
            let map = bpf.map_by_id(id).unwrap().unwrap();
            let mut key = [0u8; 4];
            bpf.for_each_fd_slot(&map, &mut key, |k, id| {
                slots.push((k.to_vec(), id));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
        }
        assert_eq!(
            slots,
            [
                (vec![0, 0, 0, 0], 1),
                (vec![66, 0, 0, 0], 65),
                (vec![1, 0, 0, 0], 12),
                (b"abcd".to_vec(), 9)
            ],
            "{kind:?}"
        );
        let progs: Vec<_> = ProgIdr::new(&view, &g.g.layout, g.g.prog_idr)
            .progs()
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        let ids: Vec<u32> = progs.iter().map(|p| p.id).collect();
        assert_eq!(ids, [1, 65, 4100], "{kind:?}");
        assert_eq!(progs[0].map_ids(), [1, 12]);
        assert_eq!(progs[1].jited_len, 600);
        assert_eq!(progs[2].map_ids(), [70, 4097, 9]);
    }
}

#[test]
fn progs_seeds_reach_their_programs() {
    // The zero seed walks the whole x86 guest; the raw seed holds two programs.
    for (name, want) in [("synth-x86-4level", 3usize), ("raw-two-progs", 2)] {
        let data = seed("progs", name);
        let mut u = Unstructured::new(&data);
        let (h, limits) = mapwalk_fuzz::progs::Header::decode(&mut u).unwrap();
        let layout = mapwalk_fuzz::progs::layout(
            if h.mode % 2 == 0 {
                mapwalk_fuzz::progs::offsets(&mapwalk_core::synth::default_layout().prog.unwrap())
            } else {
                h.offsets.map(u32::from)
            },
            h.absent,
        );
        let n = if h.mode % 2 == 0 {
            let g = mapwalk_fuzz::progs::prog_guest(GuestKind::X86Four);
            let view =
                KernelView::new(Mutated::pristine(g), g.g.paging, g.g.addrs).with_limits(limits);
            mapwalk_core::ProgIdr::new(&view, &layout, g.g.prog_idr)
                .collect_progs()
                .unwrap()
                .progs
                .len()
        } else {
            let bytes = u.take_rest();
            let base = u64::from(h.base_page) << 12;
            let view = KernelView::new(
                Ram::new(Pa(base), bytes),
                Paging::X86_64(mapwalk_core::arch::x86_64::X86Paging::new(h.cr3, false)),
                mapwalk_core::kernel::KernelAddrs::x86_64(
                    mapwalk_fuzz::RAW_DIRECT_MAP,
                    base + bytes.len() as u64,
                    0,
                ),
            )
            .with_limits(limits);
            let at = mapwalk_fuzz::RAW_DIRECT_MAP + base + h.prog_idr % bytes.len() as u64;
            let list = mapwalk_core::ProgIdr::new(&view, &layout, mapwalk_core::Kva(at))
                .collect_progs()
                .unwrap();
            assert_eq!(list.errors, [], "{name}");
            list.progs.len()
        };
        assert_eq!(n, want, "{name}");
    }
}

#[test]
fn snapshot_seeds_reach_what_they_claim() {
    use mapwalk::snapshot::Snapshot;
    let whole = Snapshot::read_from(&mut seed("snapshot", "seed-whole").as_slice()).unwrap();
    assert_eq!(whole.maps.len(), 3);
    assert!(whole.maps.iter().any(|m| m.error.is_some()));
    assert!(whole.base_btf.is_none() && whole.btfs.len() == 1);
    for (name, starts) in [
        ("seed-truncated", "snapshot truncated"),
        ("seed-newer", "snapshot format version 2 is newer"),
        (
            "seed-corrupt-count",
            "snapshot truncated: ends in a map's entries",
        ),
    ] {
        let e = Snapshot::read_from(&mut seed("snapshot", name).as_slice()).unwrap_err();
        assert!(e.to_string().starts_with(starts), "{name}: {e}");
    }
}

#[test]
fn storage_seeds_reach_their_elements() {
    use mapwalk_core::bpf::storage::OwnerDesc;
    use mapwalk_core::bpf::STORAGE_MAP_TYPES;
    use mapwalk_fuzz::storage::{layout, offsets, storage_guest, Header};
    use std::ops::ControlFlow;
    // Every pristine guest: 15 elements in five maps, each owner described.
    for kind in GuestKind::ALL {
        let g = storage_guest(kind);
        let view = KernelView::new(Mutated::pristine(g), g.g.paging, g.g.addrs);
        let bpf = Bpf::new(&view, &g.g.layout, g.g.map_idr);
        let mut n = 0;
        for id in 1..=5 {
            let map = bpf.map_by_id(id).unwrap().unwrap();
            let mut value = vec![0u8; map.value_size as usize];
            bpf.for_each_storage_elem(&map, &mut value, |o, _| {
                assert!(o.desc.is_some(), "{kind:?}: {o:?}");
                n += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        }
        assert_eq!(n, 15, "{kind:?}");
    }
    // The raw seed: one task, pid 1, comm init, value 0x5a x 8.
    let data = seed("storage", "raw-one-task");
    let mut u = Unstructured::new(&data);
    let (h, limits) = Header::decode(&mut u).unwrap();
    let l = layout(h.offsets.map(u32::from), h.absent);
    assert_eq!(
        offsets(&l.storage.unwrap()),
        h.offsets.map(u32::from),
        "round trip"
    );
    let bytes = u.take_rest();
    let len = bytes.len() as u64;
    let view = KernelView::new(
        Ram::new(Pa(0), bytes),
        Paging::X86_64(mapwalk_core::arch::x86_64::X86Paging::new(h.cr3, false)),
        mapwalk_core::kernel::KernelAddrs::x86_64(mapwalk_fuzz::RAW_DIRECT_MAP, len, 0),
    )
    .with_limits(limits);
    let map = mapwalk_core::MapInfo {
        id: 1,
        kva: mapwalk_core::Kva(mapwalk_fuzz::RAW_DIRECT_MAP + u64::from(h.map_at)),
        map_type: STORAGE_MAP_TYPES[usize::from(h.map_type)],
        key_size: 4,
        value_size: u32::from(h.value_size),
        ..mapwalk_core::MapInfo::default()
    };
    let mut seen = Vec::new();
    Bpf::new(&view, &l, mapwalk_core::Kva(0))
        .for_each_storage_elem(&map, &mut [0; 8], |o, v| {
            seen.push((o.desc, v.to_vec()));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen.len(), 1);
    match seen[0].0 {
        Some(OwnerDesc::Task(t)) => assert_eq!((t.pid, t.comm()), (1, &b"init"[..])),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(seen[0].1, [0x5a; 8]);
}

#[test]
fn every_objmap_guest_is_whole() {
    use mapwalk_core::bpf::{EntryValue, PerCpuOffsets};
    use mapwalk_fuzz::objmaps::{object_maps, objmap_guest};
    for kind in GuestKind::ALL {
        let g = objmap_guest(kind);
        let view = KernelView::new(Mutated::pristine(g), g.g.paging, g.g.addrs);
        let bpf = Bpf::new(&view, &g.g.layout, g.g.map_idr);
        let mut counts = Vec::new();
        for spec in object_maps() {
            let map = bpf.map_by_id(spec.id).unwrap().unwrap();
            let lens = bpf.entry_buffer_lens(&map, 1).unwrap();
            let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
            let mut first = None;
            let n = bpf
                .for_each_entry(
                    &map,
                    None::<&PerCpuOffsets<Vec<u64>>>,
                    &mut key,
                    &mut value,
                    |k, v| {
                        let EntryValue::Single(v) = v else {
                            panic!("per-CPU")
                        };
                        first.get_or_insert((k.to_vec(), v.to_vec()));
                        std::ops::ControlFlow::Continue(())
                    },
                )
                .unwrap_or_else(|e| panic!("{kind:?}: map {}: {e}", spec.id));
            counts.push(n);
            if spec.id == 90 {
                // The bloom filter: bits 1 and 20 and 63 of its 64.
                let (_, v) = first.unwrap();
                assert_eq!(v[16..], [2, 0, 0x10, 0, 0, 0, 0, 0x80], "{kind:?}");
            }
        }
        assert_eq!(counts, [1, 2, 3, 1, 1, 2, 1, 1, 1, 1], "{kind:?}");
    }
}

#[test]
fn ringbuf_seeds_reach_their_records() {
    use mapwalk_core::bpf::{EntryValue, PerCpuOffsets};
    use mapwalk_core::Bpf;
    use std::ops::ControlFlow;
    for (kind, name) in [
        (mapwalk_fuzz::GuestKind::X86Four, "seed-synth-x86-4level"),
        (mapwalk_fuzz::GuestKind::A64Granule64K, "seed-synth-a64-64k"),
    ] {
        assert!(!seed("ringbuf", name).is_empty(), "{name}");
        let g = &mapwalk_fuzz::ringbuf::ringbuf_guest(kind).g;
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        // The kernel ring: the header, five records up to and including the busy
        // one; the user ring: the header and two records.
        for (id, want) in [(1u32, 6usize), (2, 3)] {
            let map = bpf.map_by_id(id).unwrap().unwrap();
            let lens = bpf.entry_buffer_lens(&map, 1).unwrap();
            let (mut k, mut v) = (vec![0u8; lens.key], vec![0u8; lens.value]);
            let mut n = 0usize;
            bpf.for_each_entry(
                &map,
                None::<&PerCpuOffsets<Vec<u64>>>,
                &mut k,
                &mut v,
                |_, v| {
                    assert!(matches!(v, EntryValue::Single(_)));
                    n += 1;
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
            assert_eq!(n, want, "{name}: map {id}");
        }
    }
}
