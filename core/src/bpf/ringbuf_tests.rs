use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use super::*;
use crate::bpf::{EntryValue, PerCpuOffsets};
use crate::synth::{GuestBuilder, MapSpec, SynthArch, SyntheticGuest};

fn guest(arch: SynthArch, specs: &[MapSpec]) -> SyntheticGuest {
    let mut b = GuestBuilder::new(arch);
    for s in specs {
        b.add_map(s.clone());
    }
    b.build()
}

type Seen = Vec<(Vec<u8>, Vec<u8>)>;

/// Every entry of map `id` through [`Bpf::for_each_entry`].
fn entries(g: &SyntheticGuest, id: u32) -> Result<Seen> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let lens = bpf.entry_buffer_lens(&map, 1)?;
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let mut out = Vec::new();
    bpf.for_each_entry(
        &map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let EntryValue::Single(v) = v else {
                panic!("per-CPU ring")
            };
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        },
    )?;
    Ok(out)
}

/// The records of map `id`, with a cap of `cap`.
fn records(g: &SyntheticGuest, id: u32, cap: u64) -> Result<(Ringbuf, Vec<RingbufRecord>)> {
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let rb = bpf.ringbuf(&map)?;
    let mut buf = vec![0u8; rb.value_len() as usize];
    let mut out = Vec::new();
    bpf.ringbuf_records_of(&rb, &mut buf, cap, |r, _| {
        out.push(*r);
        ControlFlow::Continue(())
    })?;
    Ok((rb, out))
}

fn header(size: u64, cons: u64, prod: u64, pending: u64, t: MapType) -> Vec<u8> {
    let mut v = RINGBUF_FORM_VERSION.to_le_bytes().to_vec();
    v.extend_from_slice(&t.0.to_le_bytes());
    for x in [size, cons, prod, pending, prod - cons] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn rec(len_word: u32, data: &[u8]) -> Vec<u8> {
    let mut v = len_word.to_le_bytes().to_vec();
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(data);
    v
}

const SIZE: u32 = 4096;

#[test]
fn records_come_oldest_first_with_their_bits_and_a_busy_one_ends_the_view() {
    let spec = MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, SIZE)
        .ring_at(0x10_0000)
        .ring_record(0, b"hello")
        .ring_record(RINGBUF_DISCARD_BIT, b"gone!!!!")
        .ring_record(0, &[])
        .ring_record(RINGBUF_BUSY_BIT, b"half-written")
        .ring_record(0, b"after busy");
    for arch in [
        SynthArch::X86_64 { five_level: false },
        SynthArch::Aarch64 { granule_shift: 12 },
    ] {
        let g = guest(arch, core::slice::from_ref(&spec));
        let got = entries(&g, 1).unwrap();
        let c = 0x10_0000u64;
        // 16 + 16 + 8 + 24 + 24 bytes.
        let p = c + 88;
        assert_eq!(
            got,
            [
                (vec![], header(4096, c, p, p, MapType::RINGBUF)),
                (c.to_le_bytes().to_vec(), rec(5, b"hello")),
                (
                    (c + 16).to_le_bytes().to_vec(),
                    rec(8 | RINGBUF_DISCARD_BIT, b"gone!!!!")
                ),
                ((c + 32).to_le_bytes().to_vec(), rec(0, b"")),
                // Busy: its header only, and nothing after it.
                (
                    (c + 40).to_le_bytes().to_vec(),
                    rec(12 | RINGBUF_BUSY_BIT, b"")
                ),
            ]
        );
        let (rb, recs) = records(&g, 1, RINGBUF_MAX_RECORDS).unwrap();
        assert_eq!(rb.pending(), 88);
        assert!(recs[1].discarded() && !recs[1].busy());
        assert!(recs[3].busy() && recs[3].len() == 12);
        assert_eq!(recs.len(), 4);
    }
}

