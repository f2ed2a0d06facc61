//! Target `htab`: [`Bpf::htab`], [`Bpf::percpu_htab`] (pointer placement probed or
//! forced) and [`HtabWalk`] (`next_into`, the iterator, `copy_*`, `read_*`,
//! `entries`, `percpu_entries`), over raw RAM with an arbitrary map and layout, or over
//! a mutated synthetic guest's hash maps.

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{HtabEntry, HtabMap, HtabWalk, MapName, PerCpuOffsets, PptrPlacement};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{HtabLayout, KernelLayout};
use mapwalk_core::{Bpf, Error, Kva, Limits, MapFlags, MapInfo, MapType, Pa, Paging, Ram};

use crate::{
    drain, hash_guest, hash_limits, read_offsets, sink, Enc, GuestKind, Mutated, Res,
    RAW_DIRECT_MAP, WALK_GUARD,
};

/// Entries compared between the two ways of walking.
const KEEP: usize = 256;

/// The largest key or value the target copies out.
const MAX_COPY: u32 = 4096;

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// Synthetic: which discovered hash map (of any hash type).
    pub pick: u8,
    /// `HtabLayout` offsets in field order. Raw: the offsets. Synthetic: XORed into the
    /// guest's.
    pub layout: [u16; 7],
    /// The caps, see [`hash_limits`].
    pub limits: [u8; 12],
    /// Synthetic: 0 reads the possible count from `nr_cpu_ids`, else `cpus % 9`.
    /// Raw: `cpus % 4 + 1` offsets from `offsets`.
    pub cpus: u8,
    /// Synthetic: XORed into the address of `__per_cpu_offset`.
    pub per_cpu_offset: u64,
    /// `% 3`: probe the pointer placement, force `KeySize`, force `Aligned`.
    pub force: u8,
    /// The CPU whose copies are read.
    pub cpu: u8,
    /// Raw: the map's address (an offset into the RAM's direct map).
    pub kva: u32,
    /// Raw: `map_type` XOR HASH (so 0 is a HASH), `key_size`, `value_size`,
    /// `max_entries`.
    pub info: [u32; 4],
    /// Raw: `__per_cpu_offset` values.
    pub offsets: [u64; 4],
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
}

impl Header {
    /// Decodes the header, and the limits it holds.
    pub fn decode(u: &mut Unstructured<'_>) -> Res<(Self, Limits)> {
        let mut h = Self {
            mode: u.arbitrary()?,
            guest: u.arbitrary()?,
            pick: u.arbitrary()?,
            ..Self::default()
        };
        for o in &mut h.layout {
            *o = u.arbitrary()?;
        }
        h.limits = u.arbitrary()?;
        let limits = hash_limits(&mut Unstructured::new(&h.limits))?;
        h.cpus = u.arbitrary()?;
        h.per_cpu_offset = u.arbitrary()?;
        h.force = u.arbitrary()?;
        h.cpu = u.arbitrary()?;
        h.kva = u.arbitrary()?;
        h.info = u.arbitrary()?;
        h.offsets = u.arbitrary()?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        Ok((h, limits))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest).u8(self.pick);
        for &o in &self.layout {
            e.u16(o);
        }
        e.bytes(&self.limits)
            .u8(self.cpus)
            .u64(self.per_cpu_offset)
            .u8(self.force)
            .u8(self.cpu)
            .u32(self.kva);
        for &i in &self.info {
            e.u32(i);
        }
        for &o in &self.offsets {
            e.u64(o);
        }
        e.u16(self.base_page).u64(self.cr3);
    }
}

/// The fields of `l` in declaration order.
pub fn htab_fields(l: &HtabLayout) -> [u32; 7] {
    [
        l.buckets,
        l.n_buckets,
        l.elem_size,
        l.bucket_head,
        l.bucket_size,
        l.elem_hash_node,
        l.elem_key,
    ]
}

