//! The hash walk over memory that changes while it is read, as a running kernel's does:
//! elements moved between buckets, freed, replaced, and buckets that never settle.

use alloc::vec;
use alloc::vec::Vec;

use crate::addr::{Kva, Pa};
use crate::bpf::htab::testutil::*;
use crate::error::Error;
use crate::kernel::KernelView;
use crate::synth::{ChangingRam, SyntheticGuest};

/// `LIST_POISON2`: the back link of an unlinked element.
const POISON2: u64 = 0xdead_0000_0000_0122;

/// Where things are in [`chains`]'s map: bucket 1 holds element 0, bucket 3 elements
/// 1..=4 (keys 30..=33) in that order, bucket 6 element 5.
struct Places {
    /// Physical address of each element (its `hash_node`).
    elem: Vec<Pa>,
    /// Kernel address of each element.
    kva: Vec<u64>,
    /// Physical and kernel address of each bucket's head.
    head: Vec<(Pa, u64)>,
}

fn places(g: &SyntheticGuest) -> Places {
    let h = &g.htabs[&1];
    let elem = h.elems.iter().map(|e| g.pa_of(e.kva)).collect();
    let kva = h.elems.iter().map(|e| e.kva.0).collect();
    let head = (0..u64::from(h.n_buckets))
        .map(|b| {
            let kva = Kva(h.buckets.0 + b * 16);
            (g.pa_of(kva), kva.0)
        })
        .collect();
    Places { elem, kva, head }
}

const fn nulls(b: u64) -> u64 {
    (b << 1) | 1
}

/// The key bytes of each item, in walk order.
fn keys(w: &Walked) -> Vec<u8> {
    w.items.iter().map(|(_, k, _)| k[0]).collect()
}

fn changing_view(g: &SyntheticGuest, mem: ChangingRam) -> KernelView<ChangingRam> {
    KernelView::new(mem, g.paging, g.addrs)
}

#[test]
fn an_element_moved_to_another_bucket_before_it_is_reached_sends_the_walk_back() {
    let g = chains();
    let p = places(&g);
    let (a, b, e) = (1, 2, 5);
    let (elem, kva, head) = (p.elem.clone(), p.kva.clone(), p.head.clone());
    // Between the walk's reads of elements 1 and 2, the kernel deletes element 2 from
    // bucket 3 and reuses it for a new key at the head of bucket 6.
    let mem = ChangingRam::new(g.ram.clone()).on_read(elem[b], 1, move |r| {
        r.write_u64(elem[a], kva[b + 1]);
        r.write_u64(Pa(elem[b + 1].0 + 8), kva[a]);
        r.write(Pa(elem[b].0 + 48), &[99; 4]);
        r.write_u64(elem[b], kva[e]);
        r.write_u64(Pa(elem[b].0 + 8), head[6].1);
        r.write_u64(head[6].0, kva[b]);
        r.write_u64(Pa(elem[e].0 + 8), kva[b]);
    });
    let view = changing_view(&g, mem);
    let h = open(&g, &view, 1);
    let mut walk = h.walk(&view);
    let mut seen = Vec::new();
    while let Some(item) = walk.next() {
        let entry = item.unwrap();
        let mut k = [0u8; 4];
        walk.copy_key(&entry, &mut k).unwrap();
        seen.push((entry.bucket, k[0]));
    }
    // Bucket 3 read again from its head: 30 is not yielded twice, 31 is gone, and the
    // moved element is found in its new bucket.
    assert_eq!(seen, [(1, 1), (3, 30), (3, 32), (3, 33), (6, 99), (6, 6)]);
    // Bucket 6 too: its head, read in the batch before the move, is stale, and its
    // first element's back link says so.
    assert_eq!(walk.rereads(), 2);
}

#[test]
fn a_chain_ending_at_another_buckets_nulls_marker_is_read_again() {
    let g = chains();
    let p = places(&g);
    let (d, elem, head) = (4, p.elem.clone(), p.head.clone());
    let d_at = elem[d];
    // The last element of bucket 3 is being moved to the end of bucket 6 while it is
    // read: its next pointer already says so; by the time the bucket is read again it
    // is back (the move did not happen after all: the walk must not care why).
    let mem = ChangingRam::new(g.ram.clone())
        .on_read(d_at, 1, move |r| r.write_u64(d_at, nulls(6)))
        .on_read(head[3].0, 2, move |r| r.write_u64(d_at, nulls(3)));
    let view = changing_view(&g, mem);
    let h = open(&g, &view, 1);
    let mut walk = h.walk(&view);
    let mut k = [0u8; 4];
    let mut v = [0u8; 4];
    let mut got = Vec::new();
    while let Some(item) = walk.next_into(&mut k, &mut v) {
        item.unwrap();
        got.push(k[0]);
    }
    assert_eq!(got, [1, 30, 31, 32, 33, 6]);
    assert_eq!(walk.rereads(), 1);
}

