//! Replays the seed corpus and the saved regressions through the targets (no libFuzzer
//! needed: `cargo test` in `fuzz/`), and checks that the seeds reach what they claim.

use std::fs;
use std::path::Path;

use arbitrary::Unstructured;
use mapwalk_core::kernel::KernelView;
use mapwalk_core::{Bpf, Pa, Paging, Ram, Translation};
use mapwalk_fuzz::{guest, hash_guest, pick_va, GuestKind, Mutated, RAW_VAS};

type Run = fn(&[u8]);

const TARGETS: [(&str, Run); 7] = [
    ("pgtable_x86_64", mapwalk_fuzz::pgtable_x86_64::run),
    ("pgtable_aarch64", mapwalk_fuzz::pgtable_aarch64::run),
    ("xarray", mapwalk_fuzz::xarray::run),
    ("discovery", mapwalk_fuzz::discovery::run),
    ("array", mapwalk_fuzz::array::run),
    ("htab", mapwalk_fuzz::htab::run),
    ("percpu", mapwalk_fuzz::percpu::run),
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
                _ => unreachable!(),
            }
            assert_eq!(e.0[..], data[..e.0.len()], "{path}");
        }
    }
}
