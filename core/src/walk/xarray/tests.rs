//! Tests of the walk and the lookup.

extern crate std;

use alloc::vec::Vec;
use core::cell::Cell;

use super::*;
use crate::addr::Pa;
use crate::arch::{x86_64::X86Paging, Paging};
use crate::error::PhysErrorKind;
use crate::kernel::{KernelAddrs, KernelView};
use crate::limits::{Limits, MAX_XA_DEPTH};
use crate::mem::{PhysRange, Ram};
use crate::synth::{
    build_xarray, build_xarray_with_nodes, SynthRam, SynthXarray, KERNEL_XARRAY_LAYOUT,
};

const DMB: u64 = 0xffff_8880_0000_0000;
const RAM_SIZE: usize = 4 << 20;
/// Kernel 6.x: `xarray.xa_head` at 8, `xa_node.shift` at 0, `xa_node.slots` at 40.
const LAYOUT: XarrayLayout = KERNEL_XARRAY_LAYOUT;
/// Offsets moved around: `shift` after the slots, within one read's reach.
const ODD_LAYOUT: XarrayLayout = XarrayLayout {
    xa_head: 24,
    node_shift: 530,
    node_slots: 16,
};
/// `shift` far from the slots: two reads per node.
const FAR_LAYOUT: XarrayLayout = XarrayLayout {
    xa_head: 0,
    node_shift: 1000,
    node_slots: 8,
};

// Markers: sibling entries (`xa_mk_sibling(0)`, `(1)`, `(62)`), retry (256), zero (257),
// and the largest internal value that is not a node.
const SIBLING_0: u64 = 2;
const SIBLING_1: u64 = (1 << 2) | 2;
const SIBLING_62: u64 = (62 << 2) | 2;
const RETRY: u64 = (256 << 2) | 2;
const ZERO: u64 = (257 << 2) | 2;
const MARKER_MAX: u64 = 4094;

/// A plausible object pointer for index `i` (8-byte aligned, in the direct map).
fn ptr(i: u64) -> u64 {
    (DMB + 0x40_0000_0000).wrapping_add(i.wrapping_mul(64))
}

fn ram() -> SynthRam {
    SynthRam::new(Pa(0), RAM_SIZE)
}

/// A view whose direct map covers `dm_len` bytes of physical memory.
fn view_with(ram: &SynthRam, dm_len: u64) -> KernelView<Ram<&[u8]>> {
    KernelView::new(
        ram.as_ram(),
        Paging::X86_64(X86Paging::new(0, false)),
        KernelAddrs::x86_64(DMB, dm_len, 0),
    )
}

fn view(ram: &SynthRam) -> KernelView<Ram<&[u8]>> {
    view_with(ram, ram.len())
}

fn e(index: u64, entry: u64) -> XaEntry {
    XaEntry { index, entry }
}

/// Walks to the end: the entries, and the error that ended the walk if any. Checks
/// that the walk is fused afterwards.
fn walk<K: KernelRead + ?Sized>(
    mem: &K,
    layout: XarrayLayout,
    head: u64,
) -> (Vec<XaEntry>, Option<Error>) {
    let mut w = XaWalk::new(mem, layout, head);
    let mut out = Vec::new();
    let mut err = None;
    for item in w.by_ref() {
        match item {
            Ok(entry) => out.push(entry),
            Err(error) => {
                assert!(err.is_none(), "two errors");
                err = Some(error);
            }
        }
    }
    for _ in 0..3 {
        assert!(w.next().is_none());
        assert_eq!(w.try_next(), Ok(None));
    }
    (out, err)
}

fn walk_ok<K: KernelRead + ?Sized>(mem: &K, layout: XarrayLayout, head: u64) -> Vec<XaEntry> {
    let (out, err) = walk(mem, layout, head);
    assert_eq!(err, None);
    out
}

fn pairs(ids: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    ids.into_iter().map(|i| (i, ptr(i))).collect()
}

fn expect(ids: impl IntoIterator<Item = u64>) -> Vec<XaEntry> {
    ids.into_iter().map(|i| e(i, ptr(i))).collect()
}