/// A layout from fields in declaration order.
pub fn htab_layout(f: [u32; 7]) -> HtabLayout {
    HtabLayout {
        buckets: f[0],
        n_buckets: f[1],
        elem_size: f[2],
        bucket_head: f[3],
        bucket_size: f[4],
        elem_hash_node: f[5],
        elem_key: f[6],
        // `struct hlist_nulls_node { next; pprev; }` on every kernel.
        node_pprev: 8,
    }
}

fn is_hash(t: MapType) -> bool {
    matches!(
        t,
        MapType::HASH | MapType::LRU_HASH | MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH
    )
}

/// Opens `info` as the hash map its type says (and as the other kind, for the error).
fn open<K: KernelRead + ?Sized>(
    bpf: &Bpf<'_, K>,
    info: &MapInfo,
    offsets: Option<&PerCpuOffsets<Vec<u64>>>,
    force: u8,
) -> Option<HtabMap> {
    let force = match force % 3 {
        0 => None,
        1 => Some(PptrPlacement::KeySize),
        _ => Some(PptrPlacement::Aligned),
    };
    let inline = bpf.htab(info);
    let percpu = offsets.map(|o| bpf.percpu_htab(info, o, force));
    if let (Ok(_), Some(Ok(_))) = (&inline, &percpu) {
        panic!("map {} opened both inline and per-CPU", info.id);
    }
    for r in [Some(inline), percpu].into_iter().flatten() {
        match r {
            Ok(m) => {
                std::hint::black_box((m.info(), m.buckets(), m.n_buckets(), m.elem_size()));
                if let Some(d) = m.pptr_decision() {
                    assert!(m.is_percpu());
                    if let Some(f) = force {
                        assert_eq!(d.placement, f, "a forced placement was not kept");
                    }
                }
                return Some(m);
            }
            Err(e) => sink(&e),
        }
    }
    None
}

