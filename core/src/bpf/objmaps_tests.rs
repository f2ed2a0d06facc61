use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::bpf::{EntryValue, PerCpuOffsets};
use crate::layout::KernelLayout;
use crate::synth::{GuestBuilder, MapSpec, SlotObject, SynthArch, SyntheticGuest};
use crate::Limits;

type Seen = Vec<(Vec<u8>, Vec<u8>)>;

fn k(i: u32) -> Vec<u8> {
    i.to_le_bytes().to_vec()
}

/// The synthetic kernel's hash (FNV-1a), which picks a SOCKHASH key's bucket.
fn fnv(key: &[u8]) -> u32 {
    key.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// One map of every object type, ids 1 to 9.
fn specs() -> Vec<MapSpec> {
    let new = |id, t, key, value, max| MapSpec::new(id, t, "obj", key, value, max);
    vec![
        new(1, MapType::DEVMAP, 4, 8, 4)
            .object(&k(1), SlotObject::NetDev([k(1), k(7)].concat()))
            .object(&k(3), SlotObject::NetDev([k(2), k(0)].concat())),
        // Four buckets: 5 and 1 share bucket 1 (chained in this order), 2 is alone.
        new(2, MapType::DEVMAP_HASH, 4, 4, 4)
            .object(&k(5), SlotObject::NetDev(k(5)))
            .object(&k(1), SlotObject::NetDev(k(1)))
            .object(&k(2), SlotObject::NetDev(k(2))),
        new(3, MapType::CPUMAP, 4, 8, 2)
            .object(&k(0), SlotObject::CpuEntry([k(192), k(0)].concat()))
            .object(&k(1), SlotObject::CpuEntry([k(2048), k(33)].concat())),
        new(4, MapType::SOCKMAP, 4, 8, 3).object(&k(2), SlotObject::Sock(0x1000_0000_0000_0042)),
        new(5, MapType::SOCKHASH, 6, 8, 8)
            .object(b"abcdef", SlotObject::Sock(7))
            .object(b"ghijkl", SlotObject::Sock(8))
            .object(b"mnopqr", SlotObject::Sock(0)),
        new(6, MapType::REUSEPORT_SOCKARRAY, 4, 8, 2).object(&k(0), SlotObject::Sock(99)),
        new(7, MapType::CGROUP_ARRAY, 4, 4, 3).object(&k(1), SlotObject::Cgroup(0x2a7)),
        new(8, MapType::PERF_EVENT_ARRAY, 4, 4, 4)
            .object(
                &k(0),
                SlotObject::PerfEvent {
                    event_type: 1,
                    config: 9,
                    cpu: 0,
                },
            )
            .object(
                &k(3),
                SlotObject::PerfEvent {
                    event_type: 2,
                    config: 0x1_0000_0001,
                    cpu: -1,
                },
            ),
        new(9, MapType::XSKMAP, 4, 4, 2).object(
            &k(1),
            SlotObject::Xsk {
                ifindex: 3,
                queue_id: 5,
            },
        ),
    ]
}

fn guest_of(arch: SynthArch, specs: &[MapSpec]) -> SyntheticGuest {
    let mut b = GuestBuilder::new(arch);
    for s in specs {
        b.add_map(s.clone());
    }
    b.build()
}

fn guest() -> SyntheticGuest {
    guest_of(SynthArch::X86_64 { five_level: false }, &specs())
}

fn walk_limits(g: &SyntheticGuest, id: u32, limits: Limits) -> Result<Seen> {
    let view = g.view().with_limits(limits);
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let lens = bpf.entry_buffer_lens(&map, 1)?;
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let mut out = Vec::new();
    let n = bpf.for_each_entry(
        &map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let EntryValue::Single(v) = v else {
                panic!("per-CPU object map")
            };
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        },
    )?;
    assert_eq!(n, out.len() as u64);
    Ok(out)
}

fn walk(g: &SyntheticGuest, id: u32) -> Result<Seen> {
    walk_limits(g, id, Limits::DEFAULT)
}

