//! Memory sources over guests that change while they are read.

use std::ops::ControlFlow;

use super::*;
use crate::describe::{Kernel, Symbols};
use mapwalk_core::synth::{ChangingRam, GuestBuilder, MapSpec, SynthRam, SyntheticGuest};
use mapwalk_core::{KernelView, Pa};

fn source(g: &SyntheticGuest, mem: ChangingRam) -> MemorySource<ChangingRam> {
    MemorySource::new(Kernel {
        view: KernelView::new(mem, g.paging, g.addrs),
        layout: g.layout,
        btf: crate::btf::KernelBtf::new(Vec::new()),
        symbols: Symbols::default(),
        map_idr: g.map_idr,
        prog_idr: Some(g.prog_idr),
        per_cpu_offset: None,
        nr_cpu_ids: Some(g.symbols.nr_cpu_ids),
        release: None,
        warnings: Vec::new(),
        vmcoreinfo: None,
        phys_base: g.phys_base,
        page_offset_base: g.addrs.direct_map.unwrap().virt.0,
        slide: 0,
    })
}

/// Key and value bytes.
type Entry = (Vec<u8>, Vec<u8>);

fn entries(src: &dyn MapSource, id: u32) -> (Vec<Entry>, Result<(), SourceError>) {
    let map = src.map_by_id(id).unwrap().unwrap();
    let mut got = Vec::new();
    let r = src.for_each_entry(&map, &mut |k, v| {
        let ValueRef::Single(v) = v else {
            panic!("a per-CPU value")
        };
        got.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    });
    (got, r)
}

#[test]
fn a_key_met_twice_is_handed_on_once_the_first_time() {
    // A guest stopped while an update had linked a key's new element in front of the
    // old one.
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(
        MapSpec::hash(1, "h", 2, 2, 8)
            .entry_in_bucket(3, b"kk", b"v2")
            .entry_in_bucket(3, b"kk", b"v1")
            .entry_in_bucket(5, b"jj", b"w1"),
    );
    let g = b.build();
    let src = source(&g, ChangingRam::new(g.ram.clone()));
    let (got, r) = entries(&src, 1);
    r.unwrap();
    assert_eq!(
        got,
        [
            (b"kk".to_vec(), b"v2".to_vec()),
            (b"jj".to_vec(), b"w1".to_vec())
        ]
    );
}

#[test]
fn more_keys_than_the_map_holds_is_unstable_after_max_entries() {
    for (n, whole) in [(2u8, true), (3, false)] {
        let mut spec = MapSpec::hash(1, "h", 2, 2, 2);
        for i in 0..n {
            spec = spec.entry_in_bucket(u32::from(i % 2), &[i, i], &[i, 0]);
        }
        let mut b = GuestBuilder::x86_64(false);
        b.add_map(spec);
        let g = b.build();
        let src = source(&g, ChangingRam::new(g.ram.clone()));
        let (got, r) = entries(&src, 1);
        assert_eq!(got.len(), 2, "{n} keys");
        match r {
            Ok(()) => assert!(whole),
            Err(SourceError::Unstable(msg)) => {
                assert!(!whole);
                assert!(
                    msg.contains("more distinct keys than the map holds (2)"),
                    "{msg}"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// A guest whose one HASH entry's value is `first` at the first read of its element,
/// `then` from the second on (`None`: a new value before every read).
fn changing(first: [u8; 2], then: Option<[u8; 2]>) -> (SyntheticGuest, ChangingRam) {
    let mut b = GuestBuilder::x86_64(false);
    b.add_map(MapSpec::hash(1, "h", 2, 2, 8).entry(b"kk", b"00"));
    let g = b.build();
    let elem = g.pa_of(g.htabs[&1].elems[0].kva);
    let value = Pa(elem.0 + u64::from(g.layout.htab.unwrap().elem_key) + 8);
    let mem = ChangingRam::new(g.ram.clone())
        .on_read(elem, 1, move |r: &mut SynthRam| r.write(value, &first));
    let mem = match then {
        Some(then) => mem.on_read(elem, 2, move |r: &mut SynthRam| r.write(value, &then)),
        None => {
            let mut n = 0u8;
            mem.every(move |r: &mut SynthRam| {
                n = n.wrapping_add(1);
                r.write(value, &[b'x', n]);
            })
        }
    };
    (g, mem)
}

#[test]
fn agreeing_reads_give_the_value_two_reads_saw() {
    let (g, mem) = changing(*b"11", Some(*b"22"));
    let src = source(&g, mem).with_settle(Settle::Agree(3));
    let (got, r) = entries(&src, 1);
    r.unwrap();
    assert_eq!(got, [(b"kk".to_vec(), b"22".to_vec())]);

    // One read alone hands on what it saw.
    let (g, mem) = changing(*b"11", Some(*b"22"));
    let (got, r) = entries(&source(&g, mem), 1);
    r.unwrap();
    assert_eq!(got, [(b"kk".to_vec(), b"11".to_vec())]);
}

#[test]
fn a_map_that_never_settles_is_unstable_with_nothing_handed_on() {
    let (g, mem) = changing(*b"11", None);
    let src = source(&g, mem).with_settle(Settle::Agree(4));
    let (got, r) = entries(&src, 1);
    assert!(got.is_empty());
    match r {
        Err(SourceError::Unstable(msg)) => {
            assert!(
                msg.starts_with("map 1: no two of 4 reads in a row agreed"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
}
