//! Target `objmaps`: [`Bpf::for_each_entry`] (hence [`Bpf::read_bloom_value`] and
//! [`Bpf::for_each_object_slot`]) over every BLOOM_FILTER, DEVMAP, DEVMAP_HASH, CPUMAP,
//! SOCKMAP, SOCKHASH, REUSEPORT_SOCKARRAY, CGROUP_ARRAY, PERF_EVENT_ARRAY and XSKMAP map,
//! with arbitrary offsets of their layout groups (each group possibly absent) and small
//! caps, over a mutated synthetic guest that has one of each ([`objmap_guest`]) or over
//! raw RAM holding one map of a fuzz-chosen type.
//!
//! Checked: the count returned is the number of entries handed; array kinds hand keys
//! in increasing order below `max_entries`, hash kinds at most `max_entries +
//! HTAB_EXTRA_ELEMS` entries; a bloom filter is one entry with an empty key, whose
//! header is version 1 with a hash count of 1 to 15 and the kernel's mask for its
//! `max_entries`, followed by exactly the bit array; a `Break` from the first entry
//! stops the walk at one.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{
    bloom_bitset_mask, MapFlags, MapInfo, MapName, PerCpuOffsets, BLOOM_FORM_VERSION,
    BLOOM_HEADER_LEN, OBJECT_MAP_TYPES,
};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::KernelLayout;
use mapwalk_core::limits::HTAB_EXTRA_ELEMS;
use mapwalk_core::synth::{default_layout, GuestBuilder, MapSpec, SlotObject};
use mapwalk_core::{Bpf, Kva, Limits, MapType, Pa, Paging, Ram};

use crate::{
    drain, limits, sink, standard_maps, Enc, Guest, GuestKind, Mutated, Res, RAW_DIRECT_MAP,
};

/// Offsets of the object maps' layout groups, in input order (see [`offsets`]).
pub const OFFSETS: usize = 37;

/// Maps of the guest looked at.
const CHECKED: usize = 32;

/// The map types this target walks: BLOOM_FILTER and [`OBJECT_MAP_TYPES`].
fn walked(t: MapType) -> bool {
    t == MapType::BLOOM_FILTER || OBJECT_MAP_TYPES.contains(&t)
}

/// The object maps of every object-map guest (ids 90 to 99).
pub fn object_maps() -> Vec<MapSpec> {
    let k = |i: u32| i.to_le_bytes();
    let new = |id, t, key, value, max| MapSpec::new(id, t, "obj", key, value, max);
    vec![
        new(90, MapType::BLOOM_FILTER, 0, 4, 10).bloom(3, 0x1234_5678, &[1, 20, 63]),
        new(91, MapType::DEVMAP, 4, 8, 4)
            .object(&k(0), SlotObject::NetDev([k(1), k(0)].concat()))
            .object(&k(3), SlotObject::NetDev([k(2), k(9)].concat())),
        new(92, MapType::DEVMAP_HASH, 4, 4, 4)
            .object(&k(5), SlotObject::NetDev(k(5).to_vec()))
            .object(&k(1), SlotObject::NetDev(k(1).to_vec()))
            .object(&k(2), SlotObject::NetDev(k(2).to_vec())),
        new(93, MapType::CPUMAP, 4, 4, 2).object(&k(1), SlotObject::CpuEntry(k(192).to_vec())),
        new(94, MapType::SOCKMAP, 4, 8, 3).object(&k(1), SlotObject::Sock(77)),
        new(95, MapType::SOCKHASH, 6, 8, 4)
            .object(b"abcdef", SlotObject::Sock(1))
            .object(b"ghijkl", SlotObject::Sock(2)),
        new(96, MapType::REUSEPORT_SOCKARRAY, 4, 8, 2).object(&k(0), SlotObject::Sock(3)),
        new(97, MapType::CGROUP_ARRAY, 4, 4, 2).object(&k(1), SlotObject::Cgroup(0x99)),
        new(98, MapType::PERF_EVENT_ARRAY, 4, 4, 2).object(
            &k(0),
            SlotObject::PerfEvent {
                event_type: 1,
                config: 9,
                cpu: -1,
            },
        ),
        new(99, MapType::XSKMAP, 4, 4, 2).object(
            &k(1),
            SlotObject::Xsk {
                ifindex: 1,
                queue_id: 0,
            },
        ),
    ]
}

