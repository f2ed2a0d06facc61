use super::*;
use crate::source::SnapshotSource;

fn sample() -> Snapshot {
    let info = MapInfo {
        id: 3,
        map_type: mapwalk_core::MapType::PERCPU_HASH,
        key_size: 2,
        value_size: 3,
        max_entries: 8,
        name: mapwalk_core::bpf::MapName::from_field(b"pcpu\0\0\0\0\0\0\0\0\0\0\0\0"),
        ..MapInfo::default()
    };
    Snapshot {
        meta: SnapshotMeta {
            kernel: KernelIdentity {
                release: Some("6.1.0-test".into()),
                boot: None,
            },
            source: "test".into(),
            taken: UNIX_EPOCH + Duration::new(1_700_000_000, 5),
        },
        base_btf: None,
        btfs: Vec::new(),
        unlisted: vec![(Some(9), "gone".into()), (None, "bad".into())],
        maps: vec![StoredMap {
            info,
            state: MapState {
                frozen: Some(true),
                memlock: None,
            },
            btf: StoredBtf::Error("map BTF: broken".into()),
            entries: vec![StoredEntry {
                key: vec![1, 2],
                value: StoredValue::PerCpu(vec![(0, vec![1, 2, 3]), (1, vec![4, 5, 6])]),
            }],
            error: Some("walk stopped".into()),
        }],
        progs: StoredProgs::Read(crate::progs::ProgReport {
            progs: vec![sample_prog()],
            errors: vec![(Some(12), "freed while read".into()), (None, "bad".into())],
        }),
    }
}

fn sample_prog() -> mapwalk_core::ProgInfo {
    let mut p = mapwalk_core::ProgInfo::default();
    p.id = 7;
    p.prog_type = mapwalk_core::ProgType(1);
    p.name = mapwalk_core::bpf::MapName::from_field(b"known\0\0\0\0\0\0\0\0\0\0\0");
    p.tag = [1, 2, 3, 4, 5, 6, 7, 8];
    p.gpl_compatible = Some(true);
    p.xlated_len = 16;
    p.jited_len = 40;
    p.uid = Some(0);
    p.btf_id = 3;
    p.set_map_ids(&[1, 12]).unwrap();
    p
}

fn bytes_of(s: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    s.write_to(&mut out).unwrap();
    out
}

#[test]
fn a_snapshot_reads_back_as_written() {
    let s = sample();
    let b = bytes_of(&s);
    assert_eq!(&b[..8], b"MWSNAP\r\n");
    assert_eq!(Snapshot::read_from(&mut b.as_slice()).unwrap(), s);
}

#[test]
fn a_snapshot_source_replays_entries_and_errors() {
    let src = SnapshotSource::new(sample());
    let maps = src.maps().unwrap();
    assert_eq!(maps.len(), 1);
    let mut seen = Vec::new();
    let err = src
        .for_each_entry(&maps[0], &mut |k, v| {
            seen.push((k.to_vec(), v.to_owned()));
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "walk stopped");
    assert_eq!(seen.len(), 1);
    let mapwalk_live::Value::PerCpu(c) = &seen[0].1 else {
        panic!("{seen:?}")
    };
    assert_eq!((c[1].cpu, c[1].bytes.as_slice()), (1, &[4u8, 5, 6][..]));
    assert_eq!(
        src.btf(&maps[0]).unwrap_err().to_string(),
        "map BTF: broken"
    );
    assert_eq!(src.state(&maps[0]).frozen, Some(true));
    assert_eq!(src.maps_report().unwrap().errors.len(), 2);
}

#[test]
fn bad_files_are_one_line_errors() {
    let good = bytes_of(&sample());
    let read = |b: &[u8]| Snapshot::read_from(&mut &b[..]).unwrap_err().to_string();
    assert_eq!(read(b"hello"), "not a mapwalk snapshot (bad magic)");
    assert_eq!(read(&good[..12]), "snapshot truncated: ends in the header");
    let mut newer = good.clone();
    newer[8] = 2;
    assert_eq!(
        read(&newer),
        "snapshot format version 2 is newer than this mapwalk reads (1): read it with a \
         newer mapwalk"
    );
    // Every cut is an error, never a panic.
    for n in 0..good.len() {
        let e = read(&good[..n]);
        assert!(!e.contains('\n'), "{e}");
    }
    // Every flipped byte is an error or a snapshot, never a panic.
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0x55;
        let _ = Snapshot::read_from(&mut b.as_slice());
    }
    // A body length over the cap is refused before anything is read.
    let mut huge = good.clone();
    huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(read(&huge).contains("over the cap"), "{}", read(&huge));
}

#[test]
fn counts_past_the_bytes_left_are_refused_before_allocating() {
    // A body claiming 2^20 maps in a few bytes.
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 0]); // no release, no boot
    body.extend_from_slice(&0u32.to_le_bytes()); // source ""
    body.extend_from_slice(&[0; 12]); // time
    body.push(0); // no base BTF
    body.extend_from_slice(&0u32.to_le_bytes()); // BTF objects
    body.extend_from_slice(&0u32.to_le_bytes()); // unlisted
    body.extend_from_slice(&(1u32 << 20).to_le_bytes()); // maps
    let mut file = Vec::new();
    file.extend_from_slice(b"MWSNAP\r\n");
    file.extend_from_slice(&1u16.to_le_bytes());
    file.extend_from_slice(&0u16.to_le_bytes());
    file.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let mut z = flate2::write::ZlibEncoder::new(file, flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &body).unwrap();
    let file = z.finish().unwrap();
    let e = Snapshot::read_from(&mut file.as_slice()).unwrap_err();
    assert_eq!(e.to_string(), "snapshot truncated: ends in the maps");
}

#[test]
fn what_reads_writes_back_the_same() {
    // Each byte of a good body changed (and compressed again): whatever still reads,
    // reads back the same once written (the fuzz target's check, over every
    // single-byte change of the body).
    let good = bytes_of(&sample());
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&good[20..]), &mut body)
        .unwrap();
    let mut read = 0;
    for i in 0..body.len() {
        for x in [0x01, 0x80, body[i]] {
            // Two bit flips, and the byte zeroed.
            let mut b = body.clone();
            b[i] ^= x;
            let mut file = good[..20].to_vec();
            let mut z = flate2::write::ZlibEncoder::new(&mut file, flate2::Compression::fast());
            std::io::Write::write_all(&mut z, &b).unwrap();
            z.finish().unwrap();
            match Snapshot::read_from(&mut file.as_slice()) {
                Ok(s) => {
                    read += 1;
                    assert_eq!(
                        Snapshot::read_from(&mut bytes_of(&s).as_slice()).unwrap(),
                        s
                    );
                }
                Err(e) => assert!(!e.to_string().contains('\n')),
            }
        }
    }
    assert!(read > 50, "{read} changed bodies read");
}
