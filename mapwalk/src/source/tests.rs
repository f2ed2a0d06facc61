use super::*;
use crate::describe::{Kernel, Symbols};
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::MapType;
use mapwalk_core::{KernelView, Kva, MapFlags, Pa};
use mapwalk_file::RamFile;

/// A RAM file holding `g`'s memory, removed when dropped.
pub(super) struct RamImage(pub(super) std::path::PathBuf);

impl RamImage {
    pub(super) fn new(g: &SyntheticGuest, name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("mapwalk-source-{}-{name}", std::process::id()));
        assert_eq!(g.ram.base(), Pa(0), "an identity-layout RAM file");
        std::fs::write(&path, g.ram.bytes()).unwrap();
        Self(path)
    }
}

impl Drop for RamImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A guest with one map of each walkable type, a ring buffer, and an array with
/// split BTF (id 42) describing its `u64` values.
fn guest() -> (SyntheticGuest, Vec<u8>) {
    let mut b = GuestBuilder::x86_64(false).possible_cpus(2);
    b.add_map(
        MapSpec::array(1, "arr", 8, 3).with_values(|k| u64::from(k + 5).to_le_bytes().to_vec()),
    )
    .add_map(MapSpec::hash(2, "hash", 4, 4, 8).entry(b"abcd", b"wxyz"))
    .add_map(
        MapSpec::new(3, MapType::PERCPU_ARRAY, "parr", 4, 4, 2)
            .with_cpu_values(2, |k, cpu| vec![k as u8, cpu as u8, 0, 9]),
    )
    .add_map(
        MapSpec::new(4, MapType::LRU_PERCPU_HASH, "phash", 8, 4, 4)
            .percpu_entry(&[3; 8], vec![vec![1; 4], vec![2; 4]]),
    )
    .add_map(MapSpec::new(5, MapType::CGROUP_STORAGE, "cgst", 12, 8, 0))
    .add_map({
        let mut s = MapSpec::array(6, "typed", 8, 1).mmapable();
        s.btf_ids = (1, 1);
        s
    });
    let mut g = b.build();
    let mut raw = crate::btf::testing::Builder::new();
    raw.int("u64", 8);
    let raw = raw.bytes();
    // The map's `struct btf`, standalone (base_btf NULL), in free RAM.
    let l = g.layout.btf_object.unwrap();
    let dm = g.addrs.direct_map.unwrap().virt.0;
    let obj = g.ram.alloc(256, 64);
    let data = g.ram.alloc(raw.len() as u64, 8);
    g.ram.write(data, &raw);
    g.ram.write_u64(Pa(obj.0 + u64::from(l.data)), dm + data.0);
    g.ram
        .write_u32(Pa(obj.0 + u64::from(l.data_size)), raw.len() as u32);
    g.ram.write_u32(Pa(obj.0 + u64::from(l.id)), 42);
    let typed = g.maps.iter().find(|m| m.id == 6).unwrap().kva;
    let field = g.pa_of(Kva(typed.0 + u64::from(g.layout.bpf_map.btf)));
    g.ram.write_u64(field, dm + obj.0);
    (g, raw)
}

pub(super) fn source(g: &SyntheticGuest, ram: &RamImage, per_cpu: bool) -> MemorySource<RamFile> {
    let file = RamFile::options().writable(true).open(&ram.0).unwrap();
    MemorySource::new(Kernel {
        view: KernelView::new(file, g.paging, g.addrs),
        layout: g.layout,
        btf: crate::btf::KernelBtf::new(Vec::new()),
        symbols: Symbols::default(),
        map_idr: g.map_idr,
        prog_idr: Some(g.prog_idr),
        per_cpu_offset: per_cpu.then_some(g.symbols.per_cpu_offset),
        nr_cpu_ids: Some(g.symbols.nr_cpu_ids),
        release: None,
        warnings: Vec::new(),
        vmcoreinfo: None,
        phys_base: g.phys_base,
        page_offset_base: g.addrs.direct_map.unwrap().virt.0,
        slide: 0,
    })
}