fn build(kind: GuestKind) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    for spec in standard_maps().into_iter().chain(object_maps()) {
        b.add_map(spec);
    }
    let g = b.build();
    let image_var = g.map_idr;
    Guest::with_heap(g, image_var)
}

/// The synthetic guest of `kind` with the standard maps and [`object_maps`], built on
/// first use.
pub fn objmap_guest(kind: GuestKind) -> &'static Guest {
    static GUESTS: [OnceLock<Guest>; GuestKind::ALL.len()] =
        [const { OnceLock::new() }; GuestKind::ALL.len()];
    let i = GuestKind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is listed");
    GUESTS[i].get_or_init(|| build(kind))
}

/// The offsets of the object maps' groups of `l` (absent groups as zeros), in input
/// order: bloom 4, devmap 7, cpumap 3, sock 1, sockmap 10, reuseport 1, cgroup 2,
/// perf_event 5, xskmap 4.
pub fn offsets(l: &KernelLayout) -> [u32; OFFSETS] {
    let b = l.bloom.unwrap_or_default();
    let d = l.devmap.unwrap_or_default();
    let c = l.cpumap.unwrap_or_default();
    let s = l.sock.unwrap_or_default();
    let m = l.sockmap.unwrap_or_default();
    let r = l.reuseport.unwrap_or_default();
    let g = l.cgroup.unwrap_or_default();
    let p = l.perf_event.unwrap_or_default();
    let x = l.xskmap.unwrap_or_default();
    [
        b.bitset_mask,
        b.hash_seed,
        b.nr_hash_funcs,
        b.bitset,
        d.netdev_map,
        d.dev_index_head,
        d.n_buckets,
        d.index_hlist,
        d.idx,
        d.val,
        d.node_next,
        c.cpu_map,
        c.entry_cpu,
        c.entry_value,
        s.cookie,
        m.sks,
        m.buckets,
        m.buckets_num,
        m.bucket_head,
        m.bucket_size,
        m.elem_node,
        m.elem_hash,
        m.elem_sk,
        m.elem_key,
        m.node_next,
        r.ptrs,
        g.kn,
        g.kn_id,
        p.entry_event,
        p.event_attr,
        p.event_cpu,
        p.attr_type,
        p.attr_config,
        x.xsk_map,
        x.dev,
        x.queue_id,
        x.ifindex,
    ]
}

/// The default layout with the object maps' offsets `o` (input order); bit `n` of
/// `absent` drops the `n`th group (bloom, devmap, cpumap, sock, sockmap, reuseport,
/// cgroup, perf_event, xskmap).
pub fn layout(o: [u32; OFFSETS], absent: u16) -> KernelLayout {
    use mapwalk_core::layout::*;
    let on = |bit: u16| absent & (1 << bit) == 0;
    KernelLayout {
        bloom: on(0).then_some(BloomLayout {
            bitset_mask: o[0],
            hash_seed: o[1],
            nr_hash_funcs: o[2],
            bitset: o[3],
        }),
        devmap: on(1).then_some(DevmapLayout {
            netdev_map: o[4],
            dev_index_head: o[5],
            n_buckets: o[6],
            index_hlist: o[7],
            idx: o[8],
            val: o[9],
            node_next: o[10],
        }),
        cpumap: on(2).then_some(CpumapLayout {
            cpu_map: o[11],
            entry_cpu: o[12],
            entry_value: o[13],
        }),
        sock: on(3).then_some(SockLayout { cookie: o[14] }),
        sockmap: on(4).then_some(SockmapLayout {
            sks: o[15],
            buckets: o[16],
            buckets_num: o[17],
            bucket_head: o[18],
            bucket_size: o[19],
            elem_node: o[20],
            elem_hash: o[21],
            elem_sk: o[22],
            elem_key: o[23],
            node_next: o[24],
        }),
        reuseport: on(5).then_some(ReuseportLayout { ptrs: o[25] }),
        cgroup: on(6).then_some(CgroupLayout {
            kn: o[26],
            kn_id: o[27],
        }),
        perf_event: on(7).then_some(PerfEventLayout {
            entry_event: o[28],
            event_attr: o[29],
            event_cpu: o[30],
            attr_type: o[31],
            attr_config: o[32],
        }),
        xskmap: on(8).then_some(XskmapLayout {
            xsk_map: o[33],
            dev: o[34],
            queue_id: o[35],
            ifindex: o[36],
        }),
        ..default_layout()
    }
}

