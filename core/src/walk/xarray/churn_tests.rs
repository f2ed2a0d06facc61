//! The walk over a tree that changes while it is read, as a running kernel's map_idr
//! does while maps are created and destroyed.

use alloc::vec::Vec;

use super::*;
use crate::addr::Pa;
use crate::arch::{x86_64::X86Paging, Paging};
use crate::kernel::{KernelAddrs, KernelView};
use crate::limits::XA_WALK_RESTARTS;
use crate::synth::{build_xarray_with_nodes, ChangingRam, SynthRam, KERNEL_XARRAY_LAYOUT};

const DMB: u64 = 0xffff_8880_0000_0000;
const LAYOUT: XarrayLayout = KERNEL_XARRAY_LAYOUT;
const RETRY: u64 = (256 << 2) | 2;

fn ptr(i: u64) -> u64 {
    DMB + 0x10_0000 + i * 64
}

/// Indices 1..=100 in a two-level tree (leaves at 0 and 64), its `struct xarray` at
/// physical 0x1000: the RAM, the xarray's physical address, leaf 64's physical address.
fn tree() -> (SynthRam, Pa, Pa) {
    let mut ram = SynthRam::new(Pa(0), 4 << 20);
    ram.skip_to(Pa(0x2000));
    let entries: Vec<(u64, u64)> = (1..=100).map(|i| (i, ptr(i))).collect();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &entries);
    let xarray = Pa(0x1000);
    ram.write_u64(Pa(xarray.0 + u64::from(LAYOUT.xa_head)), xa.head);
    let leaf = xa.node(0, 64).unwrap().pa;
    (ram, xarray, leaf)
}

fn view(mem: ChangingRam) -> KernelView<ChangingRam> {
    KernelView::new(
        mem,
        Paging::X86_64(X86Paging::new(0, false)),
        KernelAddrs::x86_64(DMB, 4 << 20, 0),
    )
}

fn slot(node: Pa, i: u64) -> Pa {
    Pa(node.0 + u64::from(LAYOUT.node_slots) + 8 * i)
}

/// Every index the walk yields, and the error that ended it.
fn indices(v: &KernelView<ChangingRam>, xarray: Pa) -> (Vec<u64>, Option<Error>, u32) {
    let mut w = XaWalk::from_xarray(v, LAYOUT, Kva(DMB + xarray.0)).unwrap();
    let mut out = Vec::new();
    let mut err = None;
    for item in w.by_ref() {
        match item {
            Ok(e) => {
                assert_eq!(e.entry, ptr(e.index));
                out.push(e.index);
            }
            Err(e) => err = Some(e),
        }
    }
    (out, err, w.restarts())
}

#[test]
fn a_retry_entry_sends_the_walk_back_to_the_root_past_what_it_yielded() {
    let (ram, xarray, leaf) = tree();
    let head = Pa(xarray.0 + u64::from(LAYOUT.xa_head));
    // The leaf of 64..128 is being taken out when the walk reads it; by the time the
    // walk reads the head again, the change is done.
    let mem = ChangingRam::new(ram)
        .on_read(leaf, 1, move |r| r.write_u64(slot(leaf, 5), RETRY))
        .on_read(head, 2, move |r| r.write_u64(slot(leaf, 5), ptr(69)));
    let (got, err, restarts) = indices(&view(mem), xarray);
    assert_eq!(err, None);
    assert_eq!(got, (1..=100).collect::<Vec<_>>());
    assert_eq!(restarts, 1);
}

#[test]
fn a_freed_node_sends_the_walk_back_and_a_still_bad_one_is_an_error() {
    let (ram, xarray, leaf) = tree();
    let head = Pa(xarray.0 + u64::from(LAYOUT.xa_head));
    let shift = Pa(leaf.0 + u64::from(LAYOUT.node_shift));
    // Freed and reused under the walk: the node's shift is wrong when it is read, right
    // again (the tree rebuilt) at the restart.
    let mem = ChangingRam::new(ram.clone())
        .on_read(leaf, 1, move |r| r.write_u8(shift, 18))
        .on_read(head, 2, move |r| r.write_u8(shift, 0));
    let (got, err, restarts) = indices(&view(mem), xarray);
    assert_eq!((err, restarts), (None, 1));
    assert_eq!(got, (1..=100).collect::<Vec<_>>());

    // Wrong on both reads: corruption, after the entries before it.
    let mut bad = ram;
    bad.write_u8(shift, 18);
    let (got, err, restarts) = indices(&view(ChangingRam::new(bad)), xarray);
    assert_eq!(got, (1..=63).collect::<Vec<_>>());
    assert!(matches!(err, Some(Error::BadXaNode { .. })), "{err:?}");
    assert_eq!(restarts, 1);
}

#[test]
fn a_retry_entry_in_still_memory_is_a_hole() {
    let (mut ram, xarray, leaf) = tree();
    ram.write_u64(slot(leaf, 5), RETRY);
    let (got, err, restarts) = indices(&view(ChangingRam::new(ram)), xarray);
    assert_eq!((err, restarts), (None, 1));
    let want: Vec<u64> = (1..=100).filter(|&i| i != 69).collect();
    assert_eq!(got, want);
}

#[test]
fn a_tree_that_never_settles_is_unstable_after_the_restart_cap() {
    let (ram, xarray, leaf) = tree();
    // Before every read, a retry entry moves to the next slot of the leaf.
    let mut n = 0u64;
    let mem = ChangingRam::new(ram).every(move |r| {
        r.write_u64(slot(leaf, n % 64), ptr(64 + n % 64));
        n += 1;
        r.write_u64(slot(leaf, n % 64), RETRY);
    });
    let (got, err, restarts) = indices(&view(mem), xarray);
    assert_eq!(restarts, XA_WALK_RESTARTS);
    assert!(
        matches!(
            err,
            Some(Error::Unstable {
                what: "xarray at index",
                ..
            })
        ),
        "{err:?}"
    );
    // Ascending, each index once.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?}");
}
