//! Target `structops`: [`Bpf::for_each_entry`] (hence [`Bpf::struct_ops_value`]) and
//! [`Bpf::for_each_struct_ops_prog`] over STRUCT_OPS maps, with arbitrary offsets of
//! the `struct_ops` layout group (possibly absent, with or without `funcs_cnt` and the
//! 6.4+ reference counts), over a mutated synthetic guest with three struct_ops maps
//! ([`struct_ops_maps`]) or over raw RAM holding one map.
//!
//! Checked: at most one entry, its key 4 zero bytes and its value `value_size` bytes;
//! a value read in state INIT is all zero; the programs handed have increasing
//! indexes, no more than `MAX_STRUCT_OPS_FUNCS`, and their count is the one returned.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{
    EntryValue, MapFlags, MapInfo, MapName, PerCpuOffsets, STRUCT_OPS_STATE_INIT,
};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{KernelLayout, MapRefcnts, StructOpsLayout};
use mapwalk_core::limits::MAX_STRUCT_OPS_FUNCS;
use mapwalk_core::synth::{default_layout, GuestBuilder, MapSpec, ProgSpec, StructOpsSpec};
use mapwalk_core::{Bpf, Kva, MapType, Pa, Paging, PhysRange, Ram};

use crate::{drain, limits, sink, Enc, Guest, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Maps of the guest looked at.
const CHECKED: usize = 8;

/// A `bpf_struct_ops_<name>` value of `size` bytes with program ids in two slots.
fn uvalue(size: usize, ids: [u32; 2]) -> Vec<u8> {
    let mut v = vec![0u8; size];
    for (slot, id) in [72usize, 88].into_iter().zip(ids) {
        if let Some(b) = v.get_mut(slot..slot + 8) {
            b.copy_from_slice(&u64::from(id).to_le_bytes());
        }
    }
    v
}

/// The struct_ops maps of every struct_ops guest (ids 80 to 82): registered with two
/// programs, unregistered (state INIT), and being freed with a program the guest lacks.
pub fn struct_ops_maps() -> Vec<MapSpec> {
    let ops = |state, ids: [u32; 2], links: Vec<u32>| StructOpsSpec {
        state,
        kvalue_refcnt: 1,
        map_refcnts: (3, 1),
        uvalue: uvalue(256, ids),
        link_progs: links,
        funcs_cnt: None,
    };
    vec![
        MapSpec::new(80, MapType::STRUCT_OPS, "ca", 4, 256, 1).struct_ops(ops(
            1,
            [5, 6],
            vec![5, 6],
        )),
        MapSpec::new(81, MapType::STRUCT_OPS, "idle", 4, 256, 1).struct_ops(ops(
            0,
            [0, 0],
            Vec::new(),
        )),
        MapSpec::new(82, MapType::STRUCT_OPS, "gone", 4, 256, 1).struct_ops(ops(
            2,
            [9, 0],
            vec![9],
        )),
    ]
}

fn build(kind: GuestKind) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    for spec in struct_ops_maps() {
        b.add_map(spec);
    }
    b.add_prog(ProgSpec::new(5, "ssthresh"))
        .add_prog(ProgSpec::new(6, "cong_avoid"));
    let g = b.build();
    let root = match g.paging {
        Paging::X86_64(p) => p.root(),
        Paging::Aarch64(p) => p.root(),
    };
    let used = g
        .ram
        .bytes()
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    let heap_end = g.ram.base().0 + (used as u64).next_multiple_of(0x1000);
    let regions = vec![
        PhysRange {
            start: g.pa_of(g.map_idr).page_base(12),
            len: 0x1000,
        },
        PhysRange {
            start: root,
            len: heap_end - root.0,
        },
    ];
    let vas = g.maps.iter().map(|m| m.kva).collect();
    Guest { g, regions, vas }
}

/// The synthetic guest of `kind` with [`struct_ops_maps`], built on first use.
pub fn struct_ops_guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    let i = GuestKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is listed");
    GUESTS[i].get_or_init(|| build(kind))
}

/// The `struct_ops` offsets of `l` (zeros when absent): uvalue, kvalue, links,
/// funcs_cnt, value_refcnt, value_state, link_prog, map refcnt (usercnt is 8 past).
pub fn offsets(l: &KernelLayout) -> [u32; 8] {
    let s = l.struct_ops.unwrap_or_default();
    [
        s.uvalue,
        s.kvalue,
        s.links,
        s.funcs_cnt.unwrap_or(0),
        s.value_refcnt,
        s.value_state,
        s.link_prog,
        s.map_refcnts.map_or(0, |m| m.refcnt),
    ]
}

