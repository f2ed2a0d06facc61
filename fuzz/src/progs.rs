//! Target `progs`: [`ProgIdr::progs`], [`ProgIdr::prog_by_id`] and
//! [`ProgIdr::collect_progs`] with an arbitrary [`ProgLayout`], and
//! [`Bpf::for_each_fd_slot`] over every PROG_ARRAY, ARRAY_OF_MAPS and HASH_OF_MAPS
//! map, [`Bpf::for_each_lpm_entry`] over every LPM_TRIE and [`Bpf::for_each_queue_value`]
//! over every QUEUE and STACK, over raw RAM or a mutated
//! synthetic guest that has programs and such maps ([`prog_guest`]).

use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::FD_MAP_TYPES;
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{KernelLayout, ProgLayout};
use mapwalk_core::synth::{default_layout, GuestBuilder, MapSpec, ProgSpec};
use mapwalk_core::{Bpf, Kva, Limits, MapType, Pa, Paging, ProgIdr, ProgType, Ram};

use crate::{
    drain, limits, sink, standard_maps, Enc, Guest, GuestKind, Mutated, Res, RAW_DIRECT_MAP,
};

/// Offsets of a [`ProgLayout`], in the order the input gives them.
pub const OFFSETS: usize = 16;

/// Programs checked against `prog_by_id`.
const CHECKED: usize = 16;

/// The programs of every program guest: one using two maps, one with subprograms,
/// BTF and another uid, one of an unknown type without a user, and ids spread so that
/// `prog_idr` has three levels.
pub fn standard_progs() -> Vec<ProgSpec> {
    vec![
        ProgSpec::new(1, "known").maps(&[1, 12]),
        ProgSpec {
            prog_type: ProgType::XDP,
            subprog_jited: vec![100, 200, 300],
            btf_id: Some(7),
            uid: Some(1000),
            ..ProgSpec::new(65, "xdp_main")
        },
        ProgSpec {
            prog_type: ProgType(999),
            uid: None,
            jited_len: 0,
            ..ProgSpec::new(4100, "odd").maps(&[70, 4097, 9])
        },
    ]
}

fn build(kind: GuestKind) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    for spec in standard_maps() {
        b.add_map(spec);
    }
    b.add_map(
        MapSpec::new(80, MapType::PROG_ARRAY, "jumps", 4, 4, 70)
            .fd_slot(&0u32.to_le_bytes(), 1)
            .fd_slot(&66u32.to_le_bytes(), 65),
    )
    .add_map(
        MapSpec::new(81, MapType::ARRAY_OF_MAPS, "outer", 4, 4, 2).fd_slot(&1u32.to_le_bytes(), 12),
    )
    .add_map(MapSpec::new(82, MapType::HASH_OF_MAPS, "outer_h", 4, 4, 4).fd_slot(b"abcd", 9))
    .add_map(
        MapSpec::new(83, MapType::LPM_TRIE, "routes", 8, 8, 8)
            .lpm_entry(16, &[192, 168, 0, 0], &[1; 8])
            .lpm_entry(24, &[192, 168, 1, 0], &[2; 8])
            .lpm_entry(24, &[192, 168, 128, 0], &[3; 8])
            .lpm_entry(0, &[0; 4], &[4; 8]),
    )
    .add_map(MapSpec::new(84, MapType::QUEUE, "q", 0, 4, 4).ring(1, 3, |s| vec![s as u8; 4]))
    .add_map(MapSpec::new(85, MapType::STACK, "s", 0, 4, 4).ring(3, 1, |s| vec![s as u8; 4]));
    for spec in standard_progs() {
        b.add_prog(spec);
    }
    let g = b.build();
    let regions = crate::heap_regions(&g, Some(g.prog_idr));
    let mut vas = vec![g.prog_idr];
    for p in &g.progs {
        vas.push(p.kva);
        vas.push(p.aux);
    }
    Guest { g, regions, vas }
}

/// The synthetic guest of `kind` with the standard maps and [`standard_progs`], built on
/// first use.
pub fn prog_guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    let i = GuestKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is listed");
    GUESTS[i].get_or_init(|| build(kind))
}

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// Every offset of the program layout (see [`layout`]). Raw: the offsets.
    /// Synthetic: XORed into the guest's.
    pub offsets: [u16; OFFSETS],
    /// Bit 0: no `gpl_compatible` bit; bit 1: no `aux->user`; bit 2: no `struct btf`
    /// offsets; bit 3: no program layout at all.
    pub absent: u8,
    /// Raw: the address of `prog_idr`. Synthetic: XORed into the guest's.
    pub prog_idr: u64,
    /// Raw: `prog_idr` is an offset into the RAM's direct map.
    pub prog_idr_rel: bool,
    /// The caps, see [`limits`]; the program cap is the map cap.
    pub limits: [u8; 8],
    /// Ids looked up with `prog_by_id`.
    pub ids: [u32; 2],
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
}

/// The offsets of `l`, in input order.
pub fn offsets(l: &ProgLayout) -> [u32; OFFSETS] {
    [
        l.prog_type,
        l.len,
        l.jited_len,
        l.tag,
        l.aux,
        l.gpl_compatible_bit.unwrap_or(0),
        l.aux_id,
        l.aux_name,
        l.aux_prog,
        l.aux_used_map_cnt,
        l.aux_used_maps,
        l.aux_func_cnt,
        l.aux_func,
        l.aux_btf,
        l.aux_user.unwrap_or(0),
        l.user_uid.unwrap_or(0),
    ]
}