/// Walks `map` with `next_into` and checks each entry's copies, then with the iterator,
/// then with the collecting readers.
pub fn check<K: KernelRead + ?Sized>(
    mem: &K,
    map: &HtabMap,
    offsets: Option<&PerCpuOffsets<Vec<u64>>>,
    cpu: u32,
) {
    let info = *map.info();
    let percpu = map.is_percpu();
    if info.key_size > MAX_COPY || info.value_size > MAX_COPY {
        let (_, _) = drain(&mut map.walk(mem), 0, false);
        return;
    }
    let ks = info.key_size as usize;
    let vs = if percpu { 0 } else { info.value_size as usize };
    let (mut key, mut value) = (vec![0u8; ks], vec![0u8; vs]);
    let (mut key2, mut value2) = (vec![0u8; ks], vec![0u8; info.value_size as usize]);
    let mut value3 = value2.clone();

    let mut walk: HtabWalk<'_, K> = map.walk(mem);
    // A buffer of the wrong size is an error that does not advance the walk.
    let mut wrong = vec![0u8; ks + 1];
    match walk.next_into(&mut wrong, &mut value) {
        Some(Err(Error::BufferSize { .. })) => {}
        other => panic!("next_into with a {}-byte key buffer: {other:?}", ks + 1),
    }
    assert_eq!(walk.visited(), 0);
    let mut entries: Vec<HtabEntry> = Vec::new();
    let mut steps = 0u32;
    loop {
        steps += 1;
        assert!(steps <= WALK_GUARD, "a hash walk did not end");
        match walk.next_into(&mut key, &mut value) {
            None => break,
            Some(Ok(entry)) => {
                if entries.len() < KEEP {
                    entries.push(entry);
                }
                std::hint::black_box(walk.position());
                if let Some(k) = walk.key() {
                    assert_eq!(k, &key[..]);
                }
                if let Some(v) = walk.value() {
                    assert_eq!(v, &value[..]);
                }
                walk.copy_key(&entry, &mut key2)
                    .expect("the key of the entry just yielded copies");
                assert_eq!(key2, key);
                if let Ok(()) = map.read_key(mem, &entry, &mut key2) {
                    assert_eq!(key2, key, "read_key differs from the walk's key");
                }
                if percpu {
                    if let Some(o) = offsets {
                        let a = walk.copy_cpu_value(o, &entry, cpu, &mut value2);
                        let b = map.read_cpu_value(mem, o, &entry, cpu, &mut value3);
                        assert_eq!(a, b);
                        if a.is_ok() {
                            assert_eq!(value2, value3);
                        }
                    }
                    assert!(walk.copy_value(&entry, &mut value2).is_err());
                } else {
                    walk.copy_value(&entry, &mut value2)
                        .expect("the value of the entry just yielded copies");
                    assert_eq!(value2, value);
                    if let Ok(()) = map.read_value(mem, &entry, &mut value2) {
                        assert_eq!(value2, value, "read_value differs from the walk's value");
                    }
                }
            }
            Some(Err(e)) => sink(&e),
        }
    }
    assert!(walk.is_finished());
    assert!(walk.next_into(&mut key, &mut value).is_none());
    sink(&format_args!("{walk:?}"));

    // The iterator yields at least the entries `next_into` did, in the same order.
    let (all, _) = drain(&mut map.walk(mem), usize::MAX, false);
    let mut it = all.iter();
    for e in &entries {
        assert!(
            it.any(|x| x == e),
            "next_into yielded {e:?}, which the iterator did not (in order)"
        );
    }

    let collected = if percpu {
        offsets.map(|o| map.percpu_entries(mem, o).map(|c| c.entries.len()))
    } else {
        Some(map.entries(mem).map(|c| c.entries.len()))
    };
    match collected {
        Some(Ok(n)) => std::hint::black_box(n),
        Some(Err(e)) => {
            sink(&e);
            0
        }
        None => 0,
    };
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    let cpu = u32::from(h.cpu % 5);
    if h.mode % 2 == 0 {
        let g = hash_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut layout = g.g.layout;
        if let Some(l) = &mut layout.htab {
            let mut f = htab_fields(l);
            for (f, x) in f.iter_mut().zip(h.layout) {
                *f ^= u32::from(x);
            }
            *l = htab_layout(f);
        }
        let Ok(mem) = Mutated::new(g, &mut u) else {
            return;
        };
        let view = KernelView::new(mem, g.g.paging, g.g.addrs).with_limits(limits);
        let bpf = Bpf::new(&view, &layout, g.g.map_idr);
        let Ok(maps) = bpf.maps() else {
            return;
        };
        let found: Vec<MapInfo> = maps
            .filter_map(Result::ok)
            .filter(|m| is_hash(m.map_type))
            .take(64)
            .collect();
        let Some(info) = found.get(usize::from(h.pick) % found.len().max(1)) else {
            return;
        };
        let offsets = read_offsets(
            &view,
            Kva(g.g.symbols.per_cpu_offset.0 ^ h.per_cpu_offset),
            g.g.symbols.nr_cpu_ids,
            h.cpus,
        );
        if let Some(map) = open(&bpf, info, offsets.as_ref(), h.force) {
            check(&view, &map, offsets.as_ref(), cpu);
        }
    } else {
        let bytes = u.take_rest();
        let base = u64::from(h.base_page) << 12;
        let len = bytes.len() as u64;
        let layout = KernelLayout {
            htab: Some(htab_layout(h.layout.map(u32::from))),
            ..KernelLayout::default()
        };
        let info = MapInfo {
            id: 1,
            kva: Kva(RAW_DIRECT_MAP + base + u64::from(h.kva) % len.max(1)),
            map_type: MapType(h.info[0] ^ MapType::HASH.0),
            map_flags: MapFlags::empty(),
            key_size: h.info[1],
            value_size: h.info[2],
            max_entries: h.info[3],
            name: MapName::from_field(b"fuzz\0\0\0\0\0\0\0\0\0\0\0\0"),
            btf: Kva(0),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            btf_vmlinux_value_type_id: 0,
            btf_id: 0,
        };
        let n = usize::from(h.cpus % 4) + 1;
        let offsets = PerCpuOffsets::new(h.offsets[..n].to_vec()).ok();
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        let bpf = Bpf::new(&view, &layout, Kva(0));
        if let Some(map) = open(&bpf, &info, offsets.as_ref(), h.force) {
            check(&view, &map, offsets.as_ref(), cpu);
        }
    }
}
