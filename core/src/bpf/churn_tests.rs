//! Map discovery while maps are created and destroyed, as on a running guest.

use alloc::vec::Vec;

use crate::addr::{Kva, Pa};
use crate::bpf::Bpf;
use crate::kernel::{KernelRead, KernelView};
use crate::synth::MapSpec;
use crate::synth::{ChangingRam, GuestBuilder, SyntheticGuest};

fn guest() -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false);
    for id in 1..=3 {
        b.add_map(MapSpec::array(id, "a", 8, 2));
    }
    b.build()
}

/// The physical address of the `map_idr` slot holding id `id` (a one-node tree).
fn idr_slot(g: &SyntheticGuest, id: u64) -> Pa {
    let view = g.view();
    let l = g.layout;
    let head = view
        .read_kernel_u64(Kva(g.map_idr.0
            + u64::from(l.idr.idr_rt)
            + u64::from(l.xarray.xa_head)))
        .unwrap();
    g.pa_of(Kva((head & !3) + u64::from(l.xarray.node_slots) + 8 * id))
}

#[test]
fn a_map_destroyed_while_it_is_read_is_not_listed() {
    let g = guest();
    let map2 = g.maps.iter().find(|m| m.id == 2).unwrap().kva;
    let map2_pa = g.pa_of(map2);
    let id_at = Pa(map2_pa.0 + u64::from(g.layout.bpf_map.id));
    let slot = idr_slot(&g, 2);
    // When discovery reads map 2's struct, the kernel has just removed it from
    // map_idr and its memory holds something else.
    let mem = ChangingRam::new(g.ram.clone()).on_read(map2_pa, 1, move |r| {
        r.write_u64(slot, 0);
        r.write_u32(id_at, 0xdead);
    });
    let view = KernelView::new(mem, g.paging, g.addrs);
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let ids: Vec<u32> = bpf.maps().unwrap().map(|m| m.unwrap().id).collect();
    assert_eq!(ids, [1, 3]);

    // Still in map_idr but wrong: an error for that map.
    let mut bad = g.clone();
    bad.ram.write_u32(id_at, 0xdead);
    let view = bad.view();
    let bpf = Bpf::new(&view, &bad.layout, bad.map_idr);
    let items: Vec<_> = bpf.maps().unwrap().collect();
    assert_eq!(items.len(), 3);
    assert!(items[1].is_err() && items[0].is_ok() && items[2].is_ok());
}
