//! Dumps compared with `bpftool -j map dump` and with what the test wrote.

use std::collections::BTreeMap;

use mapwalk_live::sys::{MapCreate, BPF_F_NO_PREALLOC};
use mapwalk_live::{
    CpuValue, DumpMode, DumpOptions, Errno, Error, HostCpus, Kva, LiveMap, MapType, Update, Value,
    Walk,
};

use crate::common::{bpftool_dump, create, need_root, need_root_and_bpftool, pattern, type_name};

const BPF_F_MMAPABLE: u32 = 1 << 10;

fn cpus() -> HostCpus {
    HostCpus::read().expect("possible CPUs")
}

/// The key of element `i` for a map with `key_size`-byte keys: `i` first, then noise.
fn key_for(t: MapType, i: u32, key_size: u32) -> Vec<u8> {
    if matches!(t, MapType::ARRAY | MapType::PERCPU_ARRAY) {
        return i.to_ne_bytes().to_vec();
    }
    let mut k = pattern(u64::from(i) + 1_000_000, key_size as usize);
    k[..4].copy_from_slice(&i.to_le_bytes());
    k
}

/// Writes `count` elements and returns what was written.
fn fill(map: &LiveMap, count: u32) -> BTreeMap<Vec<u8>, Value> {
    let info = *map.info();
    let cpus = cpus();
    let mut written = BTreeMap::new();
    for i in 0..count {
        let key = key_for(info.map_type, i, info.key_size);
        let value = if info.map_type.is_percpu() {
            let copies: Vec<Vec<u8>> = cpus
                .ids()
                .iter()
                .map(|&c| pattern(u64::from(i) * 1000 + u64::from(c), info.value_size as usize))
                .collect();
            let refs: Vec<&[u8]> = copies.iter().map(Vec::as_slice).collect();
            map.update_percpu(&key, &refs, Update::Any)
                .expect("update_percpu");
            Value::PerCpu(
                cpus.ids()
                    .iter()
                    .zip(copies)
                    .map(|(&cpu, bytes)| CpuValue { cpu, bytes })
                    .collect(),
            )
        } else {
            let v = pattern(u64::from(i), info.value_size as usize);
            map.update(&key, &v, Update::Any).expect("update");
            Value::Single(v)
        };
        written.insert(key, value);
    }
    written
}

fn ours(map: &LiveMap, mode: DumpMode) -> (BTreeMap<Vec<u8>, Value>, mapwalk_live::DumpStats) {
    let dump = map
        .dump(DumpOptions::mode(mode))
        .unwrap_or_else(|e| panic!("dump {mode:?}: {e}"));
    let n = dump.entries.len();
    let m: BTreeMap<_, _> = dump.entries.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(m.len(), n, "a key appeared twice in one {mode:?} pass");
    (m, dump.stats)
}

struct Case {
    t: MapType,
    key: u32,
    value: u32,
    max: u32,
    fill: u32,
}

