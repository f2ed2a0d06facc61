use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::bpf::EntryValue;
use crate::kernel::KernelView;
use crate::limits::Limits;
use crate::synth::{ChangingRam, GuestBuilder, MapSpec, SyntheticGuest};

fn task(pid: i32, comm: &str) -> OwnerDesc {
    let mut c = [0u8; 16];
    c[..comm.len()].copy_from_slice(comm.as_bytes());
    OwnerDesc::Task(TaskOwner {
        pid,
        tgid: pid,
        comm: c,
    })
}

fn inode(ino: u64, major: u32, minor: u32) -> OwnerDesc {
    OwnerDesc::Inode(InodeOwner {
        ino,
        dev: major << 20 | minor,
    })
}

fn sock(family: u16, local: (&[u8], u16), remote: (&[u8], u16), cookie: u64) -> OwnerDesc {
    let (mut la, mut ra) = ([0u8; 16], [0u8; 16]);
    la[..local.0.len()].copy_from_slice(local.0);
    ra[..remote.0.len()].copy_from_slice(remote.0);
    OwnerDesc::Sock(SockOwner {
        cookie,
        family,
        local_port: local.1,
        remote_port: remote.1,
        local_addr: la,
        remote_addr: ra,
    })
}

fn cgroup(id: u64, name: &[u8]) -> OwnerDesc {
    OwnerDesc::Cgroup(CgroupOwner::new(id, name))
}

fn v(n: u8) -> Vec<u8> {
    vec![n, n + 1, n + 2, n + 3]
}

/// One map of each kind: 1 task, 2 inode, 3 sock, 4 cgroup.
fn specs() -> Vec<MapSpec> {
    let mut loopback6 = [0u8; 16];
    loopback6[15] = 1;
    vec![
        MapSpec::storage(1, MapType::TASK_STORAGE, "tasks", 4)
            .storage_elem(task(1, "init"), &v(10))
            .storage_elem(task(42, "worker"), &v(20))
            .storage_elem_in_bucket(0, task(7, "fifteen-chars-x"), &v(30)),
        MapSpec::storage(2, MapType::INODE_STORAGE, "inodes", 4)
            .storage_elem(inode(1234, 0, 17), &v(40))
            .storage_elem(inode(u64::MAX, 259, 0xfffff), &v(50)),
        MapSpec::storage(3, MapType::SK_STORAGE, "socks", 4)
            .storage_elem(
                sock(AF_INET, (&[127, 0, 0, 1], 47001), (&[0; 4], 0), 4097),
                &v(60),
            )
            .storage_elem(
                sock(
                    AF_INET,
                    (&[127, 0, 0, 1], 40000),
                    (&[127, 0, 0, 1], 47001),
                    0,
                ),
                &v(70),
            )
            .storage_elem(
                sock(AF_INET6, (&loopback6, 47003), (&[0; 16], 0), 9),
                &v(80),
            )
            // A UNIX socket: no addresses.
            .storage_elem(sock(1, (&[], 0), (&[], 0), 5), &v(90)),
        MapSpec::storage(4, MapType::CGRP_STORAGE, "cgroups", 4)
            .storage_elem(cgroup(1, b""), &v(100))
            .storage_elem(cgroup(4242, b"mw_cg"), &v(110))
            .storage_elem(cgroup(7, &[b'n'; 255]), &v(120)),
    ]
}

fn build(specs: &[MapSpec]) -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false);
    for s in specs {
        b.add_map(s.clone());
    }
    b.build()
}

type Seen = Vec<(Option<OwnerDesc>, Vec<u8>)>;

