//! Tests of the STACK_TRACE walker over synthetic guests.

use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, EntryValue, MapType, PerCpuOffsets};
use crate::error::{Error, Result};
use crate::limits::MAX_STACK_BUCKETS;
use crate::synth::{GuestBuilder, MapSpec, SyntheticGuest};

const IPS: [u64; 3] = [
    0xffff_ffff_8100_1234,
    0xffff_ffff_8120_0010,
    0xffff_ffff_81c0_0042,
];

fn guest(spec: MapSpec) -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(spec);
    b.build()
}

/// Every (key, value) of map 1 through the generic entry walk.
fn entries(g: &SyntheticGuest) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let lens = bpf.entry_buffer_lens(&map, 0)?;
    let (mut key, mut value) = (alloc::vec![0; lens.key], alloc::vec![0xaa; lens.value]);
    let mut out = Vec::new();
    bpf.for_each_entry(
        &map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let EntryValue::Single(v) = v else {
                panic!("per-CPU value from a stack map")
            };
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        },
    )?;
    Ok(out)
}

fn frames(ips: &[u64], value_size: usize) -> Vec<u8> {
    let mut v: Vec<u8> = ips.iter().flat_map(|i| i.to_le_bytes()).collect();
    v.resize(value_size, 0);
    v
}

#[test]
fn stacks_come_in_bucket_order_padded_with_zeros() {
    // max_entries 5: eight buckets; stacks in buckets 6 and 2 (laid in that order).
    let spec = MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 32, 5)
        .stack(6, &IPS)
        .stack(2, &IPS[..1]);
    let got = entries(&guest(spec)).unwrap();
    assert_eq!(
        got,
        [
            (2u32.to_le_bytes().to_vec(), frames(&IPS[..1], 32)),
            (6u32.to_le_bytes().to_vec(), frames(&IPS, 32)),
        ]
    );
}

#[test]
fn the_last_bucket_is_walked_and_break_stops() {
    let spec = MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 24, 4)
        .stack(3, &IPS)
        .stack(0, &[]);
    let g = guest(spec);
    let got = entries(&g).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (alloc::vec![0; 4], alloc::vec![0; 24]));
    assert_eq!(got[1], (3u32.to_le_bytes().to_vec(), frames(&IPS, 24)));
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let mut seen = Vec::new();
    let n = bpf
        .for_each_stack(&map, &mut [0; 24], |id, nr, _| {
            seen.push((id, nr));
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!((n, seen), (1, alloc::vec![(0, 0)]));
}

#[test]
fn build_id_frames_are_32_bytes() {
    let mut rec = [0u8; 32];
    rec[0] = 1; // BPF_STACK_BUILD_ID_VALID
    rec[4..24].copy_from_slice(&[0x5a; 20]);
    rec[24..].copy_from_slice(&0x1234u64.to_le_bytes());
    let mut spec = MapSpec::new(1, MapType::STACK_TRACE, "bid", 4, 64, 2).stack_raw(1, 1, &rec);
    spec.map_flags = 1 << 5;
    let got = entries(&guest(spec)).unwrap();
    let mut want = rec.to_vec();
    want.resize(64, 0);
    assert_eq!(got, [(1u32.to_le_bytes().to_vec(), want)]);
}

#[test]
fn frames_past_value_size_are_corrupt() {
    // value_size 16 holds two frames: nr 2 passes, nr 3 does not.
    let ok = MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 16, 2).stack(1, &IPS[..2]);
    assert_eq!(entries(&guest(ok)).unwrap()[0].1, frames(&IPS[..2], 16));
    let bad = MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 16, 2).stack(1, &IPS);
    assert!(matches!(
        entries(&guest(bad)),
        Err(Error::Corrupt {
            what: "stack_map_bucket.nr (frames past value_size)",
            value: 3,
            ..
        })
    ));
    // A huge nr neither overflows nor allocates.
    let huge = MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 16, 2).stack_raw(0, u32::MAX, &[]);
    assert!(matches!(
        entries(&guest(huge)),
        Err(Error::Corrupt {
            value: 0xffff_ffff,
            ..
        })
    ));
}

#[test]
fn n_buckets_is_checked_against_max_entries_and_the_cap() {
    let spec = MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 16, 3).stack(1, &IPS[..1]);
    let mut g = guest(spec);
    let l = g.layout.stackmap.unwrap();
    let at = g.pa_of(Kva(g.maps[0].kva.0 + u64::from(l.n_buckets)));
    // 4 is right (3 rounded up); 3 and 8 are corrupt.
    assert_eq!(entries(&g).unwrap().len(), 1);
    for bad in [3, 8] {
        g.ram.write_u32(at, bad);
        assert!(matches!(
            entries(&g),
            Err(Error::Corrupt { value, .. }) if value == u64::from(bad)
        ));
    }
    // At the cap it is only a mismatch; one past it is over the limit.
    g.ram.write_u32(at, MAX_STACK_BUCKETS);
    assert!(matches!(entries(&g), Err(Error::Corrupt { .. })));
    g.ram.write_u32(at, MAX_STACK_BUCKETS + 1);
    assert!(matches!(
        entries(&g),
        Err(Error::LimitExceeded {
            what: "stack trace map buckets",
            ..
        })
    ));
}

#[test]
fn wrong_type_buffer_and_key_size_are_refused() {
    let g = guest(MapSpec::new(1, MapType::STACK_TRACE, "st", 8, 16, 2).stack(0, &IPS[..1]));
    assert!(matches!(
        entries(&g),
        Err(Error::Corrupt {
            what: "stack trace map key_size (not 4)",
            value: 8,
            ..
        })
    ));
    let g = guest(MapSpec::new(1, MapType::STACK_TRACE, "st", 4, 16, 2));
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert!(matches!(
        bpf.for_each_stack(&map, &mut [0; 8], |_, _, _| ControlFlow::Continue(())),
        Err(Error::BufferSize { need: 16, have: 8 })
    ));
    let g = guest(MapSpec::new(1, MapType::QUEUE, "q", 0, 16, 2));
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert!(matches!(
        bpf.for_each_stack(&map, &mut [0; 16], |_, _, _| ControlFlow::Continue(())),
        Err(Error::WrongMapType { .. })
    ));
}
