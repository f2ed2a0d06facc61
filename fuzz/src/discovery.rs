//! Target `discovery`: [`Bpf::maps`], [`Bpf::map_by_id`], [`Bpf::find_by_suffix`],
//! [`Bpf::find_by_name`], [`Bpf::idr_next`] and [`Bpf::collect_maps`] with an arbitrary
//! [`KernelLayout`], over raw RAM or a mutated synthetic guest.

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{ArrayLayout, BpfMapLayout, IdrLayout, KernelLayout, XarrayLayout};
use mapwalk_core::{Bpf, Kva, Limits, Pa, Paging, Ram};

use crate::{drain, guest, limits, sink, Enc, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Offsets in a [`KernelLayout`], in the order the input gives them.
pub const OFFSETS: usize = 18;

/// Maps checked against `map_by_id`.
const CHECKED: usize = 16;

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// Every offset of the layout (see [`layout`]). Raw: the offsets. Synthetic: XORed
    /// into the guest's.
    pub offsets: [u16; OFFSETS],
    /// Bit 0: no `btf_vmlinux_value_type_id`; bit 1: no `bpf_array`.
    pub absent: u8,
    /// Raw: the address of `map_idr`. Synthetic: XORed into the guest's.
    pub map_idr: u64,
    /// Raw: `map_idr` is an offset into the RAM's direct map.
    pub map_idr_rel: bool,
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// Ids looked up with `map_by_id`.
    pub ids: [u32; 2],
    /// A name suffix to look for (the first `suffix_len % 17` bytes), also looked for as
    /// a whole name.
    pub suffix: [u8; 16],
    /// See `suffix`.
    pub suffix_len: u8,
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
}

/// The offsets of `l`, in input order.
pub fn offsets(l: &KernelLayout) -> [u32; OFFSETS] {
    let m = &l.bpf_map;
    let a = l.array.unwrap_or_default();
    [
        l.xarray.xa_head,
        l.xarray.node_shift,
        l.xarray.node_slots,
        l.idr.idr_rt,
        l.idr.idr_next,
        m.map_type,
        m.key_size,
        m.value_size,
        m.max_entries,
        m.map_flags,
        m.id,
        m.name,
        m.btf,
        m.btf_key_type_id,
        m.btf_value_type_id,
        m.btf_vmlinux_value_type_id.unwrap_or(0),
        a.elem_size,
        a.value,
    ]
}

/// A layout from offsets in input order; `absent` as in [`Header::absent`].
pub fn layout(o: [u32; OFFSETS], absent: u8) -> KernelLayout {
    KernelLayout {
        xarray: XarrayLayout {
            xa_head: o[0],
            node_shift: o[1],
            node_slots: o[2],
        },
        idr: IdrLayout {
            idr_rt: o[3],
            idr_next: o[4],
        },
        bpf_map: BpfMapLayout {
            map_type: o[5],
            key_size: o[6],
            value_size: o[7],
            max_entries: o[8],
            map_flags: o[9],
            id: o[10],
            name: o[11],
            btf: o[12],
            btf_key_type_id: o[13],
            btf_value_type_id: o[14],
            btf_vmlinux_value_type_id: (absent & 1 == 0).then_some(o[15]),
            frozen: None,
        },
        array: (absent & 2 == 0).then_some(ArrayLayout {
            elem_size: o[16],
            value: o[17],
        }),
        ..KernelLayout::default()
    }
}

impl Header {
    /// Decodes the header, and the limits it holds.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<(Self, Limits)> {
        let mut h = Self {
            mode: u.arbitrary()?,
            guest: u.arbitrary()?,
            ..Self::default()
        };
        for o in &mut h.offsets {
            *o = u.arbitrary()?;
        }
        h.absent = u.arbitrary()?;
        h.map_idr = u.arbitrary()?;
        h.map_idr_rel = u.arbitrary()?;
        h.limits = u.arbitrary()?;
        let limits = limits(&mut Unstructured::new(&h.limits))?;
        h.ids = [u.arbitrary()?, u.arbitrary()?];
        h.suffix = u.arbitrary()?;
        h.suffix_len = u.arbitrary()?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.offsets {
            e.u16(o);
        }
        e.u8(self.absent)
            .u64(self.map_idr)
            .bool(self.map_idr_rel)
            .bytes(&self.limits);
        for &id in &self.ids {
            e.u32(id);
        }
        e.bytes(&self.suffix)
            .u8(self.suffix_len)
            .u16(self.base_page)
            .u64(self.cr3);
    }
}

/// Every discovery entry point over one kernel.
pub fn check<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva, h: &Header) {
    let bpf = Bpf::new(mem, layout, map_idr);
    match bpf.idr_next() {
        Ok(n) => {
            std::hint::black_box(n);
        }
        Err(e) => sink(&e),
    }
    match bpf.maps() {
        Ok(mut maps) => {
            let (found, _) = drain(&mut maps, CHECKED, false);
            for info in found {
                sink(&info.name);
                sink(&info.map_type);
                assert_eq!(
                    bpf.map_by_id(info.id),
                    Ok(Some(info)),
                    "map_by_id({}) disagrees with discovery",
                    info.id
                );
            }
        }
        Err(e) => sink(&e),
    }
    for &id in &h.ids {
        match bpf.map_by_id(id) {
            Ok(Some(info)) => assert_eq!(info.id, id),
            Ok(None) => {}
            Err(e) => sink(&e),
        }
    }
    let suffix = &h.suffix[..usize::from(h.suffix_len % 17)];
    if let Ok(suffix) = std::str::from_utf8(suffix) {
        match bpf.find_by_suffix(suffix) {
            Ok(Some(info)) => assert!(info.name.as_bytes().ends_with(suffix.as_bytes())),
            Ok(None) => {}
            Err(e) => sink(&e),
        }
        match bpf.find_by_name(suffix) {
            Ok(Some(info)) => assert_eq!(info.name.as_bytes(), suffix.as_bytes()),
            Ok(None) => {}
            Err(e) => sink(&e),
        }
    }
    match bpf.collect_maps() {
        Ok(list) => {
            std::hint::black_box(list.maps.len() + list.errors.len());
        }
        Err(e) => sink(&e),
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    if h.mode % 2 == 0 {
        let g = guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut o = offsets(&g.g.layout);
        for (o, x) in o.iter_mut().zip(h.offsets) {
            *o ^= u32::from(x);
        }
        let layout = layout(o, h.absent);
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        check(&view, &layout, Kva(g.g.map_idr.0 ^ h.map_idr), &h);
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let map_idr = if h.map_idr_rel {
            RAW_DIRECT_MAP + base + h.map_idr % len.max(1)
        } else {
            h.map_idr
        };
        let layout = layout(h.offsets.map(u32::from), h.absent);
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        check(&view, &layout, Kva(map_idr), &h);
    }
}