/// The fixed part of an input.
#[derive(Debug, Clone)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// The object maps' offsets ([`offsets`]). Raw: the offsets. Synthetic: XORed
    /// into the guest's.
    pub offsets: [u16; OFFSETS],
    /// Groups left out (see [`layout`]).
    pub absent: u16,
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// `Limits::bucket_chain` (0: the default of 64).
    pub chain: u8,
    /// `Limits::htab_buckets` (0: the default of 4096).
    pub buckets: u16,
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
    /// Raw: the map struct's offset into the RAM.
    pub kva: u32,
    /// Raw: the map's type (an index into the walked types), key size, value size.
    pub info: [u8; 3],
    /// Raw: `max_entries`.
    pub max_entries: u32,
}

impl Default for Header {
    fn default() -> Self {
        Self {
            mode: 0,
            guest: 0,
            offsets: [0; OFFSETS],
            absent: 0,
            limits: [0; 8],
            chain: 0,
            buckets: 0,
            base_page: 0,
            cr3: 0,
            kva: 0,
            info: [0; 3],
            max_entries: 0,
        }
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
        h.limits = u.arbitrary()?;
        let base = limits(&mut Unstructured::new(&h.limits))?;
        h.chain = u.arbitrary()?;
        h.buckets = u.arbitrary()?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        h.kva = u.arbitrary()?;
        h.info = u.arbitrary()?;
        h.max_entries = u.arbitrary()?;
        let limits = Limits {
            bucket_chain: if h.chain == 0 { 64 } else { u32::from(h.chain) },
            htab_buckets: if h.buckets == 0 {
                4096
            } else {
                u32::from(h.buckets)
            },
            ..base
        };
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.offsets {
            e.u16(o);
        }
        e.u16(self.absent)
            .bytes(&self.limits)
            .u8(self.chain)
            .u16(self.buckets)
            .u16(self.base_page)
            .u64(self.cr3)
            .u32(self.kva)
            .bytes(&self.info)
            .u32(self.max_entries);
    }
}

/// Every entry of `map`, with the checks of the [module docs](self).
pub fn check_map<K: KernelRead + ?Sized>(bpf: &Bpf<'_, K>, map: &MapInfo) {
    let lens = match bpf.entry_buffer_lens(map, 1) {
        Ok(l) => l,
        Err(e) => return sink(&e),
    };
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let none = None::<&PerCpuOffsets<Vec<u64>>>;
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut bloom_ok = true;
    let walked = bpf.for_each_entry(map, none, &mut key, &mut value, |k, v| {
        let mapwalk_core::bpf::EntryValue::Single(v) = v else {
            panic!("per-CPU values from an object map")
        };
        if map.map_type == MapType::BLOOM_FILTER {
            bloom_ok &= k.is_empty() && bloom_value_is_whole(map, v);
        }
        keys.push(k.to_vec());
        ControlFlow::Continue(())
    });
    match walked {
        Ok(n) => {
            assert_eq!(n, keys.len() as u64, "the count is not the entries handed");
            assert!(bloom_ok, "a bloom filter's value is not header + bit array");
            check_keys(map, &keys);
        }
        Err(e) => sink(&e),
    }
    // A Break ends the walk at the entry that asked for it.
    if let Ok(n) = bpf.for_each_entry(map, none, &mut key, &mut value, |_, _| {
        ControlFlow::Break(())
    }) {
        assert!(n <= 1, "{n} entries after a Break");
    }
}