#[test]
fn every_object_map_hands_what_a_lookup_returns_in_get_next_key_order() {
    let cookie = |c: u64| c.to_le_bytes().to_vec();
    for arch in [
        SynthArch::X86_64 { five_level: true },
        SynthArch::Aarch64 { granule_shift: 12 },
        SynthArch::Aarch64Lpa2 { granule_shift: 14 },
    ] {
        let g = guest_of(arch, &specs());
        let want: [Seen; 9] = [
            vec![(k(1), [k(1), k(7)].concat()), (k(3), [k(2), k(0)].concat())],
            vec![(k(5), k(5)), (k(1), k(1)), (k(2), k(2))],
            vec![
                (k(0), [k(192), k(0)].concat()),
                (k(1), [k(2048), k(33)].concat()),
            ],
            vec![(k(2), cookie(0x1000_0000_0000_0042))],
            {
                // Bucket order (the hash's low 3 bits), then the order given.
                let mut v: Vec<(u32, usize, Vec<u8>, Vec<u8>)> =
                    [&b"abcdef"[..], b"ghijkl", b"mnopqr"]
                        .iter()
                        .zip([7u64, 8, 0])
                        .enumerate()
                        .map(|(i, (key, c))| (fnv(key) & 7, i, key.to_vec(), cookie(c)))
                        .collect();
                v.sort();
                v.into_iter().map(|(_, _, k, c)| (k, c)).collect()
            },
            vec![(k(0), cookie(99))],
            vec![(k(1), cookie(0x2a7))],
            vec![
                (k(0), [k(1), k(0), cookie(9)].concat()),
                (k(3), [k(2), k(u32::MAX), cookie(0x1_0000_0001)].concat()),
            ],
            vec![(k(1), [k(3), k(5)].concat())],
        ];
        for (id, want) in (1..).zip(want) {
            assert_eq!(walk(&g, id).unwrap(), want, "{arch:?}: map {id}");
        }
    }
}

