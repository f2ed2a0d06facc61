//! Target `ringbuf`: [`Bpf::for_each_entry`] (hence [`Bpf::ringbuf`] and
//! [`Bpf::for_each_ringbuf_record`]) over a RINGBUF and a USER_RINGBUF, with arbitrary
//! offsets of the `ringbuf` layout group (possibly absent, `pending_pos` possibly
//! absent) and small caps, over a mutated synthetic guest ([`ringbuf_guest`]).
//!
//! Checked: the count returned is the number of entries handed; the first entry has an
//! empty key and a 48-byte header of version 1 whose size is a power of two equal to
//! `max_entries`, whose producer is at most the size ahead of the consumer and whose
//! pending bytes are their difference; each record follows: the first at the consumer
//! position, each next one at the previous one's position plus its span, none past the
//! producer; a record's value is its 8-byte header then its data, only a busy record's
//! header alone, and a busy record is the last; a `Break` from the first entry stops
//! the walk at one.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::bpf::{
    MapInfo, PerCpuOffsets, RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_FORM_VERSION,
    RINGBUF_HEADER_LEN, RINGBUF_MAP_TYPES,
};
use mapwalk_core::kernel::{KernelRead, KernelView};
use mapwalk_core::layout::{KernelLayout, RingbufLayout};
use mapwalk_core::synth::{default_layout, GuestBuilder, MapSpec};
use mapwalk_core::{Bpf, Kva, Limits, MapType};

use crate::{drain, limits, sink, Enc, Guest, GuestKind, Mutated, Res};

/// Offsets of the `ringbuf` group, in input order: rb, mask, consumer_pos,
/// producer_pos, pending_pos, data.
pub const OFFSETS: usize = 6;

/// Maps of the guest looked at.
const CHECKED: usize = 8;

/// The size of every ring of the guests (a whole 64 KiB page on every granule).
pub const RING_SIZE: u32 = 1 << 16;

/// The rings of every ring-buffer guest: a RINGBUF whose records wrap, with a
/// discarded one and a busy one, and a USER_RINGBUF.
pub fn rings() -> Vec<MapSpec> {
    let size = u64::from(RING_SIZE);
    let big: Vec<u8> = (0..200u8).collect();
    vec![
        MapSpec::new(1, MapType::RINGBUF, "rb", 0, 0, RING_SIZE)
            .ring_at(5 * size - 24)
            .ring_record(0, b"one")
            .ring_record(0, &big)
            .ring_record(RINGBUF_DISCARD_BIT, b"discarded")
            .ring_record(0, &[])
            .ring_record(RINGBUF_BUSY_BIT, b"busy")
            .ring_record(0, b"after"),
        MapSpec::new(2, MapType::USER_RINGBUF, "urb", 0, 0, RING_SIZE)
            .ring_at(64)
            .ring_record(0, b"user")
            .ring_record(0, &big[..17]),
    ]
}

fn build(kind: GuestKind) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    for spec in rings() {
        b.add_map(spec);
    }
    let g = b.build();
    let image_var = g.map_idr;
    Guest::with_heap(g, image_var)
}

/// The synthetic guest of `kind` with [`rings`], built on first use.
pub fn ringbuf_guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    let i = GuestKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is listed");
    GUESTS[i].get_or_init(|| build(kind))
}

/// The `ringbuf` group's offsets of `l` (zeros when absent), in input order.
pub fn offsets(l: &KernelLayout) -> [u32; OFFSETS] {
    let r = l.ringbuf.unwrap_or_default();
    [
        r.rb,
        r.mask,
        r.consumer_pos,
        r.producer_pos,
        r.pending_pos.unwrap_or(0),
        r.data,
    ]
}

/// The default layout with the `ringbuf` offsets `o`; bit 0 of `absent` drops the
/// group, bit 1 `pending_pos` (a kernel before 6.8).
pub fn layout(o: [u32; OFFSETS], absent: u8) -> KernelLayout {
    KernelLayout {
        ringbuf: (absent & 1 == 0).then_some(RingbufLayout {
            rb: o[0],
            mask: o[1],
            consumer_pos: o[2],
            producer_pos: o[3],
            pending_pos: (absent & 2 == 0).then_some(o[4]),
            data: o[5],
        }),
        ..default_layout()
    }
}

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Which guest.
    pub guest: u8,
    /// XORed into the guest's offsets ([`offsets`]).
    pub offsets: [u32; OFFSETS],
    /// Parts of the group left out (see [`layout`]).
    pub absent: u8,
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
}

