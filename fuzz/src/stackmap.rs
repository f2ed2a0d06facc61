//! Target `stackmap`: [`Bpf::for_each_entry`] (hence [`Bpf::for_each_stack`]) over
//! STACK_TRACE maps, with arbitrary offsets of the `stackmap` layout group (possibly
//! absent) and arbitrary map flags, over a mutated synthetic guest with three stack
//! maps ([`stack_maps`]) or over raw RAM holding one map.
//!
//! Checked: the count returned is the number of stacks handed; keys are 4 bytes and
//! increase below `roundup_pow_of_two(max_entries)`; each value is `value_size` bytes
//! whose bytes past the bucket's `nr` frames are zero; a `Break` from the first stack
//! stops the walk at one.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{stack_frame_size, EntryValue, MapFlags, MapInfo, MapName, PerCpuOffsets};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{KernelLayout, StackMapLayout};
use mapwalk_core::synth::{default_layout, GuestBuilder, MapSpec};
use mapwalk_core::{Bpf, Kva, MapType, Pa, Paging, Ram};

use crate::{drain, limits, sink, Enc, Guest, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Maps of the guest looked at.
const CHECKED: usize = 8;

/// The stack maps of every stack-map guest (ids 70 to 72): plain, full-length and
/// build-id stacks.
pub fn stack_maps() -> Vec<MapSpec> {
    let ips = [
        0xffff_ffff_8100_1000u64,
        0xffff_ffff_8120_0042,
        0xffff_ffff_81c0_0010,
    ];
    let mut rec = [0u8; 32];
    rec[0] = 1;
    rec[4..24].copy_from_slice(&[0x5a; 20]);
    rec[24..].copy_from_slice(&0x1234u64.to_le_bytes());
    let mut bid = MapSpec::new(72, MapType::STACK_TRACE, "bid", 4, 64, 2).stack_raw(1, 1, &rec);
    bid.map_flags = MapFlags::STACK_BUILD_ID.bits();
    vec![
        MapSpec::new(70, MapType::STACK_TRACE, "stacks", 4, 40, 5)
            .stack(0, &ips)
            .stack(6, &ips[..1]),
        MapSpec::new(71, MapType::STACK_TRACE, "full", 4, 24, 2).stack(1, &ips),
        bid,
    ]
}

fn build(kind: GuestKind) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    for spec in stack_maps() {
        b.add_map(spec);
    }
    let g = b.build();
    let image_var = g.map_idr;
    Guest::with_heap(g, image_var)
}

/// The synthetic guest of `kind` with [`stack_maps`], built on first use.
pub fn stack_guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    let i = GuestKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is listed");
    GUESTS[i].get_or_init(|| build(kind))
}

/// The `stackmap` offsets of `l` (zeros when absent): n_buckets, buckets, bucket_nr,
/// bucket_data.
pub fn offsets(l: &KernelLayout) -> [u32; 4] {
    let s = l.stackmap.unwrap_or_default();
    [s.n_buckets, s.buckets, s.bucket_nr, s.bucket_data]
}

/// The default layout with the `stackmap` offsets `o`, or without the group.
pub fn layout(o: [u32; 4], absent: bool) -> KernelLayout {
    KernelLayout {
        stackmap: (!absent).then_some(StackMapLayout {
            n_buckets: o[0],
            buckets: o[1],
            bucket_nr: o[2],
            bucket_data: o[3],
        }),
        ..default_layout()
    }
}

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// The group's offsets. Raw: the offsets. Synthetic: XORed into the guest's.
    pub offsets: [u16; 4],
    /// Nonzero: the group is absent.
    pub absent: u8,
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
    /// Raw: the map struct's offset into the RAM.
    pub kva: u32,
    /// Raw: `map_flags`, `key_size` (XOR 4), `value_size`.
    pub info: [u32; 3],
    /// Raw: `max_entries`.
    pub max_entries: u32,
}