/// Builds `entries` and checks that the walk and `xa_load` see exactly them.
fn round_trip(layout: XarrayLayout, entries: &[(u64, u64)]) -> (SynthRam, SynthXarray) {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &layout, DMB, entries);
    let mut want: Vec<XaEntry> = entries.iter().map(|&(i, v)| e(i, v)).collect();
    want.sort_by_key(|x| x.index);
    let v = view(&ram);
    assert_eq!(walk_ok(&v, layout, xa.head), want);
    for x in &want {
        assert_eq!(
            xa_load(&v, &layout, xa.head, x.index),
            Ok(Some(x.entry)),
            "index {}",
            x.index
        );
    }
    (ram, xa)
}

/// Counts `read_kernel` calls.
struct CountingReads<K> {
    inner: K,
    reads: Cell<u32>,
}

impl<K: KernelRead> KernelRead for CountingReads<K> {
    fn kva_to_pa(&self, va: Kva) -> Result<PhysRange> {
        self.inner.kva_to_pa(va)
    }
    fn read_kernel(&self, va: Kva, buf: &mut [u8]) -> Result<()> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read_kernel(va, buf)
    }
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }
}

fn limits(xa_nodes: u32) -> Limits {
    Limits {
        xa_nodes,
        ..Limits::DEFAULT
    }
}

#[test]
fn entry_classes() {
    assert!(!is_present(0));
    for marker in [SIBLING_0, SIBLING_1, SIBLING_62, RETRY, ZERO, MARKER_MAX] {
        assert!(
            is_internal(marker) && !is_present(marker) && !is_node(marker),
            "{marker:#x}"
        );
    }
    assert!(is_node(4098) && is_present(4098));
    assert!(is_present(1) && !is_node(1)); // a value entry
    assert!(is_present(ptr(0)) && !is_node(ptr(0)));
    assert_eq!(node_of(DMB | 0x1002), Kva(DMB | 0x1000));
    // The deepest valid tree fits the stack.
    assert_eq!(usize::from(XA_MAX_SHIFT / XA_CHUNK_SHIFT) + 1, MAX_XA_DEPTH);
}

#[test]
fn empty() {
    let ram = ram();
    let v = view(&ram);
    let mut w = XaWalk::new(&v, LAYOUT, 0);
    assert_eq!(w.try_next(), Ok(None));
    assert_eq!(w.nodes_visited(), 0);
    assert_eq!(xa_load(&v, &LAYOUT, 0, 0), Ok(None));
    assert_eq!(
        build_xarray(&mut SynthRam::new(Pa(0), 4096), &LAYOUT, DMB, &[]),
        0
    );
}

#[test]
fn single_entry_at_zero_is_the_head() {
    let mut ram = ram();
    let head = build_xarray(&mut ram, &LAYOUT, DMB, &[(0, ptr(0))]);
    assert_eq!(head, ptr(0), "no node, like the kernel");
    let v = view(&ram);
    let mut w = XaWalk::new(&v, LAYOUT, head);
    assert_eq!(w.next(), Some(Ok(e(0, ptr(0)))));
    assert_eq!(w.next(), None);
    assert_eq!(w.nodes_visited(), 0);
    assert_eq!(xa_load(&v, &LAYOUT, head, 0), Ok(Some(ptr(0))));
    assert_eq!(xa_load(&v, &LAYOUT, head, 1), Ok(None));
    // A value entry (`xa_mk_value(5)`) at the head is an entry too.
    assert_eq!(walk_ok(&v, LAYOUT, 11), [e(0, 11)]);
}

#[test]
fn marker_head_is_empty() {
    let ram = ram();
    let v = view(&ram);
    for marker in [RETRY, ZERO, SIBLING_0, MARKER_MAX] {
        assert!(walk_ok(&v, LAYOUT, marker).is_empty());
        assert_eq!(xa_load(&v, &LAYOUT, marker, 0), Ok(None));
    }
}

#[test]
fn single_entry_at_five() {
    let (ram, xa) = round_trip(LAYOUT, &pairs([5]));
    assert_eq!(xa.nodes.len(), 1);
    assert_eq!(xa.nodes[0].shift, 0);
    assert_eq!(xa.head, (DMB + xa.nodes[0].pa.0) | 2);
    let v = view(&ram);
    let mut w = XaWalk::new(&v, LAYOUT, xa.head);
    assert_eq!(w.next(), Some(Ok(e(5, ptr(5)))));
    assert_eq!(w.next(), None);
    assert_eq!(w.nodes_visited(), 1);
    for miss in [0, 4, 6, 63, 64, u64::MAX] {
        assert_eq!(
            xa_load(&v, &LAYOUT, xa.head, miss),
            Ok(None),
            "index {miss}"
        );
    }
}

