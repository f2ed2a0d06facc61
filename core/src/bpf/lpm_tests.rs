use alloc::vec::Vec;

use super::*;
use crate::synth::{GuestBuilder, MapSpec, SyntheticGuest};

/// The kernel's own example (kernel/bpf/lpm_trie.c): 192.168.0.0/16 with
/// 192.168.0.0/24 and 192.168.1.0/24 below it (through an intermediate /23), and
/// 192.168.128.0/24; plus 10.0.0.0/8 and the default route 0.0.0.0/0.
fn guest() -> SyntheticGuest {
    let v = |n: u8| [n; 8].to_vec();
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(
        MapSpec::new(1, MapType::LPM_TRIE, "routes", 8, 8, 16)
            .lpm_entry(16, &[192, 168, 0, 0], &v(1))
            .lpm_entry(24, &[192, 168, 0, 0], &v(2))
            .lpm_entry(24, &[192, 168, 1, 0], &v(3))
            .lpm_entry(24, &[192, 168, 128, 0], &v(4))
            .lpm_entry(8, &[10, 0, 0, 0], &v(5))
            .lpm_entry(0, &[0, 0, 0, 0], &v(6))
            // Replaces the value of an existing prefix.
            .lpm_entry(24, &[192, 168, 1, 0], &v(7)),
    )
    .add_map(MapSpec::new(2, MapType::LPM_TRIE, "empty", 20, 4, 4));
    b.build()
}

fn walk(g: &SyntheticGuest, id: u32) -> Result<Vec<(u32, Vec<u8>, u8)>> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let mut key = alloc::vec![0u8; map.key_size as usize];
    let mut value = alloc::vec![0u8; map.value_size as usize];
    let mut out = Vec::new();
    bpf.for_each_lpm_entry(&map, &mut key, &mut value, |k, v| {
        let plen = u32::from_le_bytes(k[..4].try_into().unwrap());
        out.push((plen, k[4..].to_vec(), v[0]));
        ControlFlow::Continue(())
    })?;
    Ok(out)
}

#[test]
fn every_prefix_in_the_kernels_order() {
    let g = guest();
    // Post-order, child[0] first: as trie_get_next_key lists them.
    assert_eq!(
        walk(&g, 1).unwrap(),
        [
            (8, alloc::vec![10, 0, 0, 0], 5),
            (24, alloc::vec![192, 168, 0, 0], 2),
            (24, alloc::vec![192, 168, 1, 0], 7),
            (24, alloc::vec![192, 168, 128, 0], 4),
            (16, alloc::vec![192, 168, 0, 0], 1),
            (0, alloc::vec![0, 0, 0, 0], 6),
        ]
    );
    assert_eq!(walk(&g, 2).unwrap(), []);
}

#[test]
fn the_generic_walk_dumps_tries() {
    let g = guest();
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let (mut k, mut v) = ([0u8; 8], [0u8; 8]);
    let n = bpf
        .for_each_entry(
            &map,
            None::<&crate::bpf::PerCpuOffsets<Vec<u64>>>,
            &mut k,
            &mut v,
            |_, _| ControlFlow::Continue(()),
        )
        .unwrap();
    assert_eq!(n, 6);
}

/// The address of the root node and of its child[0].
fn root_and_child(g: &SyntheticGuest) -> (Kva, Kva) {
    let l = g.layout.lpm.unwrap();
    let view = g.view();
    let root = Kva(view
        .read_kernel_u64(Kva(g.maps[0].kva.0 + u64::from(l.root)))
        .unwrap());
    let child = Kva(view
        .read_kernel_u64(Kva(root.0 + u64::from(l.node_child)))
        .unwrap());
    (root, child)
}

#[test]
fn a_cycle_or_shrinking_prefix_is_corrupt() {
    let l = crate::synth::default_layout().lpm.unwrap();
    // child[0] of the root's child[0] points back at the root: its prefix length
    // (0) does not grow.
    let mut g = guest();
    let (root, child) = root_and_child(&g);
    let pa = g.pa_of(Kva(child.0 + u64::from(l.node_child)));
    g.ram.write_u64(pa, root.0);
    assert!(matches!(
        walk(&g, 1),
        Err(Error::Corrupt { what, .. }) if what.starts_with("lpm_trie_node.prefixlen")
    ));
    // A prefix longer than the key.
    let mut g = guest();
    let (_, child) = root_and_child(&g);
    let pa = g.pa_of(Kva(child.0 + u64::from(l.node_prefixlen)));
    g.ram.write_u32(pa, 33);
    assert!(matches!(walk(&g, 1), Err(Error::Corrupt { value: 33, .. })));
    // A bad child pointer.
    let mut g = guest();
    let (root, _) = root_and_child(&g);
    let pa = g.pa_of(Kva(root.0 + u64::from(l.node_child) + 8));
    g.ram.write_u64(pa, 0x1001);
    assert!(matches!(
        walk(&g, 1),
        Err(Error::Corrupt {
            what: "lpm_trie_node.child (not a kernel pointer)",
            ..
        })
    ));
    // data_size that disagrees with key_size.
    let mut g = guest();
    let pa = g.pa_of(Kva(g.maps[0].kva.0 + u64::from(l.data_size)));
    g.ram.write_u64(pa, 5);
    assert!(matches!(walk(&g, 1), Err(Error::Corrupt { value: 5, .. })));
}

#[test]
fn the_node_cap_holds_at_and_fails_past_its_limit() {
    // Two prefixes need one intermediate node: three nodes, cap 2 × max_entries.
    let build = |max| {
        let mut b = GuestBuilder::x86_64(false);
        b.add_map(
            MapSpec::new(1, MapType::LPM_TRIE, "t", 5, 1, max)
                .lpm_entry(8, &[0x80], &[1])
                .lpm_entry(8, &[0x40], &[2]),
        );
        b.build()
    };
    assert_eq!(walk(&build(2), 1).unwrap().len(), 2);
    let g = build(1);
    assert_eq!(
        walk(&g, 1),
        Err(Error::LimitExceeded {
            what: "LPM trie nodes (twice max_entries)",
            limit: 2,
            at: 3
        })
    );
}

#[test]
fn wrong_type_or_buffers_are_refused() {
    let g = guest();
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert!(matches!(
        bpf.for_each_lpm_entry(
            &map,
            &mut [0; 7],
            &mut [0; 8],
            |_, _| ControlFlow::Continue(())
        ),
        Err(Error::BufferSize { need: 8, have: 7 })
    ));
    let no_layout = crate::layout::KernelLayout {
        lpm: None,
        ..g.layout
    };
    let bpf = Bpf::new(&view, &no_layout, g.map_idr);
    assert_eq!(
        bpf.for_each_lpm_entry(
            &map,
            &mut [0; 8],
            &mut [0; 8],
            |_, _| ControlFlow::Continue(())
        ),
        Err(Error::LayoutMissing { what: "lpm_trie" })
    );
}
