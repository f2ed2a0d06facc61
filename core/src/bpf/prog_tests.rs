use alloc::vec::Vec;

use super::*;
use crate::kernel::KernelView;
use crate::limits::Limits;
use crate::synth::{GuestBuilder, MapSpec, ProgSpec, SynthArch, SyntheticGuest};
use crate::MapType;

fn sample(arch: SynthArch) -> SyntheticGuest {
    let mut b = GuestBuilder::new(arch);
    b.add_map(MapSpec::array(1, "counters", 8, 4))
        .add_map(MapSpec::new(2, MapType::HASH, "flows", 8, 8, 16))
        .add_prog(ProgSpec::new(3, "known").maps(&[2, 1]))
        .add_prog(ProgSpec {
            prog_type: ProgType::XDP,
            len: 1000,
            jited_len: 7,
            subprog_jited: alloc::vec![100, 23],
            gpl_compatible: false,
            btf_id: Some(41),
            uid: Some(1000),
            ..ProgSpec::new(9, "xdp_main")
        })
        .add_prog(ProgSpec {
            prog_type: ProgType(4242),
            uid: None,
            jited_len: 0,
            ..ProgSpec::new(70_000, "future")
        });
    b.build()
}

fn walk<K: KernelRead>(p: &ProgIdr<'_, K>) -> Vec<Result<ProgInfo>> {
    p.progs().unwrap().collect()
}