#[test]
fn a_record_that_wraps_reads_on_through_the_second_mapping() {
    // The first record ends 8 bytes before the end; the second's header is the last 8
    // bytes, its data the ring's first bytes.
    let data: Vec<u8> = (0..40u8).collect();
    let start = 3 * u64::from(SIZE) + u64::from(SIZE) - 24;
    let spec = MapSpec::new(2, MapType::USER_RINGBUF, "urb", 0, 0, SIZE)
        .ring_at(start)
        .ring_record(0, b"sixteen!")
        .ring_record(0, &data);
    let g = guest(SynthArch::X86_64 { five_level: true }, &[spec]);
    let got = entries(&g, 2).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].1,
        header(4096, start, start + 64, start + 64, MapType::USER_RINGBUF)
    );
    assert_eq!(
        got[2],
        ((start + 16).to_le_bytes().to_vec(), rec(40, &data))
    );
}

#[test]
fn a_full_ring_and_an_empty_one() {
    let big = vec![7u8; SIZE as usize - 8];
    let full = MapSpec::new(1, MapType::RINGBUF, "full", 0, 0, SIZE)
        .ring_at(100 * 8)
        .ring_record(0, &big);
    let empty = MapSpec::new(2, MapType::RINGBUF, "empty", 0, 0, SIZE).ring_at(40);
    let g = guest(SynthArch::X86_64 { five_level: false }, &[full, empty]);
    let got = entries(&g, 1).unwrap();
    assert_eq!(got[1].1, rec(SIZE - 8, &big));
    assert_eq!(got[1].1.len(), SIZE as usize);
    assert_eq!(
        entries(&g, 2).unwrap(),
        [(vec![], header(4096, 40, 40, 40, MapType::RINGBUF))]
    );
}

#[test]
fn the_record_cap_holds_at_the_cap_and_fails_one_past() {
    let mut spec = MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, SIZE).ring_at(0);
    for i in 0..5u8 {
        spec = spec.ring_record(0, &[i]);
    }
    let g = guest(SynthArch::X86_64 { five_level: false }, &[spec]);
    assert_eq!(records(&g, 1, 5).unwrap().1.len(), 5);
    assert_eq!(
        records(&g, 1, 4),
        Err(Error::LimitExceeded {
            what: "ring buffer records",
            limit: 4,
            at: 5
        })
    );
}

#[test]
fn hostile_lengths_and_positions_are_corrupt() {
    let base = || MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, SIZE).ring_at(64);
    let cases: [(MapSpec, &str); 6] = [
        // A length running past producer_pos.
        (
            base()
                .ring_record(0, b"abc")
                .ring_with(|r| r.writes[0].1[0] = 9),
            "ring buffer record length (past producer_pos)",
        ),
        // A length with only the busy bit's neighbours set.
        (
            base()
                .ring_record(0, b"abc")
                .ring_with(|r| r.writes[0].1[3] = 0x3f),
            "ring buffer record length (past producer_pos)",
        ),
        // Producer behind consumer.
        (
            base().ring_with(|r| r.producer_pos = 8),
            "bpf_ringbuf.producer_pos (below consumer_pos, or more than the size ahead of it)",
        ),
        // Producer more than the ring ahead.
        (
            base().ring_with(|r| r.producer_pos = 64 + u64::from(SIZE) + 8),
            "bpf_ringbuf.producer_pos (below consumer_pos, or more than the size ahead of it)",
        ),
        // pending_pos past the producer.
        (
            base()
                .ring_record(0, b"x")
                .ring_with(|r| r.pending_pos = Some(88)),
            "bpf_ringbuf.pending_pos (past producer_pos, or more than the size behind it)",
        ),
        // A mask that is not max_entries - 1.
        (
            base().ring_with(|r| r.mask = Some(2047)),
            "bpf_ringbuf.mask (size not a power of two, or not max_entries)",
        ),
    ];
    for (spec, what) in cases {
        let g = guest(SynthArch::X86_64 { five_level: false }, &[spec]);
        match entries(&g, 1) {
            Err(Error::Corrupt { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{what}: {other:?}"),
        }
    }
    // pending_pos more than the ring behind the producer.
    let g = guest(
        SynthArch::X86_64 { five_level: false },
        &[base()
            .ring_with(|r| r.consumer_pos = 8192)
            .ring_with(|r| r.producer_pos = 8192 + 16)
            .ring_with(|r| r.pending_pos = Some(8))],
    );
    assert!(matches!(
        entries(&g, 1),
        Err(Error::Corrupt { value: 8, .. })
    ));
    // Lagging behind the consumer (it moves only when a record is reserved) is fine.
    let g = guest(
        SynthArch::X86_64 { five_level: false },
        &[base().ring_with(|r| r.pending_pos = Some(16))],
    );
    assert_eq!(
        entries(&g, 1).unwrap()[0].1,
        header(4096, 64, 64, 16, MapType::RINGBUF)
    );
    // Not a power of two.
    let g = guest(
        SynthArch::X86_64 { five_level: false },
        &[base().ring_with(|r| r.mask = Some(3000))],
    );
    assert!(matches!(
        entries(&g, 1),
        Err(Error::Corrupt { value: 3000, .. })
    ));
    // Without a ring: rb is null.
    let g = guest(
        SynthArch::X86_64 { five_level: false },
        &[MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, SIZE)],
    );
    assert!(matches!(
        entries(&g, 1),
        Err(Error::Corrupt {
            what: "bpf_ringbuf_map.rb (null)",
            ..
        })
    ));
}

