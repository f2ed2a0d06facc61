//! Tests of the STRUCT_OPS reader over synthetic guests.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, EntryValue, MapType, PerCpuOffsets, StructOpsState};
use crate::error::{Error, Result};
use crate::layout::KernelLayout;
use crate::limits::MAX_STRUCT_OPS_FUNCS;
use crate::synth::{
    default_layout, GuestBuilder, MapSpec, ProgSpec, StructOpsSpec, SyntheticGuest,
};

/// A 256-byte `bpf_struct_ops_tcp_congestion_ops` as user space wrote it, the kernel
/// having put program ids 7 and 9 in two function-pointer slots (`data` at 64).
fn uvalue() -> Vec<u8> {
    let mut v = vec![0u8; 256];
    v[64 + 8..64 + 16].copy_from_slice(&7u64.to_le_bytes());
    v[64 + 40..64 + 48].copy_from_slice(&9u64.to_le_bytes());
    v[64 + 0x90..64 + 0x95].copy_from_slice(b"mw_ca");
    v
}

fn ops(state: u32) -> StructOpsSpec {
    StructOpsSpec {
        state,
        kvalue_refcnt: 1,
        map_refcnts: (5, 3),
        uvalue: uvalue(),
        link_progs: vec![7, 9],
        funcs_cnt: None,
    }
}

fn guest_with(layout: KernelLayout, spec: MapSpec) -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false).layout(layout);
    b.add_map(spec)
        .add_prog(ProgSpec::new(7, "mw_ssthresh"))
        .add_prog(ProgSpec::new(9, "mw_cong_avoid"));
    b.build()
}

fn guest(state: u32) -> SyntheticGuest {
    guest_with(
        default_layout(),
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(ops(state)),
    )
}

/// Every (key, value) of map 1 through the generic entry walk.
fn entries(g: &SyntheticGuest) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let lens = bpf.entry_buffer_lens(&map, 0)?;
    let (mut key, mut value) = (vec![0xaa; lens.key], vec![0xaa; lens.value]);
    let mut out = Vec::new();
    bpf.for_each_entry(
        &map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let EntryValue::Single(v) = v else {
                panic!("per-CPU value from a struct_ops map")
            };
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        },
    )?;
    Ok(out)
}

fn progs(g: &SyntheticGuest, members: u32) -> Result<Vec<(u32, u32, alloc::string::String)>> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let mut out = Vec::new();
    let n = bpf.for_each_struct_ops_prog(&map, members, |p| {
        out.push((p.index, p.id, p.name.to_string()));
        ControlFlow::Continue(())
    })?;
    assert_eq!(n as usize, out.len());
    Ok(out)
}

#[test]
fn a_registered_struct_reads_as_its_lookup() {
    let got = entries(&guest(1)).unwrap();
    let mut want = uvalue();
    // state INUSE at 4, kvalue's refcnt (6.1) at 0.
    want[0..4].copy_from_slice(&1u32.to_le_bytes());
    want[4..8].copy_from_slice(&1u32.to_le_bytes());
    assert_eq!(got, [(vec![0, 0, 0, 0], want)]);
}

#[test]
fn state_init_reads_as_zeros() {
    let got = entries(&guest(0)).unwrap();
    assert_eq!(got, [(vec![0, 0, 0, 0], vec![0u8; 256])]);
}

