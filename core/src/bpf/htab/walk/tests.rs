//! The hash walk's tests over still synthetic guests.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use super::*;
use crate::bpf::htab::testutil::*;
use crate::bpf::htab::*;
use crate::bpf::{Bpf, MapType};
use crate::error::PhysErrorKind;
use crate::kernel::KernelView;
use crate::limits::{Limits, MAX_CPUS};
use crate::synth::{FaultyMem, MapSpec, SynthArch};

#[test]
fn hash_and_lru_hash_yield_every_entry_bucket_by_bucket() {
    for arch in ARCHES {
        let g = build(arch, 2, sample());
        let view = g.view();
        let h = open(&g, &view, 1);
        assert_eq!((h.n_buckets(), h.elem_size()), (8, 48 + 8 + 16));
        assert_eq!(h.buckets(), g.htabs[&1].buckets);
        assert_eq!(h.pptr_decision(), None);
        let w = walk_all(&h, &view);
        assert!(w.errors.is_empty() && w.end.is_none(), "{arch:?} {w:?}");
        let expect: Vec<(u32, Vec<u8>, Vec<u8>)> = [(0, 4), (2, 1), (2, 3), (2, 5), (5, 2), (7, 6)]
            .into_iter()
            .map(|(b, i)| (b, key(i, 4), bytes(i, 12)))
            .collect();
        assert_eq!(w.items, expect, "{arch:?}");

        // LRU_HASH: 4 buckets (roundup of 3), 6-byte keys padded to 8.
        let lru = open(&g, &view, 2);
        assert_eq!((lru.n_buckets(), lru.elem_size()), (4, 48 + 8 + 8));
        let w = walk_all(&lru, &view);
        assert!(w.errors.is_empty() && w.end.is_none());
        let expect: Vec<(u32, Vec<u8>, Vec<u8>)> = [(0, 0), (0, 4), (1, 1), (2, 2), (3, 3)]
            .into_iter()
            .map(|(b, i)| (b, key(i, 6), bytes(i + 50, 3)))
            .collect();
        assert_eq!(w.items, expect, "{arch:?}");
        let all = lru.entries(&view).unwrap();
        assert_eq!(
            all.entries,
            expect
                .iter()
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        );
        assert!(all.errors.is_empty() && all.end.is_none());
    }
}

#[test]
fn entries_carry_their_addresses() {
    let g = build(SynthArch::X86_64 { five_level: false }, 2, sample());
    let view = g.view();
    let h = open(&g, &view, 1);
    let built = &g.htabs[&1];
    let mut w = h.walk(&view);
    let first = w.next().unwrap().unwrap();
    // Bucket 0 holds the fourth element given.
    assert_eq!(
        first,
        HtabEntry {
            bucket: 0,
            elem: built.elems[3].kva,
            key: Kva(built.elems[3].kva.0 + 48),
            value: HtabValue::Inline(Kva(built.elems[3].kva.0 + 56)),
        }
    );
    assert_eq!(w.key(), Some(&key(4, 4)[..]));
    assert_eq!(w.value(), Some(&bytes(4, 12)[..]));
    assert_eq!(
        w.position(),
        Some(HtabPos {
            bucket: 0,
            elem: Some(first.elem)
        })
    );
    // Reading an earlier entry goes to the guest.
    let second = w.next().unwrap().unwrap();
    let mut k = [0u8; 4];
    w.copy_key(&first, &mut k).unwrap();
    assert_eq!(k[..], key(4, 4)[..]);
    assert_eq!(second.bucket, 2);
    assert_eq!(
        h.read_cpu_value(&view, &g.offsets(), &first, 0, &mut [0u8; 12]),
        Err(Error::WrongMapType {
            id: 1,
            map_type: MapType::HASH,
            op: "per-CPU value access"
        })
    );
}