fn check_case(tool: &str, c: &Case) {
    let name = format!("mw_{}", type_name(c.t));
    let map = create(&MapCreate::new(c.t, &name, c.key, c.value, c.max));
    let written = fill(&map, c.fill);
    let reference = bpftool_dump(tool, map.id());
    let is_array = matches!(c.t, MapType::ARRAY | MapType::PERCPU_ARRAY);
    let is_lru = matches!(c.t, MapType::LRU_HASH | MapType::LRU_PERCPU_HASH);

    for mode in [DumpMode::Auto, DumpMode::Batch, DumpMode::NextKey] {
        let (got, stats) = ours(&map, mode);
        assert_eq!(
            got, reference,
            "{}: {mode:?} dump differs from bpftool",
            c.t
        );
        let want_walk = if mode == DumpMode::NextKey {
            Walk::NextKey
        } else {
            Walk::Batch
        };
        assert_eq!(stats.walk, want_walk, "{}: {mode:?}", c.t);
        eprintln!(
            "{}: {mode:?}: {} entries, {} syscalls",
            c.t, stats.entries, stats.syscalls
        );
    }
    // And with what was written: every written key (all of them unless LRU evicted
    // some), with its value; arrays also hold the unwritten indexes, zeroed.
    let (got, _) = ours(&map, DumpMode::Auto);
    for (k, v) in &got {
        match written.get(k) {
            Some(w) => assert_eq!(v, w, "{}: value of key {k:02x?}", c.t),
            None => {
                assert!(is_array, "{}: key {k:02x?} was never written", c.t);
                let zero = match v {
                    Value::Single(b) => b.iter().all(|&x| x == 0),
                    Value::PerCpu(cs) => cs.iter().all(|c| c.bytes.iter().all(|&x| x == 0)),
                };
                assert!(zero, "{}: unwritten index {k:02x?} is not zero", c.t);
            }
        }
    }
    if is_lru {
        assert!(got.len() * 2 >= written.len(), "{}: LRU kept too few", c.t);
    } else if is_array {
        assert_eq!(got.len(), c.max as usize);
    } else {
        assert_eq!(got.len(), written.len(), "{}", c.t);
    }
    // Point lookups agree too.
    for (k, v) in written.iter().take(20) {
        if let Some(found) = map.lookup(k).expect("lookup") {
            assert_eq!(&found, v);
        } else {
            assert!(is_lru, "{}: lookup lost key {k:02x?}", c.t);
        }
    }
}

#[test]
fn dumps_match_bpftool_for_every_key_value_type() {
    let Some(tool) = need_root_and_bpftool("dumps::dumps_match_bpftool_for_every_key_value_type")
    else {
        return;
    };
    // Odd key and value sizes, so that per-CPU padding (round_up(value, 8)) and
    // unaligned keys are exercised.
    let cases = [
        Case {
            t: MapType::ARRAY,
            key: 4,
            value: 12,
            max: 64,
            fill: 60,
        },
        Case {
            t: MapType::HASH,
            key: 6,
            value: 20,
            max: 1024,
            fill: 700,
        },
        Case {
            t: MapType::LRU_HASH,
            key: 8,
            value: 16,
            max: 1024,
            fill: 300,
        },
        Case {
            t: MapType::PERCPU_ARRAY,
            key: 4,
            value: 12,
            max: 40,
            fill: 33,
        },
        Case {
            t: MapType::PERCPU_HASH,
            key: 5,
            value: 12,
            max: 512,
            fill: 400,
        },
        Case {
            t: MapType::LRU_PERCPU_HASH,
            key: 12,
            value: 3,
            max: 1024,
            fill: 200,
        },
    ];
    for c in &cases {
        check_case(tool, c);
    }
}

#[test]
fn mmapable_array_matches_bpftool_and_lookups() {
    let test = "dumps::mmapable_array_matches_bpftool_and_lookups";
    let Some(tool) = need_root_and_bpftool(test) else {
        return;
    };
    let map = create(&MapCreate::new(MapType::ARRAY, "mw_mmap", 4, 20, 300).flags(BPF_F_MMAPABLE));
    let written = fill(&map, 290);
    let mm = map.mmap_array().expect("mmap");
    assert_eq!(mm.len(), 300);
    let values = mm.values().expect("values");
    let reference = bpftool_dump(tool, map.id());
    assert_eq!(reference.len(), 300);
    for (i, v) in values.iter().enumerate() {
        let key = (i as u32).to_ne_bytes().to_vec();
        assert_eq!(
            Some(&Value::Single(v.clone())),
            reference.get(&key),
            "index {i}"
        );
        assert_eq!(mm.value(i as u32).expect("value"), *v);
        if let Some(w) = written.get(&key) {
            assert_eq!(&Value::Single(v.clone()), w);
        }
    }
    // An update through the syscall is visible through the mapping.
    let fresh = pattern(777, 20);
    map.update(&5u32.to_ne_bytes(), &fresh, Update::Exist)
        .expect("update");
    assert_eq!(mm.value(5).expect("value"), fresh);
    assert!(mm.value(300).is_err());
    // A plain array cannot be mapped.
    let plain = create(&MapCreate::new(MapType::ARRAY, "mw_plain", 4, 8, 4));
    assert!(matches!(plain.mmap_array(), Err(Error::Unsupported { .. })));
}