#[test]
fn dense_one_to_hundred() {
    let (ram, xa) = round_trip(LAYOUT, &pairs(1..=100));
    // A shift-6 root over two leaves.
    let shifts: Vec<u8> = xa.nodes.iter().map(|n| n.shift).collect();
    assert_eq!(shifts, [6, 0, 0]);
    let v = view(&ram);
    let mut w = XaWalk::new(&v, LAYOUT, xa.head);
    assert_eq!(w.by_ref().collect::<Result<Vec<_>>>(), Ok(expect(1..=100)));
    assert_eq!(w.nodes_visited(), 3);
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 0), Ok(None));
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 101), Ok(None));
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 4096), Ok(None));
}

#[test]
fn sparse_ids_over_several_levels() {
    let ids = [4096, 1, (1 << 31) - 1, 63, 1 << 20, 64, 4095];
    let (ram, xa) = round_trip(LAYOUT, &pairs(ids));
    assert_eq!(xa.nodes[0].shift, 30, "root covers 2^36 ids");
    let v = view(&ram);
    assert_eq!(
        walk_ok(&v, LAYOUT, xa.head),
        expect([1, 63, 64, 4095, 4096, 1 << 20, (1 << 31) - 1])
    );
    for miss in [
        0,
        2,
        62,
        65,
        4094,
        4097,
        (1 << 20) + 1,
        1 << 31,
        1 << 36,
        1 << 40,
        u64::MAX,
    ] {
        assert_eq!(
            xa_load(&v, &LAYOUT, xa.head, miss),
            Ok(None),
            "index {miss}"
        );
    }
}

#[test]
fn whole_index_space() {
    let ids = [
        0,
        1,
        1 << 59,
        (1 << 60) - 1,
        1 << 60,
        u64::MAX - 64,
        u64::MAX,
    ];
    let (ram, xa) = round_trip(LAYOUT, &pairs(ids));
    assert_eq!(xa.nodes[0].shift, 60);
    assert_eq!(walk_ok(&view(&ram), LAYOUT, xa.head), expect(ids));
}

#[test]
fn markers_are_skipped() {
    let entries = [
        (0, SIBLING_0),
        (1, ptr(1)),
        (2, SIBLING_1),
        (3, RETRY),
        (4, 9), // xa_mk_value(4)
        (5, ZERO),
        (6, SIBLING_62),
        (7, MARKER_MAX),
        (8, ptr(8)),
        (70, RETRY),
        (4000, ptr(4000)),
    ];
    let mut ram = ram();
    let head = build_xarray(&mut ram, &LAYOUT, DMB, &entries);
    let v = view(&ram);
    assert_eq!(
        walk_ok(&v, LAYOUT, head),
        [e(1, ptr(1)), e(4, 9), e(8, ptr(8)), e(4000, ptr(4000))]
    );
    for (index, entry) in entries {
        let want = is_present(entry).then_some(entry);
        assert_eq!(xa_load(&v, &LAYOUT, head, index), Ok(want), "index {index}");
    }
}

#[test]
fn ten_thousand_entries_one_read_per_node() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs(1..=10_000));
    // Root (shift 12), 3 nodes of shift 6, 157 leaves.
    assert_eq!(xa.nodes.len(), 161);
    let counting = CountingReads {
        inner: view(&ram),
        reads: Cell::new(0),
    };
    let start = std::time::Instant::now();
    let mut w = XaWalk::new(&counting, LAYOUT, xa.head);
    let got = w.by_ref().collect::<Result<Vec<_>>>().unwrap();
    let took = start.elapsed();
    assert_eq!(got, expect(1..=10_000));
    assert_eq!(w.nodes_visited(), 161);
    assert_eq!(counting.reads.get(), 161);
    // Generous for unoptimised test builds; a release build takes well under 1 ms.
    assert!(took < std::time::Duration::from_millis(100), "{took:?}");
    counting.reads.set(0);
    assert_eq!(
        xa_load(&counting, &LAYOUT, xa.head, 9_999),
        Ok(Some(ptr(9_999)))
    );
    assert_eq!(counting.reads.get(), 3);
}