#[test]
fn an_empty_map_yields_nothing() {
    for arch in ARCHES {
        let g = build(
            arch,
            2,
            vec![
                MapSpec::hash(3, "empty", 16, 64, 1000),
                MapSpec::new(4, MapType::PERCPU_HASH, "pempty", 6, 8, 1),
            ],
        );
        let view = g.view();
        let h = open(&g, &view, 3);
        assert_eq!(h.n_buckets(), 1024);
        let w = walk_all(&h, &view);
        assert!(w.items.is_empty() && w.errors.is_empty() && w.end.is_none());
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let p = bpf
            .percpu_htab(&bpf.map_by_id(4).unwrap().unwrap(), &g.offsets(), None)
            .unwrap();
        assert_eq!(
            p.pptr_decision(),
            Some(PptrDecision {
                placement: PptrPlacement::Aligned,
                evidence: PptrEvidence::NoEvidence { probed: 0 }
            })
        );
        assert_eq!(
            p.percpu_entries(&view, &g.offsets()).unwrap(),
            Default::default()
        );
    }
}

#[test]
fn keys_land_in_the_buckets_they_hash_to() {
    let mut spec = MapSpec::hash(1, "h", 8, 8, 100);
    for i in 0..100u64 {
        spec = spec.entry(&(i * 7919).to_le_bytes(), &(i * 3).to_le_bytes());
    }
    let g = build(SynthArch::Aarch64 { granule_shift: 14 }, 2, vec![spec]);
    let view = g.view();
    let h = open(&g, &view, 1);
    assert_eq!(h.n_buckets(), 128);
    let w = walk_all(&h, &view);
    assert_eq!(w.items.len(), 100);
    assert!(w.items.windows(2).all(|p| p[0].0 <= p[1].0), "bucket order");
    for (bucket, k, v) in &w.items {
        let i = u64::from_le_bytes(k[..].try_into().unwrap()) / 7919;
        assert_eq!(u64::from_le_bytes(v[..].try_into().unwrap()), i * 3);
        assert_eq!(*bucket, g.htabs[&1].elems[i as usize].bucket);
    }
}

#[test]
fn elements_past_the_buffer_are_read_in_pieces() {
    for arch in ARCHES {
        let size = ELEM_BUF as u32 + 3000;
        let spec = MapSpec::hash(1, "big", 12, size, 2)
            .vmalloc()
            .entry_in_bucket(1, &key(1, 12), &bytes(1, size as usize))
            .entry_in_bucket(1, &key(2, 12), &bytes(2, size as usize));
        let g = build(arch, 2, vec![spec]);
        let view = g.view();
        let h = open(&g, &view, 1);
        let mut w = h.walk(&view);
        let mut k = vec![0u8; 12];
        let mut v = vec![0u8; size as usize];
        let e = w.next_into(&mut k, &mut v).unwrap().unwrap();
        assert_eq!((w.key(), w.value()), (None, None));
        assert_eq!(
            (e.bucket, &k, &v),
            (1, &key(1, 12), &bytes(1, size as usize))
        );
        w.next_into(&mut k, &mut v).unwrap().unwrap();
        assert_eq!((&k, &v), (&key(2, 12), &bytes(2, size as usize)));
        assert!(w.next_into(&mut k, &mut v).is_none());
    }
}

#[test]
fn next_into_refuses_wrong_buffers_without_advancing() {
    let g = build(SynthArch::X86_64 { five_level: false }, 2, sample());
    let view = g.view();
    let h = open(&g, &view, 1);
    let mut w = h.walk(&view);
    assert_eq!(
        w.next_into(&mut [0u8; 3], &mut [0u8; 12]),
        Some(Err(Error::BufferSize { need: 4, have: 3 }))
    );
    assert_eq!(
        w.next_into(&mut [0u8; 4], &mut [0u8; 13]),
        Some(Err(Error::BufferSize { need: 12, have: 13 }))
    );
    assert!(!w.is_finished());
    let (mut k, mut v) = ([0u8; 4], [0u8; 12]);
    let mut n = 0;
    while let Some(item) = w.next_into(&mut k, &mut v) {
        item.unwrap();
        n += 1;
    }
    assert_eq!(n, 6);
    assert_eq!(w.visited(), 6);
}