#[test]
fn lpm_trie_matches_bpftool_in_every_mode() {
    let Some(tool) = need_root_and_bpftool("dumps::lpm_trie_matches_bpftool_in_every_mode") else {
        return;
    };
    let map =
        create(&MapCreate::new(MapType::LPM_TRIE, "mw_lpm", 8, 8, 64).flags(BPF_F_NO_PREALLOC));
    for i in 0..20u32 {
        let mut key = (8 + i).to_ne_bytes().to_vec(); // prefixlen
        key.extend_from_slice(&[10, i as u8, 3, 4]);
        map.update(&key, &pattern(u64::from(i), 8), Update::Any)
            .expect("update");
    }
    let reference = bpftool_dump(tool, map.id());
    assert_eq!(reference.len(), 20);
    for mode in [DumpMode::Auto, DumpMode::NextKey] {
        assert_eq!(ours(&map, mode).0, reference, "{mode:?}");
    }
}

#[test]
fn prog_array_falls_back_to_next_key() {
    use mapwalk_live::sys::{self, Insn, PROG_TYPE_SOCKET_FILTER};
    use std::os::fd::{AsFd, AsRawFd};
    let Some(tool) = need_root_and_bpftool("dumps::prog_array_falls_back_to_next_key") else {
        return;
    };
    // PROG_ARRAY has no BPF_MAP_LOOKUP_BATCH; its values read back as program ids.
    let map = create(&MapCreate::new(MapType::PROG_ARRAY, "mw_progs", 4, 4, 8));
    let insns = [
        Insn {
            code: 0xb7,
            regs: 0,
            off: 0,
            imm: 0,
        }, // r0 = 0
        Insn {
            code: 0x95,
            regs: 0,
            off: 0,
            imm: 0,
        }, // exit
    ];
    let prog = sys::prog_load(PROG_TYPE_SOCKET_FILTER, "mw_nop", &insns).expect("load");
    for slot in [1u32, 5] {
        let fd = prog.as_fd().as_raw_fd() as u32;
        map.update(&slot.to_ne_bytes(), &fd.to_ne_bytes(), Update::Any)
            .expect("update");
    }
    let (got, stats) = ours(&map, DumpMode::Auto);
    assert_eq!(stats.walk, Walk::NextKey, "PROG_ARRAY has no batch lookups");
    assert!(
        stats.vanished >= 6,
        "the six empty slots look up as ENOENT: {stats:?}"
    );
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        vec![1u32.to_ne_bytes().to_vec(), 5u32.to_ne_bytes().to_vec()]
    );
    assert_eq!(got, bpftool_dump(tool, map.id()));
    assert!(matches!(
        map.dump(DumpOptions::mode(DumpMode::Batch)),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn update_flags_and_errors() {
    if !need_root("dumps::update_flags_and_errors") {
        return;
    }
    let map = create(&MapCreate::new(MapType::HASH, "mw_flags", 4, 8, 4));
    let k = 1u32.to_ne_bytes();
    let err = map.update(&k, &[0; 8], Update::Exist).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
    map.update(&k, &[1; 8], Update::NoExist).expect("create");
    let err = map.update(&k, &[2; 8], Update::NoExist).unwrap_err();
    assert_eq!(err.errno(), Some(Errno(libc::EEXIST)), "{err}");
    map.update(&k, &[3; 8], Update::Exist).expect("overwrite");
    assert_eq!(
        map.lookup(&k).expect("lookup"),
        Some(Value::Single(vec![3; 8]))
    );
    assert_eq!(map.lookup(&2u32.to_ne_bytes()).expect("lookup"), None);
    for i in 2..=4u32 {
        map.update(&i.to_ne_bytes(), &[0; 8], Update::Any)
            .expect("fill");
    }
    let err = map
        .update(&9u32.to_ne_bytes(), &[0; 8], Update::Any)
        .unwrap_err();
    assert_eq!(err.errno(), Some(Errno::E2BIG), "a full map: {err}");
    // Wrong sizes are caught before the kernel sees them.
    assert!(matches!(
        map.lookup(&[0; 3]),
        Err(Error::BufferSize { need: 4, have: 3 })
    ));
    assert!(matches!(
        map.update(&k, &[0; 9], Update::Any),
        Err(Error::BufferSize { .. })
    ));
    // Maps without keys are refused by the dump.
    let rb = create(&MapCreate::new(
        MapType::RINGBUF,
        "mw_rb_nodump",
        0,
        0,
        4096,
    ));
    assert!(matches!(
        rb.dump(DumpOptions::default()),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn update_batch_stores_every_element_and_stops_at_the_first_failure() {
    if !need_root("dumps::update_batch_stores_every_element_and_stops_at_the_first_failure") {
        return;
    }
    let map = create(&MapCreate::new(MapType::HASH, "mw_upd_batch", 4, 8, 1000));
    let keys: Vec<u8> = (0..1000u32).flat_map(u32::to_ne_bytes).collect();
    let values: Vec<u8> = (0..1000u64).flat_map(|i| (i * 7).to_ne_bytes()).collect();
    assert_eq!(map.update_batch(&keys, &values).expect("batch"), 1000);
    let dump = map.dump(DumpOptions::mode(DumpMode::Batch)).expect("dump");
    let got: BTreeMap<Vec<u8>, Value> =
        dump.entries.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(got.len(), 1000);
    for i in 0..1000u32 {
        assert_eq!(
            got[&i.to_ne_bytes().to_vec()],
            Value::Single((u64::from(i) * 7).to_ne_bytes().to_vec())
        );
    }
    // The map is full: key 5 is replaced, the new key 2000 fails, key 6 after it is
    // left alone.
    let keys2: Vec<u8> = [5u32, 2000, 6]
        .into_iter()
        .flat_map(u32::to_ne_bytes)
        .collect();
    let err = map.update_batch(&keys2, &[0xff; 24]).unwrap_err();
    assert_eq!(err.errno(), Some(Errno::E2BIG), "{err}");
    let at = |k: u32| map.lookup(&k.to_ne_bytes()).expect("lookup");
    assert_eq!(at(5), Some(Value::Single(vec![0xff; 8])));
    assert_eq!(at(2000), None);
    assert_eq!(at(6), Some(Value::Single(42u64.to_ne_bytes().to_vec())));
    // Nothing to store is no call; a partial key or a missing value is caught here.
    assert_eq!(map.update_batch(&[], &[]).expect("empty"), 0);
    assert!(matches!(
        map.update_batch(&keys[..6], &values[..8]),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        map.update_batch(&keys[..8], &values[..8]),
        Err(Error::BufferSize { .. })
    ));
}

#[test]
fn enumeration_finds_created_maps_and_skips_freed_ones() {
    if !need_root("dumps::enumeration_finds_created_maps_and_skips_freed_ones") {
        return;
    }
    let a = create(&MapCreate::new(MapType::HASH, "mw_enum_a", 4, 8, 16));
    let b = create(&MapCreate::new(
        MapType::PERCPU_ARRAY,
        "mw_enum_b",
        4,
        12,
        8,
    ));
    let freed = create(&MapCreate::new(MapType::ARRAY, "mw_enum_gone", 4, 8, 1));
    let freed_id = freed.id();
    drop(freed);
    let ids: Vec<u32> = mapwalk_live::map_ids().map(|r| r.expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let all = mapwalk_live::maps().expect("maps");
    let find = |id: u32| all.iter().find(|m| m.id() == id).map(|m| *m.info());
    let ia = find(a.id()).expect("map a listed");
    assert_eq!(ia, *a.info());
    assert_eq!(ia.name.as_str(), Some("mw_enum_a"));
    assert_eq!(
        (ia.map_type, ia.key_size, ia.value_size, ia.max_entries),
        (MapType::HASH, 4, 8, 16)
    );
    let ib = find(b.id()).expect("map b listed");
    assert_eq!(ib.map_type, MapType::PERCPU_ARRAY);
    assert_eq!(
        (ib.id, ib.value_size, ib.kva, ib.btf, ib.from_memory()),
        (b.id(), 12, Kva::NULL, Kva::NULL, false)
    );
    // The freed map is gone (its release is deferred: wait for it).
    let mut gone = false;
    for _ in 0..200 {
        if LiveMap::open(freed_id).expect("open").is_none() {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(gone, "map {freed_id} still opens after its last fd closed");
}

#[test]
fn btf_by_id_returns_vmlinux() {
    if !need_root("dumps::btf_by_id_returns_vmlinux") {
        return;
    }
    let Ok(sysfs) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        crate::common::skip(
            "dumps::btf_by_id_returns_vmlinux",
            "/sys/kernel/btf/vmlinux (no kernel BTF)",
        );
        return;
    };
    // vmlinux is the first BTF object the kernel registers.
    let btf = mapwalk_live::btf_by_id(1).expect("btf").expect("BTF id 1");
    assert!(btf.kernel);
    assert_eq!(btf.name, "vmlinux");
    assert_eq!(&btf.bytes[..4], &[0x9f, 0xeb, 0x01, 0x00]);
    assert_eq!(btf.bytes, sysfs);
    // A map without BTF has none.
    let m = create(&MapCreate::new(MapType::ARRAY, "mw_nobtf", 4, 8, 1));
    assert!(m.btf().expect("btf").is_none());
}

#[test]
fn maps_bpf_cannot_list_are_refused_with_the_reason() {
    if !need_root("dumps::maps_bpf_cannot_list_are_refused_with_the_reason") {
        return;
    }
    for (t, key, value, why) in [
        (MapType::BLOOM_FILTER, 0, 4, "listing its bit array"),
        (MapType::PERF_EVENT_ARRAY, 4, 4, "lookups from user space"),
        (MapType::CGROUP_ARRAY, 4, 4, "lookups from user space"),
        (MapType::XSKMAP, 4, 4, "lookups from user space"),
    ] {
        let map = create(&MapCreate::new(t, "mw_unlisted", key, value, 4));
        match map.dump(DumpOptions::default()) {
            Err(Error::Unsupported { map_type, op, .. }) => {
                assert_eq!(map_type, t);
                assert!(op.starts_with(why), "{t}: {op}");
            }
            other => panic!("{t}: {other:?}"),
        }
    }
    // A DEVMAP is listed: its value is the `struct bpf_devmap_val` of each slot.
    let devmap = create(&MapCreate::new(MapType::DEVMAP, "mw_devmap", 4, 4, 4));
    devmap
        .update(&2u32.to_ne_bytes(), &1u32.to_ne_bytes(), Update::Any)
        .expect("slot 2: lo");
    let dump = devmap.dump(DumpOptions::default()).expect("devmap dump");
    let got: Vec<(Vec<u8>, Value)> = dump.entries.into_iter().map(|e| (e.key, e.value)).collect();
    assert_eq!(
        got,
        [(
            2u32.to_ne_bytes().to_vec(),
            Value::Single(1u32.to_ne_bytes().to_vec())
        )]
    );
}