#[test]
fn other_layouts_are_honoured() {
    let entries = pairs([1, 2, 64, 5000, 1 << 20]);
    for layout in [ODD_LAYOUT, FAR_LAYOUT] {
        let (mut ram, xa) = round_trip(layout, &entries);
        // Through a `struct xarray` whose head is at `layout.xa_head`.
        let xarray = ram.alloc(64, 8);
        ram.write_u64(Pa(xarray.0 + u64::from(layout.xa_head)), xa.head);
        let counting = CountingReads {
            inner: view(&ram),
            reads: Cell::new(0),
        };
        let mut w = XaWalk::from_xarray(&counting, layout, Kva(DMB + xarray.0)).unwrap();
        assert_eq!(
            w.by_ref().collect::<Result<Vec<_>>>(),
            Ok(expect([1, 2, 64, 5000, 1 << 20]))
        );
        let per_node = if layout == FAR_LAYOUT { 2 } else { 1 };
        assert_eq!(counting.reads.get(), 1 + per_node * w.nodes_visited());
        // The kernel layout reads these nodes wrong.
        assert_ne!(
            walk(&view(&ram), LAYOUT, xa.head).0,
            expect([1, 2, 64, 5000, 1 << 20])
        );
    }
}

#[test]
fn from_xarray_reads_the_head() {
    let mut ram = ram();
    let xarray = ram.alloc(16, 8);
    let head = build_xarray(&mut ram, &LAYOUT, DMB, &pairs([3, 300]));
    ram.write_u64(Pa(xarray.0 + 8), head);
    let v = view(&ram);
    let w = XaWalk::from_xarray(&v, LAYOUT, Kva(DMB + xarray.0)).unwrap();
    assert_eq!(w.collect::<Result<Vec<_>>>(), Ok(expect([3, 300])));
    // The head outside the direct map: a page walk, which this guest cannot do.
    assert!(XaWalk::from_xarray(&v, LAYOUT, Kva(0xffff_c900_0000_0000)).is_err());
    assert_eq!(
        XaWalk::from_xarray(&v, LAYOUT, Kva(u64::MAX - 4)).unwrap_err(),
        Error::AddrOverflow {
            addr: u64::MAX - 4,
            len: 8
        }
    );
}

#[test]
fn cycle_to_the_root_is_caught_by_the_shift_check() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs([1, 70, 5000]));
    let root = xa.nodes[0];
    assert_eq!(root.shift, 12);
    // The shift-6 node under slot 1 of the root (index 4096..8192) points back at the root.
    let mid = *xa
        .nodes
        .iter()
        .find(|n| n.shift == 6 && n.index == 4096)
        .unwrap();
    ram.write_u64(mid.slot_pa(&LAYOUT, 0), root.entry());
    let v = view(&ram);
    let (got, err) = walk(&v, LAYOUT, xa.head);
    assert_eq!(got, expect([1, 70]));
    assert_eq!(
        err,
        Some(Error::BadXaNode {
            node: root.kva,
            shift: 12,
            expected: 0
        })
    );
    assert_eq!(
        xa_load(&v, &LAYOUT, xa.head, 4096),
        Err(Error::BadXaNode {
            node: root.kva,
            shift: 12,
            expected: 0
        })
    );
}

#[test]
fn cycle_is_ended_by_the_node_cap() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs([1, 70]));
    let root = xa.nodes[0];
    // Root slot 2 points at the root itself.
    ram.write_u64(root.slot_pa(&LAYOUT, 2), root.entry());
    let v = view_with(&ram, ram.len()).with_limits(limits(3));
    let (got, err) = walk(&v, LAYOUT, xa.head);
    assert_eq!(got, expect([1, 70]));
    assert_eq!(
        err,
        Some(Error::LimitExceeded {
            what: "xarray nodes",
            limit: 3,
            at: root.kva.0
        })
    );
    // With room to read it again, the shift check catches it.
    let v = view(&ram);
    assert_eq!(
        walk(&v, LAYOUT, xa.head).1,
        Some(Error::BadXaNode {
            node: root.kva,
            shift: 6,
            expected: 0
        })
    );
}