impl Header {
    /// Decodes the header, and the limits it holds.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<(Self, mapwalk_core::Limits)> {
        let mut h = Self {
            mode: u.arbitrary()?,
            guest: u.arbitrary()?,
            ..Self::default()
        };
        for o in &mut h.offsets {
            *o = u.arbitrary()?;
        }
        h.absent = u.arbitrary()?;
        h.limits = u.arbitrary()?;
        let limits = limits(&mut Unstructured::new(&h.limits))?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        h.kva = u.arbitrary()?;
        for i in &mut h.info {
            *i = u.arbitrary()?;
        }
        h.max_entries = u.arbitrary()?;
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.offsets {
            e.u16(o);
        }
        e.u8(self.absent)
            .bytes(&self.limits)
            .u16(self.base_page)
            .u64(self.cr3)
            .u32(self.kva);
        for &i in &self.info {
            e.u32(i);
        }
        e.u32(self.max_entries);
    }
}

/// Every stack of `map`, with the checks of the [module docs](self).
pub fn check_map<K: KernelRead + ?Sized>(bpf: &Bpf<'_, K>, map: &MapInfo) {
    let lens = match bpf.entry_buffer_lens(map, 1) {
        Ok(l) => l,
        Err(e) => return sink(&e),
    };
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let none = None::<&PerCpuOffsets<Vec<u64>>>;
    let mut keys = Vec::new();
    let walked = bpf.for_each_entry(map, none, &mut key, &mut value, |k, v| {
        let EntryValue::Single(v) = v else {
            panic!("per-CPU values from a stack map")
        };
        assert_eq!(v.len() as u64, u64::from(map.value_size), "value length");
        keys.push(u32::from_le_bytes(k.try_into().expect("4-byte keys")));
        ControlFlow::Continue(())
    });
    match walked {
        Ok(n) => {
            assert_eq!(n, keys.len() as u64, "the count is not the stacks handed");
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
            let n_buckets = map.max_entries.checked_next_power_of_two();
            assert!(
                keys.iter().all(|&k| Some(k) < n_buckets),
                "key past n_buckets"
            );
        }
        Err(e) => sink(&e),
    }
    // Past the nr frames, the value is zero.
    let frame = stack_frame_size(map.map_flags) as usize;
    let padded = bpf.for_each_stack(map, &mut value, |_, nr, v| {
        let len = (nr as usize).saturating_mul(frame);
        assert!(len <= v.len(), "{nr} frames past value_size {}", v.len());
        assert!(v[len..].iter().all(|&b| b == 0), "padding not zero");
        ControlFlow::Continue(())
    });
    if let Err(e) = padded {
        sink(&e);
    }
    if let Ok(n) = bpf.for_each_entry(map, none, &mut key, &mut value, |_, _| {
        ControlFlow::Break(())
    }) {
        assert!(n <= 1, "{n} stacks after a Break");
    }
}

fn check_guest<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva) {
    let bpf = Bpf::new(mem, layout, map_idr);
    let Ok(mut maps) = bpf.maps() else {
        return;
    };
    let (found, _) = drain(&mut maps, CHECKED, false);
    for map in found.iter().filter(|m| m.map_type == MapType::STACK_TRACE) {
        check_map(&bpf, map);
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    if h.mode % 2 == 0 {
        let g = stack_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut o = offsets(&g.g.layout);
        for (o, x) in o.iter_mut().zip(h.offsets) {
            *o ^= u32::from(x);
        }
        let layout = layout(o, h.absent != 0);
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        check_guest(&view, &layout, g.g.map_idr);
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let layout = layout(h.offsets.map(u32::from), h.absent != 0);
        let info = MapInfo {
            id: 1,
            kva: Kva(RAW_DIRECT_MAP + base + u64::from(h.kva) % len.max(1)),
            map_type: MapType::STACK_TRACE,
            map_flags: MapFlags::from_bits_retain(h.info[0]),
            key_size: h.info[1] ^ 4,
            value_size: h.info[2] % 4096,
            max_entries: h.max_entries,
            name: MapName::from_field(b"fuzz\0\0\0\0\0\0\0\0\0\0\0\0"),
            btf: Kva(0),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_vmlinux_value_type_id: 0,
            btf_id: 0,
        };
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        let bpf = Bpf::new(&view, &layout, Kva(0));
        check_map(&bpf, &info);
    }
}