#[test]
fn bucket_heads_are_batched_and_elements_read_once() {
    let mut spec = MapSpec::hash(1, "h", 4, 8, 1024);
    for i in 0..100u32 {
        spec = spec.entry_in_bucket(i * 10, &i.to_le_bytes(), &u64::from(i).to_le_bytes());
    }
    let g = build(SynthArch::X86_64 { five_level: false }, 2, vec![spec]);
    let mem = Counting {
        inner: g.ram.as_ram(),
        reads: Cell::new(0),
    };
    let view = KernelView::new(&mem, g.paging, g.addrs);
    let h = open(&g, &view, 1);
    mem.reads.set(0);
    let w = walk_all(&h, &view);
    assert_eq!(w.items.len(), 100);
    // 1024 heads of 16 bytes: four 4 KiB reads; then one read per element.
    assert_eq!(mem.reads.get(), 4 + 100);
}

#[test]
fn the_chain_cap_holds_at_and_fails_past_its_limit() {
    let g = chains();
    let at = limited(
        &g,
        Limits {
            bucket_chain: 4,
            ..Limits::DEFAULT
        },
    );
    let w = walk_all(&open(&g, &at, 1), &at);
    assert_eq!(w.items.len(), 6);
    assert!(w.errors.is_empty());
    let past = limited(
        &g,
        Limits {
            bucket_chain: 3,
            ..Limits::DEFAULT
        },
    );
    let w = walk_all(&open(&g, &past, 1), &past);
    let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
    assert_eq!(
        keys,
        [1, 30, 31, 32, 6],
        "bucket 3 cut, bucket 6 still walked"
    );
    assert_eq!(
        w.errors,
        [(
            Some(HtabPos {
                bucket: 3,
                elem: None
            }),
            Error::LimitExceeded {
                what: "hash bucket chain",
                limit: 3,
                at: 3
            }
        )]
    );
    assert_eq!(w.end, None);
}

#[test]
fn a_chain_cycle_ends_with_limit_exceeded() {
    let mut g = chains();
    // The last element of bucket 3 points back at its first.
    let elems = g.htabs[&1].elems.clone();
    let pa = g.pa_of(elems[4].kva);
    g.ram.write_u64(pa, elems[1].kva.0);
    // With a small chain cap the bucket ends and the walk goes on.
    let small = limited(
        &g,
        Limits {
            bucket_chain: 10,
            ..Limits::DEFAULT
        },
    );
    let w = walk_all(&open(&g, &small, 1), &small);
    // Each element once: the walk remembers what it yielded from the bucket.
    assert_eq!(w.items.len(), 1 + 4 + 1);
    assert_eq!(
        w.errors[0].1,
        Error::LimitExceeded {
            what: "hash bucket chain",
            limit: 10,
            at: 3
        }
    );
    assert_eq!(w.items.last().unwrap().1, [6; 4]);
    // With the default caps, the element cap (max_entries + HTAB_EXTRA_ELEMS) ends it.
    let view = g.view();
    let w = walk_all(&open(&g, &view, 1), &view);
    assert_eq!(w.items.len(), 1 + 4);
    assert_eq!(
        w.end,
        Some(Error::LimitExceeded {
            what: "hash map elements (max_entries + HTAB_EXTRA_ELEMS)",
            limit: 8 + u64::from(MAX_CPUS),
            at: 3
        })
    );
}

#[test]
fn the_element_cap_holds_at_and_fails_past_its_limit() {
    let cap = 1 + MAX_CPUS;
    for extra in [0u32, 1] {
        let mut spec = MapSpec::hash(1, "full", 4, 4, 1);
        for i in 0..cap + extra {
            spec = spec.entry_in_bucket(0, &i.to_le_bytes(), &i.to_le_bytes());
        }
        let g = build(SynthArch::X86_64 { five_level: false }, 2, vec![spec]);
        let view = g.view();
        let w = walk_all(&open(&g, &view, 1), &view);
        assert_eq!(w.items.len(), cap as usize);
        assert!(w.errors.is_empty());
        let end = (extra == 1).then_some(Error::LimitExceeded {
            what: "hash map elements (max_entries + HTAB_EXTRA_ELEMS)",
            limit: u64::from(cap),
            at: 0,
        });
        assert_eq!(w.end, end);
    }
}