#[test]
fn a_replaced_element_is_yielded_once_and_its_successor_is_found() {
    let g = chains();
    let p = places(&g);
    let (x, a, b, c) = (0, 1, 2, 3);
    let (elem, kva, head) = (p.elem.clone(), p.kva.clone(), p.head.clone());
    // After the walk yielded 30 and 31, an update of key 31 links a new element (the
    // freed element of bucket 1, reused) at the head of bucket 3 and unlinks the old one.
    let mem = ChangingRam::new(g.ram.clone()).on_read(elem[c], 1, move |r| {
        r.write_u64(head[1].0, nulls(1));
        r.write_u64(Pa(elem[x].0 + 8), POISON2);
        r.write(Pa(elem[x].0 + 48), &[31; 4]);
        r.write(Pa(elem[x].0 + 56), &[77; 4]);
        r.write_u64(elem[x], kva[a]);
        r.write_u64(Pa(elem[x].0 + 8), head[3].1);
        r.write_u64(head[3].0, kva[x]);
        r.write_u64(Pa(elem[a].0 + 8), kva[x]);
        r.write_u64(elem[a], kva[c]);
        r.write_u64(Pa(elem[c].0 + 8), kva[a]);
        r.write_u64(Pa(elem[b].0 + 8), POISON2);
    });
    let view = changing_view(&g, mem);
    let h = open(&g, &view, 1);
    let w = walk_all(&h, &view);
    assert!(w.errors.is_empty() && w.end.is_none(), "{w:?}");
    // Every element once. Key 31 twice: the old element (read while it was linked)
    // and its replacement; removing repeated keys is the caller's (the library's
    // dump does it).
    assert_eq!(keys(&w), [1, 30, 31, 31, 32, 33, 6]);
    assert_eq!(w.items[3].2, [77; 4]);
}

#[test]
fn a_bucket_that_never_settles_is_unstable_and_the_walk_goes_on() {
    let g = chains();
    let p = places(&g);
    let b_pprev = Pa(p.elem[2].0 + 8);
    let mut n = 0u64;
    // Element 2's back link changes before every read: the bucket never settles.
    let mem = ChangingRam::new(g.ram.clone()).every(move |r| {
        n += 1;
        r.write_u64(b_pprev, POISON2 + 8 * n);
    });
    let view = changing_view(&g, mem);
    let h = open(&g, &view, 1);
    let w = walk_all(&h, &view);
    assert_eq!(keys(&w), [1, 30, 6]);
    assert_eq!(w.end, None);
    assert_eq!(
        w.errors.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        [Error::Unstable {
            what: "hash bucket",
            at: 3,
            reads: crate::Limits::DEFAULT.bucket_reads,
        }]
    );
}

#[test]
fn a_stale_back_link_in_still_memory_is_accepted_after_a_second_read() {
    // A guest stopped in the middle of linking an element at the head of bucket 3: the
    // old first element does not point back at the new one yet. Memory that reads the
    // same twice is how the bucket is: every element is listed, once.
    let mut g = chains();
    let p = places(&g);
    g.ram.write_u64(Pa(p.elem[2].0 + 8), POISON2);
    let view = g.view();
    let h = open(&g, &view, 1);
    let mut walk = h.walk(&view);
    let mut got = vec![];
    let (mut k, mut v) = ([0u8; 4], [0u8; 4]);
    while let Some(item) = walk.next_into(&mut k, &mut v) {
        item.unwrap();
        got.push(k[0]);
    }
    assert_eq!(got, [1, 30, 31, 32, 33, 6]);
    assert_eq!(walk.rereads(), 1);
}

#[test]
fn a_still_guest_is_read_once() {
    for arch in ARCHES {
        let g = build(arch, 2, sample());
        let view = g.view();
        let h = open(&g, &view, 1);
        let mut walk = h.walk(&view);
        let n = walk.by_ref().filter(|i| i.is_ok()).count();
        assert_eq!((n, walk.rereads()), (6, 0), "{arch:?}");
    }
}
