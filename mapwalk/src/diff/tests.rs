use std::time::{Duration, UNIX_EPOCH};

use mapwalk_core::bpf::MapName;
use mapwalk_core::MapType;

use super::*;
use crate::btf::reader::Kind;
use crate::snapshot::{BtfBlob, KernelIdentity, StoredBtf, StoredEntry, StoredProgs};
use crate::source::MapState;

fn info(id: u32, name: &str, t: MapType) -> MapInfo {
    let mut field = [0u8; 16];
    field[..name.len()].copy_from_slice(name.as_bytes());
    MapInfo {
        id,
        map_type: t,
        name: MapName::from_field(&field),
        key_size: 4,
        value_size: 8,
        max_entries: 16,
        ..MapInfo::default()
    }
}

fn single(k: u32, v: u64) -> StoredEntry {
    StoredEntry {
        key: k.to_le_bytes().to_vec(),
        value: StoredValue::Single(v.to_le_bytes().to_vec()),
    }
}

fn map(info: MapInfo, entries: Vec<StoredEntry>) -> StoredMap {
    StoredMap {
        info,
        state: MapState::default(),
        btf: StoredBtf::None,
        entries,
        error: None,
    }
}

fn snap(boot: &str, maps: Vec<StoredMap>) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            kernel: KernelIdentity {
                release: Some("6.1.0".into()),
                boot: Some(boot.into()),
            },
            source: "test".into(),
            taken: UNIX_EPOCH + Duration::from_secs(1),
        },
        base_btf: None,
        btfs: Vec::new(),
        unlisted: Vec::new(),
        maps,
        progs: StoredProgs::NotRead("not asked for".into()),
    }
}

fn none(_: &MapInfo) -> Option<MapBtf> {
    None
}

#[test]
fn entries_added_removed_and_changed_are_exactly_those() {
    let a = snap(
        "b1",
        vec![map(
            info(1, "h", MapType::HASH),
            vec![single(1, 10), single(2, 20), single(3, 30)],
        )],
    );
    let b = snap(
        "b1",
        vec![map(
            info(1, "h", MapType::HASH),
            vec![single(3, 31), single(1, 10), single(4, 40)],
        )],
    );
    let d = diff(&a, &b, &[], &none);
    assert!(d.same_boot);
    assert!(!d.is_equal());
    let m = &d.maps[0];
    assert_eq!(m.matched_by, MatchedBy::Id);
    let ops: Vec<(&str, Vec<u8>)> = m
        .changes
        .iter()
        .map(|c| {
            let op = match c {
                EntryChange::Added { .. } => "added",
                EntryChange::Removed { .. } => "removed",
                EntryChange::Changed { .. } => "changed",
            };
            (op, c.key().to_vec())
        })
        .collect();
    assert_eq!(
        ops,
        [
            ("removed", 2u32.to_le_bytes().to_vec()),
            ("changed", 3u32.to_le_bytes().to_vec()),
            ("added", 4u32.to_le_bytes().to_vec()),
        ]
    );
    assert!(diff(&a, &a, &[], &none).is_equal());
}

#[test]
fn across_boots_maps_match_by_shape_and_ambiguity_is_reported() {
    let a = snap(
        "b1",
        vec![
            map(info(1, "one", MapType::HASH), vec![single(1, 1)]),
            map(info(2, "twin", MapType::ARRAY), vec![]),
            map(info(3, "twin", MapType::ARRAY), vec![]),
            map(info(4, "old", MapType::ARRAY), vec![]),
        ],
    );
    let b = snap(
        "b2",
        vec![
            map(info(11, "one", MapType::HASH), vec![single(1, 2)]),
            map(info(12, "twin", MapType::ARRAY), vec![]),
            map(info(13, "twin", MapType::ARRAY), vec![]),
            map(info(14, "new", MapType::ARRAY), vec![]),
        ],
    );
    let d = diff(&a, &b, &[], &none);
    assert!(!d.same_boot);
    let mut t = Vec::new();
    text::write_diff(&mut t, &d, text::Style::default()).unwrap();
    let t = String::from_utf8(t).unwrap();
    assert!(
        t.contains("note: not known to be one boot: maps matched by name, type and sizes"),
        "{t}"
    );
    assert!(t.contains("? maps named \"twin\" (array, key 4 bytes, value 8 bytes): ids [2, 3] in A, [12, 13] in B: ambiguous, not compared"), "{t}");
    assert!(
        t.ends_with(
            "different: 1 changed entries in 1 maps, 1 maps added, 1 removed, 1 ambiguous\n"
        ),
        "{t}"
    );
    // Another kernel: the same best-effort matching, said so.
    let mut other = b.clone();
    other.meta.kernel.release = Some("6.12.0".into());
    let d2 = diff(&a, &other, &[], &none);
    assert_eq!((d2.maps.len(), d2.ambiguous.len()), (1, 1));
    let mut t = Vec::new();
    text::write_diff(&mut t, &d2, text::Style::default()).unwrap();
    assert!(String::from_utf8(t)
        .unwrap()
        .contains("note: different kernels"));
    assert_eq!(d.maps.len(), 1);
    assert_eq!((d.maps[0].a.id, d.maps[0].b.id), (1, 11));
    assert_eq!(d.maps[0].matched_by, MatchedBy::Shape);
    assert_eq!(d.ambiguous.len(), 1);
    assert_eq!(
        (d.ambiguous[0].ids_a.clone(), d.ambiguous[0].ids_b.clone()),
        (vec![2, 3], vec![12, 13])
    );
    assert_eq!(d.added.iter().map(|m| m.id).collect::<Vec<_>>(), [14]);
    assert_eq!(d.removed.iter().map(|m| m.id).collect::<Vec<_>>(), [4]);
    // Selecting maps leaves the others out.
    let d = diff(&a, &b, &[MapSelector::parse("one")], &none);
    assert!(d.ambiguous.is_empty() && d.added.is_empty() && d.removed.is_empty());
    assert_eq!(d.change_count(), 1);
    // Within one boot, the same ids are the same maps.
    let b1 = snap("b1", vec![map(info(2, "twin", MapType::ARRAY), vec![])]);
    let d = diff(&a, &b1, &[], &none);
    assert!(d.ambiguous.is_empty());
    assert_eq!(d.maps[0].a.id, 2);
    assert_eq!(
        d.removed.iter().map(|m| m.id).collect::<Vec<_>>(),
        [1, 3, 4]
    );
}