#[test]
fn shared_subtrees_are_ended_by_the_node_cap() {
    // A tree whose every slot points at the same child: 64^2 + 64 + 1 node visits.
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs(0..64 * 64 * 2));
    let root = xa.nodes[0];
    assert_eq!(root.shift, 12);
    let mid = xa.nodes[1];
    let leaf = xa.nodes[2];
    for slot in 0..64 {
        ram.write_u64(root.slot_pa(&LAYOUT, slot), mid.entry());
        ram.write_u64(mid.slot_pa(&LAYOUT, slot), leaf.entry());
    }
    let v = view(&ram).with_limits(limits(1000));
    let (got, err) = walk(&v, LAYOUT, xa.head);
    assert_eq!(
        err,
        Some(Error::LimitExceeded {
            what: "xarray nodes",
            limit: 1000,
            at: leaf.kva.0
        })
    );
    // Root, then 15 groups of (middle node + 64 leaves), then a middle node and 23
    // leaves: 983 leaves read, each entry reported under each alias.
    assert_eq!(got.len(), 64 * 983);
    assert!(got.windows(2).all(|w| w[0].index < w[1].index));
    assert_eq!(got[64 * 64], e(4096, ptr(0)));
    // With the whole walk allowed, it ends.
    let v = view(&ram).with_limits(limits(64 * 64 + 64 + 1));
    assert_eq!(walk(&v, LAYOUT, xa.head).0.len(), 64 * 64 * 64);
}

#[test]
fn wrong_child_shift() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs(1..=100));
    let leaf2 = xa.nodes[2];
    assert_eq!((leaf2.shift, leaf2.index), (0, 64));
    for bad in [6, 3, 12, 255] {
        ram.write_u8(leaf2.shift_pa(&LAYOUT), bad);
        let v = view(&ram);
        let (got, err) = walk(&v, LAYOUT, xa.head);
        assert_eq!(got, expect(1..64));
        assert_eq!(
            err,
            Some(Error::BadXaNode {
                node: leaf2.kva,
                shift: bad,
                expected: 0
            })
        );
        assert_eq!(
            xa_load(&v, &LAYOUT, xa.head, 64),
            Err(Error::BadXaNode {
                node: leaf2.kva,
                shift: bad,
                expected: 0
            })
        );
        assert_eq!(xa_load(&v, &LAYOUT, xa.head, 63), Ok(Some(ptr(63))));
    }
}

#[test]
fn bad_root_shift() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs([1, 2, 3]));
    let root = xa.nodes[0];
    assert_eq!(root.shift, 0);
    for bad in [1, 5, 7, 61, 64, 66, 72, 255] {
        ram.write_u8(root.shift_pa(&LAYOUT), bad);
        let v = view(&ram);
        let want = Error::Corrupt {
            what: "xarray root node shift (not a multiple of 6 below 64)",
            at: root.kva,
            value: u64::from(bad),
        };
        assert_eq!(
            walk(&v, LAYOUT, xa.head),
            (Vec::new(), Some(want)),
            "shift {bad}"
        );
        assert_eq!(xa_load(&v, &LAYOUT, xa.head, 1), Err(want));
    }
    // 60 is valid: the entries are then at `slot << 60`, and slot 3 is the last that fits.
    ram.write_u8(root.shift_pa(&LAYOUT), 60);
    assert_eq!(
        walk_ok(&view(&ram), LAYOUT, xa.head),
        [e(1 << 60, ptr(1)), e(2 << 60, ptr(2)), e(3 << 60, ptr(3))]
    );
}

#[test]
fn index_past_64_bits() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs([5, u64::MAX]));
    let root = xa.nodes[0];
    assert_eq!(root.shift, 60);
    // Slot 16 of a shift-60 root would be index 2^64. Markers there are fine.
    ram.write_u64(root.slot_pa(&LAYOUT, 16), RETRY);
    assert_eq!(walk_ok(&view(&ram), LAYOUT, xa.head), expect([5, u64::MAX]));
    ram.write_u64(root.slot_pa(&LAYOUT, 16), ptr(16));
    let want = Error::Corrupt {
        what: "xarray slot beyond the 64-bit index space (slot number)",
        at: root.kva,
        value: 16,
    };
    assert_eq!(
        walk(&view(&ram), LAYOUT, xa.head),
        (expect([5, u64::MAX]), Some(want))
    );
}