#[test]
fn the_callback_stops_each_kind() {
    let g = guest();
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    for id in [1, 2, 5, 8] {
        let map = bpf.map_by_id(id).unwrap().unwrap();
        let lens = bpf.entry_buffer_lens(&map, 1).unwrap();
        let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
        let mut calls = 0;
        let n = bpf
            .for_each_object_slot(&map, &mut key, &mut value, |_, _| {
                calls += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!((n, calls), (1, 1), "map {id}");
    }
}

/// Writes `v` at kernel address `va` of `g`.
fn poke(g: &mut SyntheticGuest, va: Kva, v: u64) {
    let pa = g.pa_of(va);
    g.ram.write_u64(pa, v);
}

fn poke_u32(g: &mut SyntheticGuest, va: Kva, v: u32) {
    let pa = g.pa_of(va);
    g.ram.write_u32(pa, v);
}

fn corrupt_what(r: Result<Seen>) -> &'static str {
    match r {
        Err(Error::Corrupt { what, .. }) => what,
        other => panic!("not corrupt: {other:?}"),
    }
}

#[test]
fn hostile_slots_and_objects_are_refused_by_name() {
    let l = crate::synth::default_layout();
    // A slot that is no kernel pointer, in each array kind.
    for id in [1, 3, 4, 6, 7, 8, 9] {
        let mut g = guest();
        let slot = g.objects[&id][0].slot;
        poke(&mut g, slot, 0x1234_5678);
        assert!(
            corrupt_what(walk(&g, id)).ends_with("(not a kernel pointer)"),
            "map {id}"
        );
    }
    // A devmap or cpumap object whose key is not its slot's.
    let mut g = guest();
    let dev = g.objects[&1][0].object;
    poke_u32(&mut g, Kva(dev.0 + u64::from(l.devmap.unwrap().idx)), 2);
    assert_eq!(
        corrupt_what(walk(&g, 1)),
        "bpf_dtab_netdev.idx (not its slot)"
    );
    let entry = g.objects[&3][1].object;
    poke_u32(
        &mut g,
        Kva(entry.0 + u64::from(l.cpumap.unwrap().entry_cpu)),
        0,
    );
    assert_eq!(
        corrupt_what(walk(&g, 3)),
        "bpf_cpu_map_entry.cpu (not its slot)"
    );
    // A hash element in another bucket than its key's.
    let mut g = guest();
    let dev = g.objects[&2][2].object;
    poke_u32(&mut g, Kva(dev.0 + u64::from(l.devmap.unwrap().idx)), 3);
    assert_eq!(
        corrupt_what(walk(&g, 2)),
        "bpf_dtab_netdev.idx (not of its bucket)"
    );
    let elem = g.objects[&5][0].object;
    let hash_at = Kva(elem.0 + u64::from(l.sockmap.unwrap().elem_hash));
    let hash = fnv(b"abcdef");
    poke_u32(&mut g, hash_at, hash ^ 1);
    assert_eq!(
        corrupt_what(walk(&g, 5)),
        "bpf_shtab_elem.hash (not of its bucket)"
    );
    // Bucket counts the kernel would not make.
    let mut g = guest();
    let maps = g.maps.clone();
    poke_u32(
        &mut g,
        Kva(maps[1].kva.0 + u64::from(l.devmap.unwrap().n_buckets)),
        8,
    );
    assert_eq!(
        corrupt_what(walk(&g, 2)),
        "bpf_dtab.n_buckets (not roundup_pow_of_two(max_entries))"
    );
    poke_u32(
        &mut g,
        Kva(maps[4].kva.0 + u64::from(l.sockmap.unwrap().buckets_num)),
        0,
    );
    assert_eq!(
        corrupt_what(walk(&g, 5)),
        "bpf_shtab.buckets_num (not roundup_pow_of_two(max_entries))"
    );
    // A chain link that is no kernel pointer.
    let mut g = guest();
    let slot = g.objects[&2][0].slot;
    poke(&mut g, slot, 0x10);
    assert_eq!(
        corrupt_what(walk(&g, 2)),
        "hash chain link (not a kernel pointer)"
    );
    // Key sizes an object map cannot have (SOCKHASH's is free).
    let mut g = guest();
    poke_u32(
        &mut g,
        Kva(maps[1].kva.0 + u64::from(l.bpf_map.key_size)),
        132,
    );
    assert_eq!(corrupt_what(walk(&g, 2)), "object map key_size (not 4)");
    // Value sizes a devmap cannot have.
    let mut g = guest();
    poke_u32(
        &mut g,
        Kva(maps[0].kva.0 + u64::from(l.bpf_map.value_size)),
        6,
    );
    assert_eq!(
        corrupt_what(walk(&g, 1)),
        "devmap or cpumap value_size (not 4 or 8)"
    );
    // A perf event whose event pointer is garbage; an XDP socket without a device.
    let mut g = guest();
    let entry = g.objects[&8][0].object;
    poke(
        &mut g,
        Kva(entry.0 + u64::from(l.perf_event.unwrap().entry_event)),
        1,
    );
    assert_eq!(
        corrupt_what(walk(&g, 8)),
        "bpf_event_entry.event (not a kernel pointer)"
    );
    let xs = g.objects[&9][0].object;
    poke(&mut g, Kva(xs.0 + u64::from(l.xskmap.unwrap().dev)), 0);
    assert_eq!(walk(&g, 9).unwrap(), [(k(1), [k(0), k(5)].concat())]);
}

#[test]
fn a_cycle_ends_at_the_chain_cap_and_a_chain_at_the_cap_is_whole() {
    // Bucket 1 of the devmap hash holds two elements: a cap of two reads it, one
    // refuses it.
    let g = guest();
    let two = Limits {
        bucket_chain: 2,
        ..Limits::DEFAULT
    };
    assert_eq!(walk_limits(&g, 2, two).unwrap().len(), 3);
    let one = Limits {
        bucket_chain: 1,
        ..Limits::DEFAULT
    };
    assert_eq!(
        walk_limits(&g, 2, one),
        Err(Error::LimitExceeded {
            what: "elements of one hash chain (Limits::bucket_chain)",
            limit: 1,
            at: 2
        })
    );
    // The second element of bucket 1 points back at the first: a cycle.
    let mut g = guest();
    let l = g.layout.devmap.unwrap();
    let [first, second] = [g.objects[&2][0], g.objects[&2][1]];
    let next_of_second = Kva(second.object.0 + u64::from(l.index_hlist) + u64::from(l.node_next));
    poke(
        &mut g,
        next_of_second,
        first.object.0 + u64::from(l.index_hlist),
    );
    let hundred = Limits {
        bucket_chain: 100,
        ..Limits::DEFAULT
    };
    assert_eq!(
        walk_limits(&g, 2, hundred),
        Err(Error::LimitExceeded {
            what: "elements of one hash chain (Limits::bucket_chain)",
            limit: 100,
            at: 101
        })
    );
    // With the default chain cap the whole map's cap (4 + HTAB_EXTRA_ELEMS) ends it.
    assert_eq!(
        walk(&g, 2),
        Err(Error::LimitExceeded {
            what: "elements of a hash map (max_entries + HTAB_EXTRA_ELEMS)",
            limit: 4 + u64::from(HTAB_EXTRA_ELEMS),
            at: 5 + u64::from(HTAB_EXTRA_ELEMS)
        })
    );
}

#[test]
fn bucket_and_cpu_caps_hold_at_the_limit_and_refuse_one_past() {
    let g = guest();
    // The devmap hash has 4 buckets.
    let four = Limits {
        htab_buckets: 4,
        ..Limits::DEFAULT
    };
    assert_eq!(walk_limits(&g, 2, four).unwrap().len(), 3);
    let three = Limits {
        htab_buckets: 3,
        ..Limits::DEFAULT
    };
    assert_eq!(
        walk_limits(&g, 2, three),
        Err(Error::LimitExceeded {
            what: "buckets of a hash map (Limits::htab_buckets)",
            limit: 3,
            at: 4
        })
    );
    // A cpumap of MAX_CPUS slots is read; one more is refused before any slot is.
    let spec = MapSpec::new(1, MapType::CPUMAP, "cpus", 4, 4, MAX_CPUS)
        .object(&k(MAX_CPUS - 1), SlotObject::CpuEntry(k(64)));
    let mut g = guest_of(SynthArch::X86_64 { five_level: false }, &[spec]);
    assert_eq!(walk(&g, 1).unwrap(), [(k(MAX_CPUS - 1), k(64))]);
    let at = Kva(g.maps[0].kva.0 + u64::from(g.layout.bpf_map.max_entries));
    poke_u32(&mut g, at, MAX_CPUS + 1);
    assert_eq!(
        corrupt_what(walk(&g, 1)),
        "object array max_entries (above the kernel's limit)"
    );
}

#[test]
fn wrong_buffers_and_missing_layouts_are_typed_errors() {
    let g = guest();
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let sockhash = bpf.map_by_id(5).unwrap().unwrap();
    assert_eq!(
        bpf.for_each_object_slot(&sockhash, &mut [0; 6], &mut [0; 4], |_, _| {
            ControlFlow::Continue(())
        }),
        Err(Error::BufferSize { need: 8, have: 4 })
    );
    assert_eq!(
        bpf.for_each_object_slot(&sockhash, &mut [0; 4], &mut [0; 8], |_, _| {
            ControlFlow::Continue(())
        }),
        Err(Error::BufferSize { need: 6, have: 4 })
    );
    type Strip = fn(&mut KernelLayout);
    let cases: [(u32, Strip, &str); 6] = [
        (1, |l| l.devmap = None, "bpf_dtab"),
        (3, |l| l.cpumap = None, "bpf_cpu_map"),
        (4, |l| l.sock = None, "sock"),
        (7, |l| l.cgroup = None, "cgroup"),
        (8, |l| l.perf_event = None, "bpf_event_entry"),
        (9, |l| l.xskmap = None, "xsk_map"),
    ];
    for (id, strip, what) in cases {
        let mut layout = g.layout;
        strip(&mut layout);
        let bpf = Bpf::new(&view, &layout, g.map_idr);
        let map = bpf.map_by_id(id).unwrap().unwrap();
        let lens = bpf.entry_buffer_lens(&map, 1).unwrap();
        let r = bpf.for_each_object_slot(
            &map,
            &mut vec![0; lens.key],
            &mut vec![0; lens.value],
            |_, _| ControlFlow::Continue(()),
        );
        assert_eq!(r, Err(Error::LayoutMissing { what }), "map {id}");
    }
    let hash = MapSpec::hash(10, "h", 4, 4, 4);
    let g = guest_of(SynthArch::X86_64 { five_level: false }, &[hash]);
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(10).unwrap().unwrap();
    assert!(matches!(
        bpf.for_each_object_slot(
            &map,
            &mut [0; 4],
            &mut [0; 4],
            |_, _| ControlFlow::Continue(())
        ),
        Err(Error::WrongMapType { id: 10, .. })
    ));
}