#[test]
fn btf_fields_and_cpus_that_changed_are_named() {
    // struct s { u32 a; u32 b; } in split-free BTF.
    let mut t = crate::btf::testing::Builder::new();
    let u32_t = t.int("u32", 4);
    let s = t.agg(
        Kind::STRUCT,
        "s",
        false,
        8,
        &[("a", u32_t, 0), ("b", u32_t, 32)],
    );
    let raw = t.bytes();
    let mut m_info = info(5, "pc", MapType::PERCPU_ARRAY);
    m_info.btf_value_type_id = s;
    let val = |a: u32, b: u32| {
        let mut v = a.to_le_bytes().to_vec();
        v.extend_from_slice(&b.to_le_bytes());
        v
    };
    let entry = |c1: Vec<u8>| StoredEntry {
        key: 0u32.to_le_bytes().to_vec(),
        value: StoredValue::PerCpu(vec![(0, val(1, 2)), (1, c1)]),
    };
    let mut ma = map(m_info, vec![entry(val(3, 4))]);
    ma.btf = StoredBtf::Index(0);
    let mut mb = ma.clone();
    mb.entries = vec![entry(val(3, 9))];
    let mut a = snap("b", vec![ma]);
    a.btfs.push(BtfBlob {
        split: false,
        bytes: raw,
    });
    let mut b = snap("b", vec![mb]);
    b.btfs = a.btfs.clone();
    let (sa, sb) = (SnapshotSource::new(a), SnapshotSource::new(b));
    let d = diff_sources(&sa, &sb, &[]);
    let EntryChange::Changed { fields, .. } = &d.maps[0].changes[0] else {
        panic!("{d:?}")
    };
    assert_eq!(
        fields,
        &[FieldChange {
            cpu: Some(1),
            path: ".b".into(),
            old: serde_json::json!(4),
            new: serde_json::json!(9),
        }]
    );
    let mut text = Vec::new();
    text::write_diff(&mut text, &d, text::Style::default()).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("      cpu 1 .b: 4 -> 9"), "{text}");
    let j = json::diff_json(&d);
    assert_eq!(j["maps"][0]["changes"][0]["fields"][0]["field"], ".b");
    assert_eq!(j["equal"], false);
}

#[test]
fn storage_changes_name_their_owner() {
    use mapwalk_core::bpf::storage::{OwnerDesc, OwnerKind, StorageOwner, TaskOwner};
    use mapwalk_core::Kva;

    let mut comm = [0u8; 16];
    comm[..4].copy_from_slice(b"init");
    let owner = StorageOwner {
        kind: OwnerKind::Task,
        kva: Kva(0xffff_8880_0123_4000),
        desc: Some(OwnerDesc::Task(TaskOwner {
            pid: 1,
            tgid: 1,
            comm,
        })),
    };
    let mut key = vec![0u8; OwnerKind::Task.record_len()];
    owner.write_record(&mut key).unwrap();
    let c = EntryChange::Added {
        key: key.clone(),
        value: StoredValue::Single(vec![7, 0, 0, 0]),
    };
    let j = json::change_json(MapType::TASK_STORAGE, &c);
    assert_eq!(j["op"], "added");
    assert_eq!(j["owner"]["kind"], "task");
    assert_eq!(j["owner"]["pid"], 1);
    assert_eq!(j["owner"]["comm"], "init");
    assert_eq!(j["owner"]["address"], "0xffff888001234000");
    // Any other map type: the same bytes are a key, no owner.
    assert!(json::change_json(MapType::HASH, &c).get("owner").is_none());
    let lines = text::change_lines(MapType::TASK_STORAGE, &c, text::Style { colour: false });
    assert_eq!(
        lines,
        ["  + owner task pid 1 tgid 1 comm init at 0xffff888001234000: 07 00 00 00"]
    );
    assert!(
        text::change_lines(MapType::HASH, &c, text::Style { colour: false })[0]
            .starts_with("  + key 01 ")
    );
}