#[test]
fn node_pointer_in_a_leaf() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs([1, 2, 100]));
    let leaf = xa.nodes[1];
    assert_eq!((leaf.shift, leaf.index), (0, 0));
    ram.write_u64(leaf.slot_pa(&LAYOUT, 3), leaf.entry());
    let v = view(&ram);
    let want = Error::Corrupt {
        what: "xarray node pointer in a leaf node",
        at: leaf.kva,
        value: leaf.entry(),
    };
    assert_eq!(walk(&v, LAYOUT, xa.head), (expect([1, 2]), Some(want)));
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 3), Err(want));
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 100), Ok(Some(ptr(100))));
}

#[test]
fn node_outside_ram() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs(1..=100));
    let root = xa.nodes[0];
    // Root slot 1 (indices 64..128) points 16 MiB in: direct-mapped, but past this RAM.
    let outside = 16 << 20;
    ram.write_u64(root.slot_pa(&LAYOUT, 1), (DMB + outside) | 2);
    let v = view_with(&ram, 64 << 20);
    let (got, err) = walk(&v, LAYOUT, xa.head);
    assert_eq!(got, expect(1..64));
    let want = Error::Phys {
        access: crate::Access::Read,
        pa: Pa(outside),
        len: 552,
        kind: PhysErrorKind::Unmapped,
    };
    assert_eq!(err, Some(want));
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 64), Err(want));
    // And a pointer that cannot even be offset: the last node-looking value.
    ram.write_u64(root.slot_pa(&LAYOUT, 1), u64::MAX - 1);
    let (got, err) = walk(&view(&ram), LAYOUT, xa.head);
    assert_eq!(got, expect(1..64));
    assert_eq!(
        err,
        Some(Error::AddrOverflow {
            addr: u64::MAX - 3,
            len: 552
        })
    );
}

#[test]
fn node_cap_exactly() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs(1..=100));
    assert_eq!(xa.nodes.len(), 3);
    let v = view(&ram).with_limits(limits(3));
    let mut w = XaWalk::new(&v, LAYOUT, xa.head);
    assert_eq!(w.by_ref().collect::<Result<Vec<_>>>(), Ok(expect(1..=100)));
    assert_eq!(w.nodes_visited(), 3);
    assert_eq!(xa_load(&v, &LAYOUT, xa.head, 100), Ok(Some(ptr(100))));

    let v = view(&ram).with_limits(limits(2));
    let mut w = XaWalk::new(&v, LAYOUT, xa.head);
    let got: Vec<XaEntry> = w.by_ref().map_while(Result::ok).collect();
    assert_eq!(got, expect(1..64));
    assert_eq!(w.nodes_visited(), 2);
    let (got, err) = walk(&v, LAYOUT, xa.head);
    assert_eq!(got, expect(1..64));
    let limit = Error::LimitExceeded {
        what: "xarray nodes",
        limit: 2,
        at: xa.nodes[2].kva.0,
    };
    assert_eq!(err, Some(limit));
    assert_eq!(
        xa_load(&v, &LAYOUT, xa.head, 100),
        Ok(Some(ptr(100))),
        "two nodes deep"
    );

    let v = view(&ram).with_limits(limits(1));
    assert_eq!(
        xa_load(&v, &LAYOUT, xa.head, 100),
        Err(Error::LimitExceeded {
            what: "xarray nodes",
            limit: 1,
            at: xa.nodes[2].kva.0
        })
    );
    let v = view(&ram).with_limits(limits(0));
    let limit = Error::LimitExceeded {
        what: "xarray nodes",
        limit: 0,
        at: xa.nodes[0].kva.0,
    };
    assert_eq!(walk(&v, LAYOUT, xa.head), (Vec::new(), Some(limit)));
}

#[test]
fn fused_after_error() {
    let mut ram = ram();
    let xa = build_xarray_with_nodes(&mut ram, &LAYOUT, DMB, &pairs([1, 100]));
    ram.write_u8(xa.nodes[2].shift_pa(&LAYOUT), 6);
    let v = view(&ram);
    let mut w = XaWalk::new(&v, LAYOUT, xa.head);
    assert_eq!(w.next(), Some(Ok(e(1, ptr(1)))));
    assert!(matches!(w.next(), Some(Err(Error::BadXaNode { .. }))));
    assert_eq!(w.next(), None);
    assert_eq!(w.try_next(), Ok(None));
    assert_eq!(w.next(), None);
    fn fused<I: core::iter::FusedIterator>(_: &I) {}
    fused(&w);
    assert!(std::format!("{w:?}").contains("done: true"));
}