#[test]
fn a_bad_element_pointer_is_an_error_for_its_bucket() {
    for bad in [0x0000_7fff_1234_5000u64, 0, 0xffff_8880_0000_0004] {
        let mut g = chains();
        let elems = g.htabs[&1].elems.clone();
        // The second element of bucket 3 points at `bad`.
        let pa = g.pa_of(elems[2].kva);
        g.ram.write_u64(pa, bad);
        let view = g.view();
        let w = walk_all(&open(&g, &view, 1), &view);
        let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
        assert_eq!(keys, [1, 30, 31, 6]);
        assert_eq!(
            w.errors,
            [(
                Some(HtabPos {
                    bucket: 3,
                    elem: None
                }),
                Error::Corrupt {
                    what: "hash bucket chain pointer (not a kernel pointer)",
                    at: elems[2].kva,
                    value: bad
                }
            )]
        );
    }
    // A bad head: the bucket is an error from the start.
    let mut g = chains();
    let head = g.htabs[&1].buckets.0 + 6 * 16;
    let pa = g.pa_of(Kva(head));
    g.ram.write_u64(pa, 0x1000);
    let view = g.view();
    let w = walk_all(&open(&g, &view, 1), &view);
    assert_eq!(w.items.len(), 5);
    assert_eq!(
        w.errors,
        [(
            Some(HtabPos {
                bucket: 6,
                elem: None
            }),
            Error::Corrupt {
                what: "hash bucket chain pointer (not a kernel pointer)",
                at: Kva(head),
                value: 0x1000
            }
        )]
    );
}

#[test]
fn a_nulls_marker_of_another_bucket_is_corrupt() {
    let mut g = chains();
    let elems = g.htabs[&1].elems.clone();
    let pa = g.pa_of(elems[4].kva);
    g.ram.write_u64(pa, (5 << 1) | 1);
    let view = g.view();
    let w = walk_all(&open(&g, &view, 1), &view);
    assert_eq!(w.items.len(), 6);
    assert_eq!(
        w.errors,
        [(
            Some(HtabPos {
                bucket: 3,
                elem: None
            }),
            Error::Corrupt {
                what: "hash bucket chain end (the nulls marker of another bucket)",
                at: elems[4].kva,
                value: 11
            }
        )]
    );
}

#[test]
fn an_unreadable_element_is_an_error_for_that_element() {
    let g = chains();
    let elems = g.htabs[&1].elems.clone();
    // The value of bucket 3's second element: its link still reads.
    let value = g.pa_of(Kva(elems[2].kva.0 + 56));
    let mem = FaultyMem::new(g.ram.as_ram(), value, 4, PhysErrorKind::Io);
    let view = KernelView::new(&mem, g.paging, g.addrs);
    let h = open(&g, &view, 1);
    let w = walk_all(&h, &view);
    let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
    assert_eq!(keys, [1, 30, 32, 33, 6]);
    assert_eq!(w.errors.len(), 1);
    assert_eq!(
        w.errors[0].0,
        Some(HtabPos {
            bucket: 3,
            elem: Some(elems[2].kva)
        })
    );
    assert!(matches!(
        w.errors[0].1,
        Error::Phys {
            kind: PhysErrorKind::Io,
            ..
        }
    ));
    // Its link unreadable too: the rest of the bucket is lost, the walk goes on.
    let mem = FaultyMem::new(g.ram.as_ram(), g.pa_of(elems[2].kva), 8, PhysErrorKind::Io);
    let view = KernelView::new(&mem, g.paging, g.addrs);
    let w = walk_all(&h, &view);
    let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
    assert_eq!(keys, [1, 30, 6]);
    assert_eq!(w.errors.len(), 1);
    // An unreadable bucket head: only that bucket.
    let head = g.pa_of(Kva(g.htabs[&1].buckets.0 + 3 * 16));
    let mem = FaultyMem::new(g.ram.as_ram(), head, 8, PhysErrorKind::Unmapped);
    let view = KernelView::new(&mem, g.paging, g.addrs);
    let w = walk_all(&h, &view);
    let keys: Vec<u8> = w.items.iter().map(|i| i.1[0]).collect();
    assert_eq!(keys, [1, 6]);
    assert_eq!(
        w.errors[0].0,
        Some(HtabPos {
            bucket: 3,
            elem: None
        })
    );
    // The allocating reader keeps the per-element errors beside the entries.
    let all = h.entries(&view).unwrap();
    assert_eq!((all.entries.len(), all.errors.len(), all.end), (2, 1, None));
}