#[test]
fn discovers_every_program_with_what_bpftool_shows() {
    for arch in [
        SynthArch::X86_64 { five_level: false },
        SynthArch::X86_64 { five_level: true },
        SynthArch::Aarch64 { granule_shift: 16 },
    ] {
        let g = sample(arch);
        let view = g.view();
        let idr = ProgIdr::new(&view, &g.layout, g.prog_idr);
        let progs: Vec<ProgInfo> = walk(&idr).into_iter().map(Result::unwrap).collect();
        assert_eq!(
            progs.iter().map(|p| p.id).collect::<Vec<_>>(),
            [3, 9, 70_000],
            "{arch:?}"
        );
        let known = progs[0];
        assert_eq!(known.prog_type, ProgType::SOCKET_FILTER);
        assert_eq!(known.name.as_str(), Some("known"));
        assert_eq!(known.tag, [3, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!((known.xlated_len, known.jited_len), (16, 40));
        assert!(known.jited());
        assert_eq!(known.gpl_compatible, Some(true));
        assert_eq!(known.map_ids(), [2, 1]);
        assert_eq!((known.uid, known.btf_id), (Some(0), 0));
        assert_eq!(known.kva, g.progs[0].kva);

        let xdp = progs[1];
        assert_eq!(xdp.prog_type, ProgType::XDP);
        assert_eq!(xdp.xlated_len, 8000);
        // Subprograms: the sum of theirs, not the main program's own.
        assert_eq!(xdp.jited_len, 123);
        assert_eq!(xdp.gpl_compatible, Some(false));
        assert_eq!((xdp.uid, xdp.btf_id), (Some(1000), 41));
        assert_eq!(xdp.map_ids(), [] as [u32; 0]);

        let future = progs[2];
        assert_eq!(future.prog_type, ProgType(4242));
        assert_eq!(future.uid, None);
        assert!(!future.jited());
        assert_eq!(idr.prog_by_id(9).unwrap(), Some(xdp));
        assert_eq!(idr.prog_by_id(4).unwrap(), None);
    }
}

#[test]
fn maps_are_not_programs() {
    let g = sample(SynthArch::X86_64 { five_level: false });
    let view = g.view();
    // The map walk of the same guest is unchanged by the programs.
    let bpf = crate::Bpf::new(&view, &g.layout, g.map_idr);
    assert_eq!(bpf.maps().unwrap().count(), 2);
    let empty = GuestBuilder::x86_64(false).build();
    let view = empty.view();
    assert_eq!(
        walk(&ProgIdr::new(&view, &empty.layout, empty.prog_idr)).len(),
        0
    );
}

#[test]
fn without_a_prog_layout_the_walk_says_so() {
    let g = sample(SynthArch::X86_64 { five_level: false });
    let layout = KernelLayout {
        prog: None,
        ..g.layout
    };
    let view = g.view();
    let idr = ProgIdr::new(&view, &layout, g.prog_idr);
    assert_eq!(
        idr.progs().unwrap_err(),
        Error::LayoutMissing { what: "bpf_prog" }
    );
    assert_eq!(
        idr.prog_by_id(3),
        Err(Error::LayoutMissing { what: "bpf_prog" })
    );
}

#[test]
fn optional_fields_stay_unknown_without_their_offsets() {
    let g = sample(SynthArch::X86_64 { five_level: false });
    let mut layout = g.layout;
    let mut p = layout.prog.unwrap();
    p.aux_user = None;
    p.gpl_compatible_bit = None;
    layout.prog = Some(p);
    layout.btf_object = None;
    let view = g.view();
    let idr = ProgIdr::new(&view, &layout, g.prog_idr);
    let xdp = idr.prog_by_id(9).unwrap().unwrap();
    assert_eq!((xdp.uid, xdp.gpl_compatible, xdp.btf_id), (None, None, 0));
}

fn aux_field(g: &SyntheticGuest, n: usize, off: u32) -> crate::Pa {
    g.pa_of(Kva(g.progs[n].aux.0 + u64::from(off)))
}

#[test]
fn a_corrupt_program_is_reported_and_the_walk_goes_on() {
    let l = crate::synth::default_layout().prog.unwrap();
    let cases: [(u32, u64, &str); 5] = [
        (
            l.aux_id,
            4,
            "bpf_prog_aux.id (disagrees with the program's index in prog_idr)",
        ),
        (
            l.aux_prog,
            0xffff_8880_0000_0040,
            "bpf_prog_aux.prog (does not lead back to the program)",
        ),
        (
            l.aux_used_map_cnt,
            65,
            "bpf_prog_aux.used_map_cnt (above MAX_USED_MAPS)",
        ),
        (
            l.aux_func_cnt,
            257,
            "bpf_prog_aux.func_cnt (above BPF_MAX_SUBPROGS)",
        ),
        (
            l.aux_used_maps,
            0x1234,
            "bpf_prog_aux.used_maps (not a kernel pointer)",
        ),
    ];
    for (off, value, what) in cases {
        let mut g = sample(SynthArch::X86_64 { five_level: false });
        let pa = aux_field(&g, 0, off);
        if off == l.aux_prog || off == l.aux_used_maps {
            g.ram.write_u64(pa, value);
        } else {
            g.ram.write_u32(pa, value as u32);
        }
        let view = g.view();
        let items = walk(&ProgIdr::new(&view, &g.layout, g.prog_idr));
        assert_eq!(items.len(), 3, "{what}");
        match &items[0] {
            Err(Error::Corrupt {
                what: w, value: v, ..
            }) => {
                assert_eq!((*w, *v), (what, value));
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(items[1].as_ref().unwrap().id, 9);
        let list = ProgIdr::new(&view, &g.layout, g.prog_idr)
            .collect_progs()
            .unwrap();
        assert_eq!((list.progs.len(), list.errors.len()), (2, 1));
        assert_eq!(list.errors[0].0, Some(3));
    }
}

#[test]
fn the_used_map_and_subprogram_caps_hold_at_their_limit() {
    let mut b = GuestBuilder::x86_64(false);
    let ids: Vec<u32> = (1..=64).collect();
    b.add_prog(ProgSpec {
        subprog_jited: alloc::vec![1; 256],
        ..ProgSpec::new(1, "full").maps(&ids)
    });
    let g = b.build();
    let view = g.view();
    let p = ProgIdr::new(&view, &g.layout, g.prog_idr)
        .prog_by_id(1)
        .unwrap()
        .unwrap();
    assert_eq!(p.map_ids(), ids.as_slice());
    assert_eq!(p.jited_len, 256);
    let mut info = ProgInfo::default();
    assert!(matches!(
        info.set_map_ids(&[0; 65]),
        Err(Error::LimitExceeded {
            limit: 64,
            at: 65,
            ..
        })
    ));
}

#[test]
fn the_program_cap_holds_at_and_fails_past_its_limit() {
    let g = sample(SynthArch::X86_64 { five_level: false });
    let at = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(Limits {
        progs: 3,
        ..Limits::DEFAULT
    });
    assert!(walk(&ProgIdr::new(&at, &g.layout, g.prog_idr))
        .iter()
        .all(Result::is_ok));
    let below = KernelView::new(g.ram.as_ram(), g.paging, g.addrs).with_limits(Limits {
        progs: 2,
        ..Limits::DEFAULT
    });
    let items = walk(&ProgIdr::new(&below, &g.layout, g.prog_idr));
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[2],
        Err(Error::LimitExceeded {
            what: "programs in prog_idr",
            limit: 2,
            at: 70_000
        })
    );
}

#[test]
fn a_failing_backend_is_an_error_for_the_program_it_holds() {
    let g = sample(SynthArch::X86_64 { five_level: false });
    let victim = aux_field(&g, 1, g.layout.prog.unwrap().aux_name);
    let mem = crate::synth::FaultyMem::new(g.ram.as_ram(), victim, 1, crate::PhysErrorKind::Io);
    let view = KernelView::new(&mem, g.paging, g.addrs);
    let items = walk(&ProgIdr::new(&view, &g.layout, g.prog_idr));
    assert_eq!(items.len(), 3);
    assert!(
        matches!(items[1], Err(Error::Phys { .. })),
        "{:?}",
        items[1]
    );
    assert_eq!(items[2].as_ref().unwrap().id, 70_000);
}

#[test]
fn prog_ids_are_read_through_aux() {
    let g = sample(SynthArch::X86_64 { five_level: false });
    let view = g.view();
    let l = g.layout.prog.unwrap();
    assert_eq!(read_prog_id(&view, &l, g.progs[2].kva), Ok(70_000));
    assert!(read_prog_id(&view, &l, Kva(0xffff_8880_0000_0000)).is_err());
    assert!(matches!(
        prog_pointer(1, 0x1000),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        prog_pointer(1 << 32, 0xffff_8880_0000_0000),
        Err(Error::Corrupt { .. })
    ));
}
