//! Target `array`: [`Bpf::array`], [`ArrayMap::read`], [`ArrayMap::value`] and
//! [`ArrayMap::write`] (and the `Bpf` shorthands), on a [`RamCell`] of raw bytes with an
//! arbitrary map, or on a mutated synthetic guest's discovered maps.

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{ArrayMap, MapName};
use mapwalk_core::kernel::{KernelAddrs, KernelView, KernelWrite};
use mapwalk_core::layout::ArrayLayout;
use mapwalk_core::{
    Bpf, KernelLayout, Kva, Limits, MapFlags, MapInfo, MapType, Pa, Paging, RamCell,
};

use crate::{guest, limits, sink, Enc, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Operations per input.
pub const OPS: usize = 4;

/// The largest read or write of one operation.
pub const MAX_LEN: usize = 4096;

/// One read or write of a value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Op {
    /// The key.
    pub key: u32,
    /// The offset in the value.
    pub offset: u32,
    /// The length (`% (MAX_LEN + 1)`).
    pub len: u16,
    /// Bit 0: write (else read); bit 1: through the `Bpf` shorthand; bit 2: also read the
    /// whole value.
    pub kind: u8,
    /// The byte written.
    pub fill: u8,
}

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// Synthetic: which discovered map.
    pub pick: u8,
    /// `bpf_array.elem_size` and `.value` offsets. Raw: the offsets. Synthetic: XORed
    /// into the guest's.
    pub array: [u16; 2],
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// Raw: the map's address (an offset into the RAM's direct map).
    pub kva: u32,
    /// Raw: `map_type` XOR ARRAY (so 0 is an ARRAY), `key_size` XOR 4, `value_size`,
    /// `max_entries`.
    pub info: [u32; 4],
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
    /// The operations.
    pub ops: [Op; OPS],
}

impl Header {
    /// Decodes the header, and the limits it holds.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<(Self, Limits)> {
        let mut h = Self {
            mode: u.arbitrary()?,
            guest: u.arbitrary()?,
            pick: u.arbitrary()?,
            array: [u.arbitrary()?, u.arbitrary()?],
            limits: u.arbitrary()?,
            kva: u.arbitrary()?,
            info: u.arbitrary()?,
            base_page: u.arbitrary()?,
            cr3: u.arbitrary()?,
            ops: Default::default(),
        };
        let limits = limits(&mut Unstructured::new(&h.limits))?;
        for op in &mut h.ops {
            *op = Op {
                key: u.arbitrary()?,
                offset: u.arbitrary()?,
                len: u.arbitrary()?,
                kind: u.arbitrary()?,
                fill: u.arbitrary()?,
            };
        }
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode)
            .u8(self.guest)
            .u8(self.pick)
            .u16(self.array[0])
            .u16(self.array[1])
            .bytes(&self.limits)
            .u32(self.kva);
        for &i in &self.info {
            e.u32(i);
        }
        e.u16(self.base_page).u64(self.cr3);
        for op in &self.ops {
            e.u32(op.key)
                .u32(op.offset)
                .u16(op.len)
                .u8(op.kind)
                .u8(op.fill);
        }
    }
}

/// The operations of `h` on map `info`.
pub fn check<K: KernelWrite + ?Sized>(mem: &K, layout: &KernelLayout, info: &MapInfo, h: &Header) {
    let bpf = Bpf::new(mem, layout, Kva(0));
    let array = match bpf.array(info) {
        Ok(a) => a,
        Err(e) => {
            sink(&e);
            return;
        }
    };
    std::hint::black_box((array.info(), array.elem_size()));
    let mut buf = vec![0u8; MAX_LEN];
    for op in &h.ops {
        let len = usize::from(op.len) % (MAX_LEN + 1);
        let offset = u64::from(op.offset);
        if let Err(e) = array.value_kva(op.key) {
            sink(&e);
        }
        if op.kind & 4 != 0 {
            match array.value(mem, op.key) {
                Ok(v) => assert_eq!(v.len() as u64, u64::from(info.value_size)),
                Err(e) => sink(&e),
            }
        }
        let shorthand = op.kind & 2 != 0;
        if op.kind & 1 == 0 {
            let r = if shorthand {
                bpf.read_array_value(info, op.key, offset, &mut buf[..len])
            } else {
                array.read(mem, op.key, offset, &mut buf[..len])
            };
            if let Err(e) = r {
                sink(&e);
            }
        } else {
            let data = vec![op.fill; len];
            let r = if shorthand {
                bpf.write_array_value(info, op.key, offset, &data)
            } else {
                array.write(mem, op.key, offset, &data)
            };
            match r {
                Ok(()) => read_back(mem, &array, op.key, offset, &data),
                Err(e) => sink(&e),
            }
        }
    }
}

/// A write that lies inside one 4 KiB page reads back (across pages, page tables the
/// fuzzer wrote may alias two pages, and the second part of a write may overwrite the
/// first).
fn read_back<K: KernelWrite + ?Sized>(
    mem: &K,
    array: &ArrayMap,
    key: u32,
    offset: u64,
    data: &[u8],
) {
    let Ok(start) = array.value_kva(key) else {
        panic!("a write succeeded where value_kva({key}) fails");
    };
    let first = start.0.wrapping_add(offset);
    let last = first.wrapping_add(data.len() as u64).wrapping_sub(1);
    if data.is_empty() || first >> 12 != last >> 12 {
        return;
    }
    let mut back = vec![0u8; data.len()];
    array
        .read(mem, key, offset, &mut back)
        .expect("a value that was just written reads");
    assert_eq!(back, data, "value {key} at {offset} does not read back");
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    if h.mode % 2 == 0 {
        let g = guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut layout = g.g.layout;
        if let Some(a) = &mut layout.array {
            a.elem_size ^= u32::from(h.array[0]);
            a.value ^= u32::from(h.array[1]);
        }
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        let bpf = Bpf::new(&view, &layout, g.g.map_idr);
        let Ok(maps) = bpf.maps() else {
            return;
        };
        let found: Vec<MapInfo> = maps.filter_map(Result::ok).take(64).collect();
        if let Some(info) = found.get(usize::from(h.pick) % found.len().max(1)) {
            check(&view, &layout, info, &h);
        }
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let layout = KernelLayout {
            array: Some(ArrayLayout {
                elem_size: u32::from(h.array[0]),
                value: u32::from(h.array[1]),
            }),
            ..KernelLayout::default()
        };
        let info = MapInfo {
            id: 1,
            kva: Kva(RAW_DIRECT_MAP + base + u64::from(h.kva) % len.max(1)),
            map_type: MapType(h.info[0] ^ MapType::ARRAY.0),
            map_flags: MapFlags::empty(),
            key_size: h.info[1] ^ 4,
            value_size: h.info[2],
            max_entries: h.info[3],
            name: MapName::from_field(b"fuzz\0\0\0\0\0\0\0\0\0\0\0\0"),
            btf: Kva(0),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_vmlinux_value_type_id: 0,
            btf_id: 0,
        };
        let view = KernelView::new(
            RamCell::new(Pa(base), bytes.to_vec()),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        check(&view, &layout, &info, &h);
    }
}