/// The default layout with the program offsets `o` (input order); `absent` as in
/// [`Header::absent`].
pub fn layout(o: [u32; OFFSETS], absent: u8) -> KernelLayout {
    let prog = ProgLayout {
        prog_type: o[0],
        len: o[1],
        jited_len: o[2],
        tag: o[3],
        aux: o[4],
        gpl_compatible_bit: (absent & 1 == 0).then_some(o[5]),
        aux_id: o[6],
        aux_name: o[7],
        aux_prog: o[8],
        aux_used_map_cnt: o[9],
        aux_used_maps: o[10],
        aux_func_cnt: o[11],
        aux_func: o[12],
        aux_btf: o[13],
        aux_user: (absent & 2 == 0).then_some(o[14]),
        user_uid: (absent & 2 == 0).then_some(o[15]),
    };
    let d = default_layout();
    KernelLayout {
        prog: (absent & 8 == 0).then_some(prog),
        btf_object: if absent & 4 == 0 { d.btf_object } else { None },
        ..d
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
        h.prog_idr = u.arbitrary()?;
        h.prog_idr_rel = u.arbitrary()?;
        h.limits = u.arbitrary()?;
        let base = limits(&mut Unstructured::new(&h.limits))?;
        h.ids = [u.arbitrary()?, u.arbitrary()?];
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        Ok((
            h,
            Limits {
                progs: base.maps,
                ..base
            },
        ))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.offsets {
            e.u16(o);
        }
        e.u8(self.absent)
            .u64(self.prog_idr)
            .bool(self.prog_idr_rel)
            .bytes(&self.limits);
        for &id in &self.ids {
            e.u32(id);
        }
        e.u16(self.base_page).u64(self.cr3);
    }
}

/// Every slot of every object map, and every prefix of every LPM trie, among the first
/// maps of `map_idr`.
fn check_fd_maps<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva) {
    let bpf = Bpf::new(mem, layout, map_idr);
    let Ok(mut maps) = bpf.maps() else {
        return;
    };
    let (found, _) = drain(&mut maps, CHECKED, false);
    for map in found.iter().filter(|m| FD_MAP_TYPES.contains(&m.map_type)) {
        let mut key = vec![0u8; (map.key_size as usize).min(1 << 16)];
        let mut steps = 0u64;
        match bpf.for_each_fd_slot(map, &mut key, |_, id| {
            std::hint::black_box(id);
            steps += 1;
            std::ops::ControlFlow::Continue(())
        }) {
            Ok(n) => assert_eq!(n, steps),
            Err(e) => sink(&e),
        }
    }
    for map in found
        .iter()
        .filter(|m| matches!(m.map_type, MapType::QUEUE | MapType::STACK))
    {
        let mut value = vec![0u8; (map.value_size as usize).min(1 << 16)];
        let mut steps = 0u64;
        match bpf.for_each_queue_value(map, &mut value, |_| {
            steps += 1;
            std::ops::ControlFlow::Continue(())
        }) {
            Ok(n) => {
                assert_eq!(n, steps);
                assert!(n <= u64::from(map.max_entries));
            }
            Err(e) => sink(&e),
        }
    }
    for map in found.iter().filter(|m| m.map_type == MapType::LPM_TRIE) {
        let mut key = vec![0u8; (map.key_size as usize).min(1 << 16)];
        let mut value = vec![0u8; (map.value_size as usize).min(1 << 16)];
        let mut steps = 0u64;
        match bpf.for_each_lpm_entry(map, &mut key, &mut value, |_, _| {
            steps += 1;
            std::ops::ControlFlow::Continue(())
        }) {
            Ok(n) => {
                assert_eq!(n, steps);
                assert!(n <= 2 * u64::from(map.max_entries));
            }
            Err(e) => sink(&e),
        }
    }
}

/// Every program entry point over one kernel.
pub fn check<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, prog_idr: Kva, h: &Header) {
    let idr = ProgIdr::new(mem, layout, prog_idr);
    match idr.progs() {
        Ok(mut progs) => {
            let (found, _) = drain(&mut progs, CHECKED, false);
            let mut last = None;
            for info in found {
                sink(&info.name);
                sink(&info.prog_type);
                assert!(info.map_ids().len() <= mapwalk_core::limits::MAX_USED_MAPS);
                assert!(last < Some(info.id), "programs out of id order");
                last = Some(info.id);
                assert_eq!(
                    idr.prog_by_id(info.id),
                    Ok(Some(info)),
                    "prog_by_id({}) disagrees with the walk",
                    info.id
                );
            }
        }
        Err(e) => sink(&e),
    }
    for &id in &h.ids {
        match idr.prog_by_id(id) {
            Ok(Some(info)) => assert_eq!(info.id, id),
            Ok(None) => {}
            Err(e) => sink(&e),
        }
    }
    match idr.collect_progs() {
        Ok(list) => {
            std::hint::black_box(list.progs.len() + list.errors.len());
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
        let g = prog_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut o = offsets(&g.g.layout.prog.expect("the default layout has bpf_prog"));
        for (o, x) in o.iter_mut().zip(h.offsets) {
            *o ^= u32::from(x);
        }
        let layout = layout(o, h.absent);
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        check(&view, &layout, Kva(g.g.prog_idr.0 ^ h.prog_idr), &h);
        check_fd_maps(&view, &layout, g.g.map_idr);
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let prog_idr = if h.prog_idr_rel {
            RAW_DIRECT_MAP + base + h.prog_idr % len.max(1)
        } else {
            h.prog_idr
        };
        let layout = layout(h.offsets.map(u32::from), h.absent);
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        check(&view, &layout, Kva(prog_idr), &h);
    }
}