/// The default layout with the `struct_ops` offsets `o`; `shape` bit 0: the group is
/// absent, bit 1: `funcs_cnt` present, bit 2: the map's reference counts present, bit 3:
/// `kvalue.refcnt` retired.
pub fn layout(o: [u32; 8], shape: u8) -> KernelLayout {
    KernelLayout {
        struct_ops: (shape & 1 == 0).then_some(StructOpsLayout {
            uvalue: o[0],
            kvalue: o[1],
            links: o[2],
            funcs_cnt: (shape & 2 != 0).then_some(o[3]),
            value_refcnt: o[4],
            value_state: o[5],
            link_prog: o[6],
            map_refcnts: (shape & 4 != 0).then_some(MapRefcnts {
                refcnt: o[7],
                usercnt: o[7].saturating_add(8),
            }),
            refcnt_retired: shape & 8 != 0,
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
    pub offsets: [u16; 8],
    /// See [`layout`].
    pub shape: u8,
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
    /// Raw: the map struct's offset into the RAM.
    pub kva: u32,
    /// Raw: `key_size` (XOR 4), `value_size`, `max_entries` (XOR 1).
    pub info: [u32; 3],
    /// The member count handed to [`Bpf::for_each_struct_ops_prog`].
    pub members: u8,
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
        h.shape = u.arbitrary()?;
        h.limits = u.arbitrary()?;
        let limits = limits(&mut Unstructured::new(&h.limits))?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        h.kva = u.arbitrary()?;
        for i in &mut h.info {
            *i = u.arbitrary()?;
        }
        h.members = u.arbitrary()?;
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.offsets {
            e.u16(o);
        }
        e.u8(self.shape)
            .bytes(&self.limits)
            .u16(self.base_page)
            .u64(self.cr3)
            .u32(self.kva);
        for &i in &self.info {
            e.u32(i);
        }
        e.u8(self.members);
    }
}

/// `map`'s entry and programs, with the checks of the [module docs](self).
pub fn check_map<K: KernelRead + ?Sized>(bpf: &Bpf<'_, K>, map: &MapInfo, members: u32) {
    let lens = match bpf.entry_buffer_lens(map, 1) {
        Ok(l) => l,
        Err(e) => return sink(&e),
    };
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let none = None::<&PerCpuOffsets<Vec<u64>>>;
    let mut seen = 0u64;
    let walked = bpf.for_each_entry(map, none, &mut key, &mut value, |k, v| {
        let EntryValue::Single(v) = v else {
            panic!("per-CPU values from a struct_ops map")
        };
        assert_eq!(k, [0u8; 4], "the key is not 0");
        assert_eq!(v.len() as u64, u64::from(map.value_size), "value length");
        seen += 1;
        ControlFlow::Continue(())
    });
    match walked {
        Ok(n) => assert!(n == seen && n <= 1, "{n} entries, {seen} handed"),
        Err(e) => sink(&e),
    }
    match bpf.struct_ops_value(map, &mut value) {
        Ok(s) if s.state == STRUCT_OPS_STATE_INIT => {
            assert!(value.iter().all(|&b| b == 0), "an INIT value not zero");
        }
        Ok(_) => {}
        Err(e) => sink(&e),
    }
    let mut last = None;
    let mut handed = 0u32;
    let progs = bpf.for_each_struct_ops_prog(map, members, |p| {
        assert!(last.is_none_or(|l| l < p.index), "indexes out of order");
        assert!(p.index < MAX_STRUCT_OPS_FUNCS, "index past the cap");
        last = Some(p.index);
        handed += 1;
        ControlFlow::Continue(())
    });
    match progs {
        Ok(n) => assert_eq!(n, handed, "the count is not the programs handed"),
        Err(e) => sink(&e),
    }
}

fn check_guest<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva, members: u32) {
    let bpf = Bpf::new(mem, layout, map_idr);
    let Ok(mut maps) = bpf.maps() else {
        return;
    };
    let (found, _) = drain(&mut maps, CHECKED, false);
    for map in found.iter().filter(|m| m.map_type == MapType::STRUCT_OPS) {
        check_map(&bpf, map, members);
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    let members = u32::from(h.members);
    if h.mode % 2 == 0 {
        let g = struct_ops_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut o = offsets(&g.g.layout);
        for (o, x) in o.iter_mut().zip(h.offsets) {
            *o ^= u32::from(x);
        }
        let layout = layout(o, h.shape);
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        check_guest(&view, &layout, g.g.map_idr, members);
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let layout = layout(h.offsets.map(u32::from), h.shape);
        let info = MapInfo {
            id: 1,
            kva: Kva(RAW_DIRECT_MAP + base + u64::from(h.kva) % len.max(1)),
            map_type: MapType::STRUCT_OPS,
            map_flags: MapFlags::empty(),
            key_size: h.info[0] ^ 4,
            value_size: h.info[1] % 4096,
            max_entries: h.info[2] ^ 1,
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
        check_map(&bpf, &info, members);
    }
}