#[test]
fn after_6_4_the_refcnt_is_the_maps_refcnt_less_its_users() {
    let mut layout = default_layout();
    layout.struct_ops.as_mut().unwrap().refcnt_retired = true;
    let spec = |refs| {
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(StructOpsSpec {
            map_refcnts: refs,
            ..ops(3)
        })
    };
    // kvalue's refcnt (1) is not read.
    let got = entries(&guest_with(layout, spec((5, 3)))).unwrap();
    assert_eq!(got[0].1[..8], [2, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(got[0].1[8..], uvalue()[8..]);
    // More users than references: clamped at 0, as the kernel does.
    let got = entries(&guest_with(layout, spec((1, 4)))).unwrap();
    assert_eq!(got[0].1[..8], [0, 0, 0, 0, 3, 0, 0, 0]);
}

#[test]
fn a_zero_kvalue_refcnt_is_a_retired_one() {
    // A 6.1 layout (no bpf_struct_ops_link), the kernel having taken the change: a
    // registered struct whose own refcnt is 0 reports the map's.
    let spec = |own| {
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(StructOpsSpec {
            kvalue_refcnt: own,
            map_refcnts: (2, 1),
            ..ops(1)
        })
    };
    let got = entries(&guest_with(default_layout(), spec(0))).unwrap();
    assert_eq!(got[0].1[..8], [1, 0, 0, 0, 1, 0, 0, 0]);
    let got = entries(&guest_with(default_layout(), spec(7))).unwrap();
    assert_eq!(got[0].1[..8], [7, 0, 0, 0, 1, 0, 0, 0]);
}

#[test]
fn the_links_lead_to_the_programs_in_order() {
    let g = guest(1);
    assert_eq!(
        progs(&g, 20).unwrap(),
        [(0, 7, "mw_ssthresh".into()), (1, 9, "mw_cong_avoid".into())]
    );
    // Only as many slots as the struct has members.
    assert_eq!(progs(&g, 1).unwrap(), [(0, 7, "mw_ssthresh".into())]);
    // A program the guest's prog_idr lacks still names itself.
    let g = guest_with(
        default_layout(),
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(StructOpsSpec {
            link_progs: vec![40],
            ..ops(1)
        }),
    );
    assert_eq!(progs(&g, 20).unwrap(), [(0, 40, "sops_40".into())]);
}

#[test]
fn links_by_member_skip_empty_slots_and_packed_links_end_at_one() {
    // 6.1: slot i is member i's; members 1 and 2 have no program.
    let spec = |funcs_cnt| {
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(StructOpsSpec {
            link_progs: vec![7, 0, 0, 9],
            funcs_cnt,
            ..ops(1)
        })
    };
    let g = guest_with(default_layout(), spec(None));
    assert_eq!(
        progs(&g, 20).unwrap(),
        [(0, 7, "mw_ssthresh".into()), (3, 9, "mw_cong_avoid".into())]
    );
    // 6.9+: packed, so an empty slot ends them.
    let mut layout = default_layout();
    layout.struct_ops.as_mut().unwrap().funcs_cnt = Some(380);
    let g = guest_with(layout, spec(Some(4)));
    assert_eq!(progs(&g, 0).unwrap(), [(0, 7, "mw_ssthresh".into())]);
}

#[test]
fn funcs_cnt_is_capped_at_the_kernels_member_limit() {
    let mut layout = default_layout();
    // Free bytes of the synthetic 6.1 map struct, past `kvalue`'s header.
    layout.struct_ops.as_mut().unwrap().funcs_cnt = Some(380);
    let spec = |n| {
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(StructOpsSpec {
            funcs_cnt: Some(n),
            ..ops(1)
        })
    };
    let g = guest_with(layout, spec(MAX_STRUCT_OPS_FUNCS));
    assert_eq!(progs(&g, 0).unwrap().len(), 2);
    let g = guest_with(layout, spec(MAX_STRUCT_OPS_FUNCS + 1));
    assert_eq!(
        progs(&g, 0),
        Err(Error::LimitExceeded {
            what: "struct_ops function pointers",
            limit: u64::from(MAX_STRUCT_OPS_FUNCS),
            at: u64::from(MAX_STRUCT_OPS_FUNCS) + 1,
        })
    );
    // The caller's member count is capped the same way.
    let g = guest(1);
    assert!(progs(&g, MAX_STRUCT_OPS_FUNCS).is_ok());
    assert!(matches!(
        progs(&g, MAX_STRUCT_OPS_FUNCS + 1),
        Err(Error::LimitExceeded { .. })
    ));
}

#[test]
fn corrupt_state_uvalue_and_shapes_are_typed_errors() {
    // A state past READY.
    let g = guest(4);
    let map_kva = g.maps[0].kva;
    assert_eq!(
        entries(&g),
        Err(Error::Corrupt {
            what: "bpf_struct_ops_value.state (not a bpf_struct_ops_state)",
            at: Kva(map_kva.0 + 384 + 4),
            value: 4,
        })
    );
    // Registered, but no uvalue.
    let g = guest_with(
        default_layout(),
        MapSpec::new(1, MapType::STRUCT_OPS, "mw_ca", 4, 256, 1).struct_ops(StructOpsSpec {
            uvalue: Vec::new(),
            ..ops(1)
        }),
    );
    assert_eq!(
        entries(&g),
        Err(Error::Corrupt {
            what: "bpf_struct_ops_map.uvalue (not a kernel pointer)",
            at: Kva(g.maps[0].kva.0 + 328),
            value: 0,
        })
    );
    // A value too small to hold the state.
    let g = guest_with(
        default_layout(),
        MapSpec::new(1, MapType::STRUCT_OPS, "tiny", 4, 4, 1).struct_ops(StructOpsSpec {
            uvalue: vec![0; 4],
            ..ops(1)
        }),
    );
    assert!(matches!(entries(&g), Err(Error::Corrupt { .. })));
    // Two entries are no struct_ops map.
    let g = guest_with(
        default_layout(),
        MapSpec::new(1, MapType::STRUCT_OPS, "two", 4, 256, 2).struct_ops(ops(1)),
    );
    assert!(matches!(entries(&g), Err(Error::Corrupt { .. })));
}

#[test]
fn wrong_type_missing_layout_and_bad_buffer() {
    let g = guest(1);
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert_eq!(
        bpf.struct_ops_value(&map, &mut [0u8; 255]),
        Err(Error::BufferSize {
            need: 256,
            have: 255
        })
    );
    let mut value = [0u8; 256];
    assert_eq!(
        bpf.struct_ops_value(&map, &mut value),
        Ok(StructOpsState {
            state: 1,
            refcnt: 1
        })
    );
    let mut other = map;
    other.map_type = MapType::ARRAY;
    assert!(matches!(
        bpf.struct_ops_value(&other, &mut value),
        Err(Error::WrongMapType { .. })
    ));
    let mut bare = g.layout;
    bare.struct_ops = None;
    let bpf = Bpf::new(&view, &bare, g.map_idr);
    assert_eq!(
        bpf.struct_ops_value(&map, &mut value),
        Err(Error::LayoutMissing {
            what: "bpf_struct_ops_map"
        })
    );
}