/// A bloom value: version 1, a hash count of 1 to 15, the kernel's mask for
/// `max_entries`, then exactly the bit array.
fn bloom_value_is_whole(map: &MapInfo, v: &[u8]) -> bool {
    let Some(header) = v.get(..BLOOM_HEADER_LEN) else {
        return false;
    };
    let word = |i: usize| u32::from_le_bytes(header[4 * i..4 * i + 4].try_into().unwrap());
    let (version, k, mask) = (word(0), word(1), word(3));
    let bits = (u64::from(mask) + 1).div_ceil(8).next_multiple_of(8);
    version == BLOOM_FORM_VERSION
        && (1..=15).contains(&k)
        && mask == bloom_bitset_mask(map.max_entries, k)
        && v.len() as u64 == BLOOM_HEADER_LEN as u64 + bits
}

/// Array kinds: increasing keys below `max_entries`; hash kinds: no more than
/// `max_entries + HTAB_EXTRA_ELEMS`; a bloom filter: one entry.
fn check_keys(map: &MapInfo, keys: &[Vec<u8>]) {
    match map.map_type {
        MapType::BLOOM_FILTER => assert_eq!(keys.len(), 1),
        MapType::DEVMAP_HASH | MapType::SOCKHASH => assert!(
            keys.len() as u64 <= u64::from(map.max_entries) + u64::from(HTAB_EXTRA_ELEMS),
            "{} keys of a hash of {}",
            keys.len(),
            map.max_entries
        ),
        _ => {
            let idx: Vec<u32> = keys
                .iter()
                .map(|k| u32::from_le_bytes(k[..4].try_into().expect("4-byte keys")))
                .collect();
            assert!(idx.windows(2).all(|w| w[0] < w[1]), "slots out of order");
            assert!(
                idx.iter().all(|&i| i < map.max_entries),
                "slot past max_entries"
            );
        }
    }
}

/// Every walked map among the first [`CHECKED`] of `map_idr`.
fn check_guest<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva) {
    let bpf = Bpf::new(mem, layout, map_idr);
    let Ok(mut maps) = bpf.maps() else {
        return;
    };
    let (found, _) = drain(&mut maps, CHECKED, false);
    for map in found.iter().filter(|m| walked(m.map_type)) {
        check_map(&bpf, map);
    }
}

/// The map types a raw input picks from.
const RAW_TYPES: [MapType; 10] = [
    MapType::BLOOM_FILTER,
    MapType::DEVMAP,
    MapType::DEVMAP_HASH,
    MapType::CPUMAP,
    MapType::SOCKMAP,
    MapType::SOCKHASH,
    MapType::REUSEPORT_SOCKARRAY,
    MapType::CGROUP_ARRAY,
    MapType::PERF_EVENT_ARRAY,
    MapType::XSKMAP,
];

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    if h.mode % 2 == 0 {
        let g = objmap_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut o = offsets(&g.g.layout);
        for (o, x) in o.iter_mut().zip(h.offsets) {
            *o ^= u32::from(x);
        }
        let layout = layout(o, h.absent);
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        check_guest(&view, &layout, g.g.map_idr);
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let layout = layout(h.offsets.map(u32::from), h.absent);
        let map_type = RAW_TYPES[usize::from(h.info[0]) % RAW_TYPES.len()];
        let info = MapInfo {
            id: 1,
            kva: Kva(RAW_DIRECT_MAP + base + u64::from(h.kva) % len.max(1)),
            map_type,
            map_flags: MapFlags::empty(),
            key_size: u32::from(h.info[1])
                ^ if map_type == MapType::BLOOM_FILTER {
                    0
                } else {
                    4
                },
            value_size: u32::from(h.info[2]) ^ 4,
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