fn walk_view<K: KernelRead + ?Sized>(
    view: &K,
    g: &SyntheticGuest,
    id: u32,
) -> Result<(Seen, StorageWalkStats)> {
    let bpf = Bpf::new(view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let mut value = vec![0u8; map.value_size as usize];
    let mut seen = Vec::new();
    let stats = bpf.for_each_storage_elem(&map, &mut value, |o, v| {
        assert_eq!(o.kind, OwnerKind::of(map.map_type).unwrap());
        seen.push((o.desc, v.to_vec()));
        ControlFlow::Continue(())
    })?;
    assert_eq!(stats.elems, seen.len() as u64);
    Ok((seen, stats))
}

fn walk(g: &SyntheticGuest, id: u32) -> Result<Seen> {
    walk_view(&g.view(), g, id).map(|(s, _)| s)
}

/// What the builder laid out, in walk order: buckets in order, each chain as given.
fn expected(g: &SyntheticGuest, spec: &MapSpec) -> Seen {
    let built = &g.storage[&spec.id];
    let mut out: Vec<(u32, usize)> = built
        .elems
        .iter()
        .enumerate()
        .map(|(i, e)| (e.bucket, i))
        .collect();
    out.sort();
    out.into_iter()
        .map(|(_, i)| (Some(spec.storage[i].owner), spec.storage[i].value.clone()))
        .collect()
}

#[test]
fn every_kind_of_owner_is_described_with_its_value() {
    let specs = specs();
    let g = build(&specs);
    for spec in &specs {
        let got = walk(&g, spec.id).unwrap();
        assert_eq!(got.len(), spec.storage.len(), "map {}", spec.id);
        assert_eq!(got, expected(&g, spec), "map {}", spec.id);
    }
    for arch in [
        crate::synth::SynthArch::Aarch64 { granule_shift: 16 },
        crate::synth::SynthArch::Aarch64Lpa2 { granule_shift: 12 },
    ] {
        let mut b = GuestBuilder::new(arch);
        for s in &specs {
            b.add_map(s.clone());
        }
        let g = b.build();
        for spec in &specs {
            assert_eq!(walk(&g, spec.id).unwrap(), expected(&g, spec), "{arch:?}");
        }
    }
    // Buckets in order, each chain from its head: task 1, then 7 (also bucket 0), 42.
    let got = walk(&g, 1).unwrap();
    let pids: Vec<i32> = got
        .iter()
        .map(|(d, _)| match d {
            Some(OwnerDesc::Task(t)) => t.pid,
            _ => panic!(),
        })
        .collect();
    assert_eq!(pids, [1, 7, 42]);
    match got[1].0 {
        Some(OwnerDesc::Task(t)) => assert_eq!(t.comm(), b"fifteen-chars-x"),
        _ => panic!(),
    }
    match walk(&g, 4).unwrap()[0].0 {
        Some(OwnerDesc::Cgroup(c)) => assert_eq!((c.id, c.name()), (1, &b""[..])),
        _ => panic!(),
    }
    match walk(&g, 2).unwrap()[1].0 {
        Some(OwnerDesc::Inode(i)) => assert_eq!((i.major(), i.minor()), (259, 0xfffff)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn entries_carry_the_owner_record_as_their_key() {
    let specs = specs();
    let g = build(&specs);
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    for spec in &specs {
        let map = bpf.map_by_id(spec.id).unwrap().unwrap();
        let kind = OwnerKind::of(map.map_type).unwrap();
        let lens = bpf.entry_buffer_lens(&map, 0).unwrap();
        assert_eq!((lens.key, lens.value), (kind.record_len(), 4));
        let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
        let mut got = Vec::new();
        let n = bpf
            .for_each_entry(
                &map,
                None::<&crate::bpf::PerCpuOffsets<Vec<u64>>>,
                &mut key,
                &mut value,
                |k, v| {
                    let owner = StorageOwner::from_record(kind, k).unwrap();
                    let EntryValue::Single(v) = v else { panic!() };
                    got.push((owner.desc, v.to_vec()));
                    // The record is the owner's, address included.
                    let mut again = vec![0u8; kind.record_len()];
                    owner.write_record(&mut again).unwrap();
                    assert_eq!(again, k);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(n, spec.storage.len() as u64);
        assert_eq!(got, expected(&g, spec), "map {}", spec.id);
    }
}

#[test]
fn records_of_another_shape_are_refused() {
    let owner = StorageOwner {
        kind: OwnerKind::Cgroup,
        kva: Kva(0xffff_8880_0000_1000),
        desc: Some(cgroup(3, b"abc")),
    };
    let mut rec = vec![0u8; OwnerKind::Cgroup.record_len()];
    owner.write_record(&mut rec).unwrap();
    assert_eq!(
        StorageOwner::from_record(OwnerKind::Cgroup, &rec),
        Some(owner)
    );
    assert_eq!(StorageOwner::from_record(OwnerKind::Task, &rec), None);
    assert_eq!(
        StorageOwner::from_record(OwnerKind::Cgroup, &rec[..100]),
        None
    );
    let mut bad = rec.clone();
    bad[1] = 2;
    assert_eq!(StorageOwner::from_record(OwnerKind::Cgroup, &bad), None);
    assert_eq!(
        owner.write_record(&mut [0u8; 40]),
        Err(Error::BufferSize {
            need: 288,
            have: 40
        })
    );
    // Undescribed: the address alone.
    let bare = StorageOwner {
        desc: None,
        ..owner
    };
    bare.write_record(&mut rec).unwrap();
    assert_eq!(rec[1], 0);
    assert_eq!(
        StorageOwner::from_record(OwnerKind::Cgroup, &rec),
        Some(bare)
    );
}

#[test]
fn owners_without_offsets_are_given_by_address() {
    let mut layout = crate::synth::default_layout();
    let mut st = layout.storage.unwrap();
    st.task = None;
    layout.storage = Some(st);
    let mut b = GuestBuilder::x86_64(false).layout(layout);
    b.add_map(MapSpec::storage(1, MapType::TASK_STORAGE, "t", 4).storage_elem(task(3, "x"), &v(1)));
    let g = b.build();
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let mut owners = Vec::new();
    bpf.for_each_storage_elem(&map, &mut [0; 4], |o, _| {
        owners.push(*o);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        owners,
        [StorageOwner {
            kind: OwnerKind::Task,
            kva: g.storage[&1].elems[0].owner,
            desc: None
        }]
    );
}

fn three_tasks() -> SyntheticGuest {
    build(&[MapSpec::storage(1, MapType::TASK_STORAGE, "t", 4)
        .storage_elem_in_bucket(0, task(1, "a"), &v(1))
        .storage_elem_in_bucket(0, task(2, "b"), &v(2))
        .storage_elem_in_bucket(0, task(3, "c"), &v(3))])
}

fn pids(seen: &Seen) -> Vec<i32> {
    seen.iter()
        .map(|(d, _)| match d {
            Some(OwnerDesc::Task(t)) => t.pid,
            _ => -1,
        })
        .collect()
}

fn write_u64(g: &mut SyntheticGuest, at: Kva, v: u64) {
    let pa = g.pa_of(at);
    g.ram.write_u64(pa, v);
}

#[test]
fn elements_being_freed_are_skipped_as_rcu_readers_skip_them() {
    let st = crate::synth::default_layout().storage.unwrap();
    let off = |base: Kva, o: u32| Kva(base.0 + u64::from(o));
    // NULL owner (the owner's last element is going), NULL local_storage, NULL smap.
    for what in 0..3 {
        let mut g = three_tasks();
        let e = g.storage[&1].elems[1];
        let at = match what {
            0 => off(e.local_storage, st.storage_owner),
            1 => off(e.kva, st.elem_local_storage),
            _ => off(e.kva, st.elem_smap),
        };
        write_u64(&mut g, at, 0);
        let (seen, stats) = walk_view(&g.view(), &g, 1).unwrap();
        assert_eq!(pids(&seen), [1, 3], "case {what}");
        assert_eq!((stats.skipped, stats.rereads), (1, 0));
    }
    // Unlinked while read (pprev NULL): skipped, and the chain goes on through it.
    let mut g = three_tasks();
    let e = g.storage[&1].elems[0];
    write_u64(&mut g, off(e.kva, st.elem_pprev), 0);
    let (seen, stats) = walk_view(&g.view(), &g, 1).unwrap();
    assert_eq!(pids(&seen), [2, 3]);
    assert_eq!(stats.skipped, 1);
}

#[test]
fn an_element_of_another_map_or_a_bad_pointer_is_corrupt() {
    let st = crate::synth::default_layout().storage.unwrap();
    let mut g = three_tasks();
    let e = g.storage[&1].elems[2];
    write_u64(
        &mut g,
        Kva(e.kva.0 + u64::from(st.elem_smap)),
        0xffff_8880_dead_0000,
    );
    assert!(matches!(
        walk(&g, 1),
        Err(Error::Corrupt {
            what: "bpf_local_storage_elem.sdata.smap (another map)",
            value: 0xffff_8880_dead_0000,
            ..
        })
    ));
    let mut g = three_tasks();
    let e = g.storage[&1].elems[0];
    write_u64(
        &mut g,
        Kva(e.local_storage.0 + u64::from(st.storage_owner)),
        0x1234,
    );
    assert!(matches!(
        walk(&g, 1),
        Err(Error::Corrupt {
            what: "bpf_local_storage.owner (not a kernel pointer)",
            ..
        })
    ));
    let mut g = three_tasks();
    let map = g.maps[0].kva;
    write_u64(&mut g, Kva(map.0 + u64::from(st.buckets)), 0);
    assert!(matches!(
        walk(&g, 1),
        Err(Error::Corrupt {
            what: "bpf_local_storage_map.buckets (not a kernel pointer)",
            ..
        })
    ));
}

#[test]
fn cycles_end_as_corrupt_after_one_more_read() {
    let st = crate::synth::default_layout().storage.unwrap();
    // c -> a: a's back link is the bucket head, not c's next.
    let mut g = three_tasks();
    let [a, _, c] = [0, 1, 2].map(|i| g.storage[&1].elems[i]);
    write_u64(&mut g, Kva(c.kva.0 + u64::from(st.elem_next)), a.kva.0);
    let (seen, stats) = {
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(1).unwrap().unwrap();
        let mut stats = StorageWalkStats::default();
        let mut seen = Vec::new();
        let r = bpf.storage_walk(&map, &mut [0; 4], &mut stats, &mut |o, v| {
            seen.push((o.desc, v.to_vec()));
            ControlFlow::Continue(())
        });
        assert_eq!(
            r,
            Err(Error::Corrupt {
                what: "bpf_local_storage_elem.map_node.pprev (does not point back)",
                at: Kva(c.kva.0 + u64::from(st.elem_next)),
                value: a.kva.0,
            })
        );
        (seen, stats)
    };
    // Each element once, before the error; the bucket read twice.
    assert_eq!(pids(&seen), [1, 2, 3]);
    assert_eq!(stats.rereads, 1);

    // A cycle whose back links are all NULL (unlinked elements point on): the visit
    // cap ends it.
    let mut g = three_tasks();
    for e in g.storage[&1].elems.clone() {
        write_u64(&mut g, Kva(e.kva.0 + u64::from(st.elem_pprev)), 0);
    }
    write_u64(&mut g, Kva(c.kva.0 + u64::from(st.elem_next)), a.kva.0);
    let view = g.view().with_limits(Limits {
        storage_elems: 1000,
        ..Limits::DEFAULT
    });
    assert!(matches!(
        walk_view(&view, &g, 1),
        Err(Error::LimitExceeded {
            what: "local-storage elements visited in one walk",
            limit: 1000,
            at: 1001
        })
    ));
}

#[test]
fn the_element_cap_holds_at_its_limit_and_not_one_past() {
    let g = three_tasks();
    for (cap, ok) in [(3, true), (2, false)] {
        let view = g.view().with_limits(Limits {
            storage_elems: cap,
            ..Limits::DEFAULT
        });
        let r = walk_view(&view, &g, 1);
        assert_eq!(r.is_ok(), ok, "cap {cap}: {r:?}");
        if !ok {
            assert!(matches!(
                r,
                Err(Error::LimitExceeded {
                    limit: 2,
                    at: 3,
                    ..
                })
            ));
        }
    }
}

#[test]
fn bucket_log_is_capped_at_the_most_cpus() {
    for (log, ok) in [
        (STORAGE_MAX_BUCKET_LOG, true),
        (STORAGE_MAX_BUCKET_LOG + 1, false),
    ] {
        let g = build(&[MapSpec::storage(1, MapType::SK_STORAGE, "s", 4).bucket_log(log)]);
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(1).unwrap().unwrap();
        let r = bpf.for_each_storage_elem(&map, &mut [0; 4], |_, _| ControlFlow::Continue(()));
        if ok {
            assert_eq!(r, Ok(StorageWalkStats::default()));
        } else {
            assert_eq!(
                r,
                Err(Error::LimitExceeded {
                    what: "local-storage bucket_log",
                    limit: 13,
                    at: 14
                })
            );
        }
    }
}

#[test]
fn value_size_and_buffers_are_checked() {
    let g = build(&[
        MapSpec::storage(1, MapType::TASK_STORAGE, "big", STORAGE_MAX_VALUE_SIZE)
            .storage_elem(task(5, "big"), &[0xab; STORAGE_MAX_VALUE_SIZE as usize]),
        MapSpec::storage(
            2,
            MapType::TASK_STORAGE,
            "bigger",
            STORAGE_MAX_VALUE_SIZE + 1,
        ),
        MapSpec::array(3, "arr", 4, 1),
    ]);
    let got = walk(&g, 1).unwrap();
    assert_eq!(got[0].1, vec![0xab; STORAGE_MAX_VALUE_SIZE as usize]);
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(2).unwrap().unwrap();
    let mut value = vec![0u8; map.value_size as usize];
    assert_eq!(
        bpf.for_each_storage_elem(&map, &mut value, |_, _| ControlFlow::Continue(())),
        Err(Error::LimitExceeded {
            what: "local-storage value_size",
            limit: 0xffff,
            at: 0x10000
        })
    );
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert_eq!(
        bpf.for_each_storage_elem(&map, &mut [0; 4], |_, _| ControlFlow::Continue(())),
        Err(Error::BufferSize {
            need: 0xffff,
            have: 4
        })
    );
    let map = bpf.map_by_id(3).unwrap().unwrap();
    assert!(matches!(
        bpf.for_each_storage_elem(&map, &mut [0; 4], |_, _| ControlFlow::Continue(())),
        Err(Error::WrongMapType { id: 3, .. })
    ));
    let mut layout = g.layout;
    layout.storage = None;
    let bpf = Bpf::new(&view, &layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert_eq!(
        bpf.for_each_storage_elem(&map, &mut value[..0xffff], |_, _| ControlFlow::Continue(())),
        Err(Error::LayoutMissing {
            what: "bpf_local_storage_map"
        })
    );
}

#[test]
fn a_cgroup_name_without_an_end_is_corrupt() {
    let st = crate::synth::default_layout().storage.unwrap();
    let c = st.cgroup.unwrap();
    let mut g = build(&[MapSpec::storage(4, MapType::CGRP_STORAGE, "c", 4)
        .storage_elem(cgroup(9, &[b'x'; 255]), &v(1))]);
    assert!(walk(&g, 4).is_ok());
    // The name's NUL overwritten: 256 bytes without an end.
    let owner = g.storage[&4].elems[0].owner;
    let view = g.view();
    let kn = view
        .read_kernel_u64(Kva(owner.0 + u64::from(c.kn)))
        .unwrap();
    let name = view
        .read_kernel_u64(Kva(kn + u64::from(c.kn_name)))
        .unwrap();
    let pa = g.pa_of(Kva(name + 255));
    g.ram.write_u8(pa, b'y');
    assert!(matches!(
        walk(&g, 4),
        Err(Error::Corrupt {
            what: "kernfs_node.name (no NUL within NAME_MAX bytes)",
            ..
        })
    ));
}

#[test]
fn an_element_inserted_at_the_head_meanwhile_is_read_once_with_the_others() {
    // a, b in bucket 0; n in bucket 1. When the walk reads a's back link, n has just
    // moved to the head of bucket 0 (`hlist_add_head_rcu`): a's back link is n's next.
    let spec = MapSpec::storage(1, MapType::TASK_STORAGE, "t", 4)
        .storage_elem_in_bucket(0, task(1, "a"), &v(1))
        .storage_elem_in_bucket(0, task(2, "b"), &v(2))
        .storage_elem_in_bucket(1, task(3, "n"), &v(3));
    let g = build(&[spec]);
    let st = g.layout.storage.unwrap();
    let built = g.storage[&1].clone();
    let [a, _, n] = [0, 1, 2].map(|i| built.elems[i]);
    let head = |b: u64| Kva(built.buckets.0 + b * u64::from(st.bucket_size));
    let pa = |k: Kva| g.pa_of(k);
    let (head0, head1) = (pa(head(0)), pa(head(1)));
    let n_next = Kva(n.kva.0 + u64::from(st.elem_next));
    let (n_next_pa, n_pprev_pa) = (pa(n_next), pa(Kva(n.kva.0 + u64::from(st.elem_pprev))));
    let a_pprev_pa = pa(Kva(a.kva.0 + u64::from(st.elem_pprev)));
    let (head0_kva, a_kva, n_kva) = (head(0).0, a.kva.0, n.kva.0);
    let mem = ChangingRam::new(g.ram.clone()).on_read(a_pprev_pa, 1, move |r| {
        r.write_u64(head1, 0);
        r.write_u64(n_next_pa, a_kva);
        r.write_u64(n_pprev_pa, head0_kva);
        r.write_u64(head0, n_kva);
        r.write_u64(a_pprev_pa, n_next.0);
    });
    let view = KernelView::new(mem, g.paging, g.addrs);
    let (seen, stats) = walk_view(&view, &g, 1).unwrap();
    assert_eq!(pids(&seen), [3, 1, 2]);
    assert_eq!((stats.rereads, stats.skipped), (1, 0));
}

#[test]
fn a_bucket_that_never_settles_is_unstable() {
    let g = three_tasks();
    let st = g.layout.storage.unwrap();
    let b = g.storage[&1].elems[1];
    let pprev = g.pa_of(Kva(b.kva.0 + u64::from(st.elem_pprev)));
    // b's back link is something else at every read.
    let mut n = 0u64;
    let mem = ChangingRam::new(g.ram.clone()).every(move |r| {
        n += 8;
        r.write_u64(pprev, 0xffff_8880_0000_0000 + n);
    });
    let view = KernelView::new(mem, g.paging, g.addrs);
    assert_eq!(
        walk_view(&view, &g, 1).map(|(s, _)| s),
        Err(Error::Unstable {
            what: "local-storage bucket",
            at: 0,
            reads: 16
        })
    );
}

/// A bucket of more elements than the walk remembers whose last element's back link
/// is wrong: `changing` gives it another value at every read, else one wrong value.
fn long_bucket(changing: bool) -> (Result<StorageWalkStats>, i32, i32) {
    let mut spec = MapSpec::storage(1, MapType::TASK_STORAGE, "t", 4);
    let count = STORAGE_REREAD_SEEN as i32 + 2;
    for pid in 0..count {
        spec = spec.storage_elem_in_bucket(0, task(pid, "x"), &v(1));
    }
    let g = build(&[spec]);
    let st = g.layout.storage.unwrap();
    let last = *g.storage[&1].elems.last().unwrap();
    let pprev = g.pa_of(Kva(last.kva.0 + u64::from(st.elem_pprev)));
    let mut n = 0u64;
    let mem = ChangingRam::new(g.ram.clone()).on_read(pprev, 1, move |r| {
        r.write_u64(pprev, 0xffff_8880_0000_0008);
    });
    let mem = if changing {
        mem.every(move |r| {
            n += 8;
            r.write_u64(pprev, 0xffff_8880_0000_0000 + n);
        })
    } else {
        mem
    };
    let view = KernelView::new(mem, g.paging, g.addrs);
    let mut handed = 0;
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let r = bpf.for_each_storage_elem(&map, &mut [0; 4], |_, _| {
        handed += 1;
        ControlFlow::Continue(())
    });
    (r, handed, count)
}

#[test]
fn a_long_bucket_that_changes_is_unstable_not_listed_twice() {
    let (r, handed, count) = long_bucket(true);
    assert_eq!(
        r,
        Err(Error::Unstable {
            what: "local-storage bucket",
            at: 0,
            reads: 1
        })
    );
    assert_eq!(handed, count - 1);
    // The same wrong back link on the check read: corrupt.
    let (r, handed, count) = long_bucket(false);
    assert!(
        matches!(
            r,
            Err(Error::Corrupt {
                what: "bpf_local_storage_elem.map_node.pprev (does not point back)",
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(handed, count - 1);
}

/// `three_tasks` read while b's back link is wrong for the first `wrong` reads of it.
fn settles_after(wrong: u32) -> Result<StorageWalkStats> {
    let g = three_tasks();
    let st = g.layout.storage.unwrap();
    let b = g.storage[&1].elems[1];
    let pprev = g.pa_of(Kva(b.kva.0 + u64::from(st.elem_pprev)));
    let right = g.ram.bytes()[pprev.0 as usize..][..8].to_vec();
    let mut mem = ChangingRam::new(g.ram.clone());
    for k in 1..=wrong {
        mem = mem.on_read(pprev, k, move |r| {
            r.write_u64(pprev, 0xffff_8880_0000_0000 + 8 * u64::from(k))
        });
    }
    mem = mem.on_read(pprev, wrong + 1, move |r| r.write(pprev, &right));
    let view = KernelView::new(mem, g.paging, g.addrs);
    walk_view(&view, &g, 1).map(|(seen, stats)| {
        assert_eq!(pids(&seen), [1, 2, 3]);
        stats
    })
}

#[test]
fn bucket_reads_hold_at_their_limit_and_not_one_past() {
    // The default: 16 reads of a bucket. Wrong on 15: the 16th read is whole.
    assert_eq!(settles_after(15).unwrap().rereads, 15);
    assert_eq!(
        settles_after(16),
        Err(Error::Unstable {
            what: "local-storage bucket",
            at: 0,
            reads: 16
        })
    );
}