#[test]
fn without_pending_pos_the_header_repeats_producer_pos_and_without_a_layout_it_says_so() {
    let spec = MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, SIZE)
        .ring_at(8)
        .ring_record(RINGBUF_BUSY_BIT, b"abcd")
        .ring_with(|r| r.pending_pos = Some(8));
    let mut b = GuestBuilder::new(SynthArch::X86_64 { five_level: false });
    b.add_map(spec.clone());
    let g = b.build();
    assert_eq!(
        entries(&g, 1).unwrap()[0].1,
        header(4096, 8, 24, 8, MapType::RINGBUF)
    );
    let mut g2 = guest(SynthArch::X86_64 { five_level: false }, &[spec]);
    g2.layout.ringbuf.as_mut().unwrap().pending_pos = None;
    assert_eq!(
        entries(&g2, 1).unwrap()[0].1,
        header(4096, 8, 24, 24, MapType::RINGBUF)
    );
    g2.layout.ringbuf = None;
    assert_eq!(
        entries(&g2, 1),
        Err(Error::LayoutMissing {
            what: "bpf_ringbuf"
        })
    );
}

#[test]
fn other_types_are_refused_and_a_callback_can_stop() {
    let spec = MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, SIZE)
        .ring_at(0)
        .ring_record(0, b"a")
        .ring_record(0, b"b");
    let g = guest(
        SynthArch::X86_64 { five_level: false },
        &[spec, MapSpec::array(2, "arr", 4, 1)],
    );
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let arr = bpf.map_by_id(2).unwrap().unwrap();
    assert!(matches!(bpf.ringbuf(&arr), Err(Error::WrongMapType { .. })));
    let map = bpf.map_by_id(1).unwrap().unwrap();
    let mut buf = vec![0u8; 4096];
    let mut n = 0;
    let (_, given) = bpf
        .for_each_ringbuf_record(&map, &mut buf, |r, bytes| {
            n += 1;
            assert_eq!(bytes, rec(1, b"a"));
            assert_eq!(r.span(), 16);
            ControlFlow::Break(())
        })
        .unwrap();
    assert_eq!((n, given), (1, 1));
    assert_eq!(
        bpf.for_each_ringbuf_record(&map, &mut buf[..100], |_, _| ControlFlow::Continue(())),
        Err(Error::BufferSize {
            need: 4096,
            have: 100
        })
    );
}
