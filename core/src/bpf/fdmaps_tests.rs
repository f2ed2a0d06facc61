use alloc::vec::Vec;

use super::*;
use crate::synth::{GuestBuilder, MapSpec, ProgSpec, SyntheticGuest};

fn guest() -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(MapSpec::array(1, "inner", 8, 2))
        .add_map(MapSpec::hash(2, "inner_h", 4, 4, 4))
        .add_map(
            MapSpec::new(3, MapType::PROG_ARRAY, "jumps", 4, 4, 70)
                .fd_slot(&0u32.to_le_bytes(), 10)
                .fd_slot(&65u32.to_le_bytes(), 11)
                .fd_slot(&69u32.to_le_bytes(), 10),
        )
        .add_map(
            MapSpec::new(4, MapType::ARRAY_OF_MAPS, "outer", 4, 4, 3)
                .fd_slot(&2u32.to_le_bytes(), 1)
                .fd_slot(&0u32.to_le_bytes(), 2),
        )
        .add_map(
            MapSpec::new(5, MapType::HASH_OF_MAPS, "outer_h", 6, 4, 8)
                .fd_slot(b"abcdef", 2)
                .fd_slot(b"zzzzzz", 99),
        )
        .add_prog(ProgSpec::new(10, "tail0"))
        .add_prog(ProgSpec::new(11, "tail1"));
    b.build()
}

fn slots(g: &SyntheticGuest, id: u32) -> Result<Vec<(Vec<u8>, u32)>> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let mut key = alloc::vec![0u8; map.key_size as usize];
    let mut out = Vec::new();
    let n = bpf.for_each_fd_slot(&map, &mut key, |k, id| {
        out.push((k.to_vec(), id));
        ControlFlow::Continue(())
    })?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

fn idx(i: u32) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

#[test]
fn prog_array_slots_are_program_ids_in_index_order() {
    let g = guest();
    // Across a batch boundary (64 slots), empty slots skipped.
    assert_eq!(
        slots(&g, 3).unwrap(),
        [(idx(0), 10), (idx(65), 11), (idx(69), 10)]
    );
}

#[test]
fn map_in_map_slots_are_inner_map_ids() {
    let g = guest();
    assert_eq!(slots(&g, 4).unwrap(), [(idx(0), 2), (idx(2), 1)]);
    let mut h = slots(&g, 5).unwrap();
    h.sort();
    assert_eq!(h, [(b"abcdef".to_vec(), 2), (b"zzzzzz".to_vec(), 99)]);
}

#[test]
fn the_generic_walk_hands_the_ids_as_values() {
    let g = guest();
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(3).unwrap().unwrap();
    let lens = bpf.entry_buffer_lens(&map, 1).unwrap();
    assert_eq!((lens.key, lens.value), (4, 4));
    let (mut k, mut v) = ([0u8; 4], [0u8; 4]);
    let mut seen = Vec::new();
    bpf.for_each_entry(
        &map,
        None::<&crate::bpf::PerCpuOffsets<Vec<u64>>>,
        &mut k,
        &mut v,
        |k, v| {
            if let crate::bpf::EntryValue::Single(v) = v {
                seen.push((k.to_vec(), v.to_vec()));
            }
            ControlFlow::Break(())
        },
    )
    .unwrap();
    assert_eq!(seen, [(idx(0), 10u32.to_le_bytes().to_vec())]);
}

#[test]
fn a_bad_slot_or_type_is_an_error() {
    let mut g = guest();
    let a = g.layout.array.unwrap();
    let slot = g.pa_of(Kva(g.maps[3].kva.0 + u64::from(a.value) + 8));
    g.ram.write_u64(slot, 0x1234);
    assert!(matches!(
        slots(&g, 4),
        Err(Error::Corrupt {
            what: "map-in-map slot (not a kernel pointer)",
            value: 0x1234,
            ..
        })
    ));
    assert!(matches!(
        slots(&g, 1),
        Err(Error::WrongMapType { id: 1, .. })
    ));
    // Without the program layout, a PROG_ARRAY cannot be read.
    let layout = crate::layout::KernelLayout {
        prog: None,
        ..g.layout
    };
    let view = g.view();
    let bpf = Bpf::new(&view, &layout, g.map_idr);
    let map = bpf.map_by_id(3).unwrap().unwrap();
    assert_eq!(
        bpf.for_each_fd_slot(&map, &mut [0; 4], |_, _| ControlFlow::Continue(())),
        Err(Error::LayoutMissing { what: "bpf_prog" })
    );
    assert!(matches!(
        bpf.for_each_fd_slot(&map, &mut [0; 3], |_, _| ControlFlow::Continue(())),
        Err(Error::BufferSize { need: 4, have: 3 })
    ));
}