impl Header {
    /// Decodes the header, and the limits it holds.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<(Self, Limits)> {
        let mut h = Self {
            guest: u.arbitrary()?,
            ..Self::default()
        };
        for o in &mut h.offsets {
            *o = u.arbitrary()?;
        }
        h.absent = u.arbitrary()?;
        h.limits = u.arbitrary()?;
        let limits = limits(&mut Unstructured::new(&h.limits))?;
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.guest);
        for &o in &self.offsets {
            e.u32(o);
        }
        e.u8(self.absent).bytes(&self.limits);
    }
}

fn u64_at(v: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(v[at..at + 8].try_into().expect("8 bytes"))
}

/// What one entry was: the header, or a record's position and value.
enum Seen {
    Header(Vec<u8>),
    Record(u64, Vec<u8>),
}

/// Every entry of `map`, with the checks of the [module docs](self).
pub fn check_map<K: KernelRead + ?Sized>(bpf: &Bpf<'_, K>, map: &MapInfo) {
    let lens = match bpf.entry_buffer_lens(map, 1) {
        Ok(l) => l,
        Err(e) => return sink(&e),
    };
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let none = None::<&PerCpuOffsets<Vec<u64>>>;
    let mut seen = Vec::new();
    let walked = bpf.for_each_entry(map, none, &mut key, &mut value, |k, v| {
        let mapwalk_core::bpf::EntryValue::Single(v) = v else {
            panic!("per-CPU values from a ring")
        };
        seen.push(if k.is_empty() {
            Seen::Header(v.to_vec())
        } else {
            Seen::Record(u64_at(k, 0), v.to_vec())
        });
        ControlFlow::Continue(())
    });
    match walked {
        Ok(n) => {
            assert_eq!(n, seen.len() as u64, "the count is not the entries handed");
            check_entries(map, &seen);
        }
        Err(e) => sink(&e),
    }
    if let Ok(n) = bpf.for_each_entry(map, none, &mut key, &mut value, |_, _| {
        ControlFlow::Break(())
    }) {
        assert!(n <= 1, "{n} entries after a Break");
    }
}

fn check_entries(map: &MapInfo, seen: &[Seen]) {
    let Some((Seen::Header(h), records)) = seen.split_first() else {
        panic!("a ring without its header first");
    };
    assert_eq!(h.len(), RINGBUF_HEADER_LEN);
    let version = u32::from_le_bytes(h[..4].try_into().unwrap());
    let map_type = u32::from_le_bytes(h[4..8].try_into().unwrap());
    assert_eq!((version, map_type), (RINGBUF_FORM_VERSION, map.map_type.0));
    let (size, cons, prod, pending) = (u64_at(h, 8), u64_at(h, 16), u64_at(h, 24), u64_at(h, 40));
    assert!(size.is_power_of_two() && size == u64::from(map.max_entries));
    assert!(prod >= cons && prod - cons <= size && pending == prod - cons);
    let mut next = cons;
    for (i, s) in records.iter().enumerate() {
        let Seen::Record(pos, v) = s else {
            panic!("a second header");
        };
        assert_eq!(*pos, next, "records not back to back");
        let word = u32::from_le_bytes(v[..4].try_into().expect("a record header"));
        let len = u64::from(word & !(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT));
        let span = (len + 8).next_multiple_of(8);
        assert!(pos + span <= prod, "a record past the producer");
        if word & RINGBUF_BUSY_BIT != 0 {
            assert_eq!(v.len(), 8, "a busy record with data");
            assert_eq!(i + 1, records.len(), "a record after a busy one");
        } else {
            assert_eq!(
                v.len() as u64,
                8 + len,
                "a record's value is not header + data"
            );
        }
        next = pos + span;
    }
}

/// Every ring among the first [`CHECKED`] maps of `map_idr`.
fn check_guest<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva) {
    let bpf = Bpf::new(mem, layout, map_idr);
    let Ok(mut maps) = bpf.maps() else {
        return;
    };
    let (found, _) = drain(&mut maps, CHECKED, false);
    for map in found
        .iter()
        .filter(|m| RINGBUF_MAP_TYPES.contains(&m.map_type))
    {
        check_map(&bpf, map);
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    let g = ringbuf_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
    let mut o = offsets(&g.g.layout);
    for (o, x) in o.iter_mut().zip(h.offsets) {
        *o ^= x;
    }
    let layout = layout(o, h.absent);
    let Ok(mem) = Mutated::new(g, &mut u) else {
        return;
    };
    let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
    check_guest(&view, &layout, g.g.map_idr);
}