/// Every entry as (key, [(cpu, value)]) with CPU `u32::MAX` for a single value.
#[allow(clippy::type_complexity)]
fn entries(
    src: &dyn MapSource,
    map: &MapInfo,
) -> Result<Vec<(Vec<u8>, Vec<(u32, Vec<u8>)>)>, SourceError> {
    let mut out = Vec::new();
    src.for_each_entry(map, &mut |k, v| {
        let v = match v {
            ValueRef::Single(v) => vec![(u32::MAX, v.to_vec())],
            ValueRef::PerCpu(p) => p.iter().map(|(cpu, v)| (cpu, v.to_vec())).collect(),
        };
        out.push((k.to_vec(), v));
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

#[test]
fn memory_maps_list_dump_and_give_their_btf() {
    let (g, raw) = guest();
    let ram = RamImage::new(&g, "list");
    let src = source(&g, &ram, true);
    let maps = src.maps().unwrap();
    let ids: Vec<u32> = maps.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
    let typed = src.find(&MapSelector::parse("typed")).unwrap();
    assert_eq!(
        (
            typed.btf_id,
            typed.map_flags,
            typed.has_btf(),
            typed.from_memory()
        ),
        (42, MapFlags::MMAPABLE, true, true)
    );
    assert_eq!(maps[0].btf_id, 0);

    let single = |v: &[u8]| vec![(u32::MAX, v.to_vec())];
    assert_eq!(
        entries(&src, &maps[0]).unwrap(),
        (0..3u32)
            .map(|k| (
                k.to_le_bytes().to_vec(),
                single(&u64::from(k + 5).to_le_bytes())
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        entries(&src, &maps[1]).unwrap(),
        [(b"abcd".to_vec(), single(b"wxyz"))]
    );
    assert_eq!(
        entries(&src, &maps[2]).unwrap(),
        (0..2u8)
            .map(|k| {
                let cpus = (0..2u8).map(|c| (u32::from(c), vec![k, c, 0, 9])).collect();
                (u32::from(k).to_le_bytes().to_vec(), cpus)
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(
        entries(&src, &maps[3]).unwrap(),
        [(vec![3; 8], vec![(0, vec![1; 4]), (1, vec![2; 4])])]
    );
    match entries(&src, &maps[4]) {
        Err(SourceError::Unsupported(msg)) => {
            assert!(msg.contains("cgroup_storage"), "{msg}");
        }
        other => panic!("{other:?}"),
    }

    let btf = src.btf(&typed).unwrap().unwrap();
    let t = btf.type_by_id(1, 0).unwrap();
    assert_eq!(t.kind, crate::btf::Kind::INT);
    assert_eq!(t.size(), Some(8));
    assert!(src.btf(&maps[0]).unwrap().is_none());
    assert!(!raw.is_empty());
}

#[test]
fn per_cpu_maps_without_offsets_say_why() {
    let (g, _) = guest();
    let ram = RamImage::new(&g, "nopcpu");
    let src = source(&g, &ram, false);
    let maps = src.maps().unwrap();
    match entries(&src, &maps[2]) {
        Err(SourceError::Unsupported(msg)) => {
            assert!(msg.contains("__per_cpu_offset"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    // The other types do not need them.
    assert_eq!(entries(&src, &maps[0]).unwrap().len(), 3);
}

#[test]
fn a_map_that_cannot_be_read_is_reported_not_dropped() {
    let (mut g, _) = guest();
    // Map 2's `bpf_map.id` no longer agrees with its place in `map_idr`.
    let hash = g.maps.iter().find(|m| m.id == 2).unwrap().kva;
    let id_pa = g.pa_of(Kva(hash.0 + u64::from(g.layout.bpf_map.id)));
    g.ram.write_u32(id_pa, 99);
    let ram = RamImage::new(&g, "report");
    let src = source(&g, &ram, true);
    let report = src.maps_report().unwrap();
    let ids: Vec<u32> = report.maps.iter().map(|m| m.id).collect();
    assert_eq!(ids, [1, 3, 4, 5, 6]);
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert_eq!(report.errors[0].0, Some(2));
    // A dump of every map counts it as missing.
    let mut out = Vec::new();
    let summary =
        crate::dump::dump_all(&src, crate::render::Format::Json, &mut out, &mut |_| {}).unwrap();
    assert_eq!(summary.unlisted.len(), 1);
    assert!(!summary.is_whole());
}

#[test]
fn writes_to_guest_memory_name_the_type_they_refuse() {
    let (g, _) = guest();
    let ram = RamImage::new(&g, "wtype");
    let src = source(&g, &ram, true);
    let maps = src.maps().unwrap();
    src.check_writable(&maps[0]).unwrap();
    for (map, key) in [(&maps[1], &b"abcd"[..]), (&maps[4], &[][..])] {
        let e = src.check_writable(map).unwrap_err().to_string();
        assert!(e.contains(&map.map_type.to_string()), "{e}");
        let w = src.write(map, key, 0, &[1]).unwrap_err().to_string();
        assert_eq!(w, e);
    }
}

#[test]
fn lookup_and_next_key_from_memory() {
    let (g, _) = guest();
    let ram = RamImage::new(&g, "lookup");
    let src = source(&g, &ram, true);
    let arr = src.find(&MapSelector::parse("arr")).unwrap();
    let mut seen = Vec::new();
    let found = src
        .lookup(&arr, &2u32.to_le_bytes(), &mut |v| {
            if let ValueRef::Single(b) = v {
                seen = b.to_vec();
            }
        })
        .unwrap();
    assert!(found);
    assert_eq!(seen, 7u64.to_le_bytes());
    assert!(!src.lookup(&arr, &9u32.to_le_bytes(), &mut |_| {}).unwrap());
    assert!(matches!(
        src.lookup(&arr, &[0; 3], &mut |_| {}),
        Err(SourceError::BadKey(_))
    ));
    // Next keys in walk order: first, after 0, after the last, after a missing key.
    assert_eq!(
        src.next_key(&arr, None).unwrap(),
        Some(0u32.to_le_bytes().to_vec())
    );
    assert_eq!(
        src.next_key(&arr, Some(&0u32.to_le_bytes())).unwrap(),
        Some(1u32.to_le_bytes().to_vec())
    );
    assert_eq!(src.next_key(&arr, Some(&2u32.to_le_bytes())).unwrap(), None);
    assert_eq!(
        src.next_key(&arr, Some(&7u32.to_le_bytes())).unwrap(),
        Some(0u32.to_le_bytes().to_vec())
    );
    let hash = src.find(&MapSelector::parse("hash")).unwrap();
    let mut value = Vec::new();
    assert!(src
        .lookup(&hash, b"abcd", &mut |v| {
            if let ValueRef::Single(b) = v {
                value = b.to_vec();
            }
        })
        .unwrap());
    assert_eq!(value, b"wxyz");
}

#[test]
fn frozen_comes_from_memory_and_memlock_only_from_the_live_host() {
    let (mut g, _) = guest();
    // Map 2 frozen: `bpf_map.frozen` set.
    let kva = g.maps.iter().find(|m| m.id == 2).unwrap().kva;
    let off = g.layout.bpf_map.frozen.unwrap();
    let pa = g.pa_of(Kva(kva.0 + u64::from(off)));
    g.ram.write_u8(pa, 1);
    let ram = RamImage::new(&g, "frozen");
    let src = source(&g, &ram, true);
    let states: Vec<MapState> = src.maps().unwrap().iter().map(|m| src.state(m)).collect();
    let frozen: Vec<Option<bool>> = states.iter().map(|s| s.frozen).collect();
    assert_eq!(frozen, [false, true, false, false, false, false].map(Some));
    assert!(states.iter().all(|s| s.memlock.is_none()));
    // A layout without the field: unknown, not "not frozen".
    let mut layout = g.layout;
    layout.bpf_map.frozen = None;
    let mut src = source(&g, &ram, true);
    src.kernel_mut_for_tests().layout = layout;
    let map = src.map_by_id(2).unwrap().unwrap();
    assert_eq!(src.state(&map).frozen, None);
}

#[test]
fn memory_lists_programs_as_bpftool_would() {
    use mapwalk_core::synth::ProgSpec;
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(MapSpec::array(1, "arr", 8, 3))
        .add_prog(ProgSpec::new(7, "known").maps(&[1]));
    let g = b.build();
    let ram = RamImage::new(&g, "progs");
    let src = source(&g, &ram, false);
    let report = src.progs().unwrap();
    assert_eq!(report.errors, []);
    let json: Vec<String> = report
        .progs
        .iter()
        .map(|p| crate::progs::prog_json(p).to_string())
        .collect();
    assert_eq!(
        json,
        [
            r#"{"id":7,"type":"socket_filter","name":"known","tag":"0700000007000000","gpl_compatible":true,"uid":0,"bytes_xlated":16,"jited":true,"bytes_jited":40,"map_ids":[1]}"#
        ]
    );
    // A kernel whose symbols have no prog_idr says so.
    let file = RamFile::options().open(&ram.0).unwrap();
    let no_idr = MemorySource::new(Kernel {
        view: KernelView::new(file, g.paging, g.addrs),
        layout: g.layout,
        btf: crate::btf::KernelBtf::new(Vec::new()),
        symbols: Symbols::default(),
        map_idr: g.map_idr,
        prog_idr: None,
        per_cpu_offset: None,
        nr_cpu_ids: None,
        release: None,
        warnings: Vec::new(),
        vmcoreinfo: None,
        phys_base: g.phys_base,
        page_offset_base: g.addrs.direct_map.unwrap().virt.0,
        slide: 0,
    });
    assert!(matches!(no_idr.progs(), Err(SourceError::Unsupported(_))));
}

#[test]
fn queues_and_stacks_dump_in_pop_order_with_empty_keys() {
    let mut b = GuestBuilder::x86_64(false);
    // Five slots, elements in slots 3, 4 and 0; slot n holds n + 1.
    b.add_map(MapSpec::new(1, MapType::QUEUE, "q", 0, 2, 4).ring(1, 3, |s| vec![s as u8 + 1, 0]))
        .add_map(
            MapSpec::new(2, MapType::STACK, "s", 0, 2, 4).ring(1, 3, |s| vec![s as u8 + 1, 0]),
        );
    let g = b.build();
    let ram = RamImage::new(&g, "queues");
    let src = source(&g, &ram, false);
    let dump = |id: u32, format| {
        let meta = src.map_by_id(id).unwrap().unwrap();
        let mut out = Vec::new();
        crate::dump::dump_map(&src, &meta, format, &mut out, &mut |_| {}).unwrap();
        String::from_utf8(out).unwrap()
    };
    let entry = |n: u8| format!(r#"{{"key":[],"value":["0x{n:02x}","0x00"]}}"#);
    assert_eq!(
        dump(1, crate::render::Format::Json).trim_end(),
        format!("[{},{},{}]", entry(4), entry(5), entry(1))
    );
    assert_eq!(
        dump(2, crate::render::Format::Json).trim_end(),
        format!("[{},{},{}]", entry(1), entry(5), entry(4))
    );
    eprintln!("{}", dump(1, crate::render::Format::Human));
}

#[test]
fn bloom_filters_and_object_maps_dump_from_memory() {
    use mapwalk_core::synth::SlotObject;
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(MapSpec::new(1, MapType::BLOOM_FILTER, "bloom", 0, 4, 10).bloom(3, 5, &[0, 63]))
        .add_map(MapSpec::new(2, MapType::DEVMAP, "dev", 4, 4, 2).object(
            &1u32.to_le_bytes(),
            SlotObject::NetDev(1u32.to_le_bytes().to_vec()),
        ))
        .add_map(
            MapSpec::new(3, MapType::SOCKHASH, "socks", 2, 8, 2)
                .object(b"ab", SlotObject::Sock(0x0102)),
        );
    let g = b.build();
    let ram = RamImage::new(&g, "objmaps");
    let src = source(&g, &ram, false);
    let dump = |id: u32| {
        let meta = src.map_by_id(id).unwrap().unwrap();
        let mut out = Vec::new();
        crate::dump::dump_map(
            &src,
            &meta,
            crate::render::Format::Json,
            &mut out,
            &mut |_| {},
        )
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()
    };
    let hex = |b: &[u8]| -> Vec<String> { b.iter().map(|b| format!("0x{b:02x}")).collect() };
    // Version 1, 3 hashes, seed 5, mask 63, then bits 0 and 63.
    let mut bloom = Vec::new();
    for w in [1u32, 3, 5, 63] {
        bloom.extend(w.to_le_bytes());
    }
    bloom.extend([1, 0, 0, 0, 0, 0, 0, 0x80]);
    assert_eq!(
        dump(1),
        serde_json::json!([{"key": [], "value": hex(&bloom)}])
    );
    assert_eq!(
        dump(2),
        serde_json::json!([{"key": hex(&[1, 0, 0, 0]), "value": hex(&[1, 0, 0, 0])}])
    );
    assert_eq!(
        dump(3),
        serde_json::json!([{"key": hex(b"ab"), "value": hex(&0x0102u64.to_le_bytes())}])
    );
}
