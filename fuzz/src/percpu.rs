//! Target `percpu`: `__per_cpu_offset` ([`PossibleCpus::resolve`],
//! [`PerCpuOffsets::read`], `read_vec`, `new`, `copy_kva`, `read_copy`,
//! `read_copies`) and PERCPU_ARRAY maps ([`Bpf::percpu_array`], `pptr_kva`, `pptr`,
//! `read_cpu`, `values`, [`PerCpuArrayWalk`]), over raw RAM with an arbitrary map, or
//! over a mutated synthetic guest's per-CPU maps.

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::{CpuCopy, MapName, PerCpuArrayWalk, PerCpuOffsets, PossibleCpus};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{ArrayLayout, KernelLayout};
use mapwalk_core::{Bpf, Kva, Limits, MapFlags, MapInfo, MapType, Pa, Paging, Ram};

use crate::{hash_guest, limits, read_offsets, sink, Enc, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Keys of a walk looked at (a PERCPU_ARRAY walk ends only after `max_entries` keys,
/// which a corrupt map may set to 2^31).
const WALK_KEYS: usize = 1024;

/// The largest read of one operation.
const MAX_LEN: usize = 4096;

/// The fixed part of an input.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Even: synthetic guest; odd: raw RAM.
    pub mode: u8,
    /// Synthetic: which guest.
    pub guest: u8,
    /// Synthetic: which discovered map (PERCPU_ARRAYs first, then the others).
    pub pick: u8,
    /// `bpf_array.elem_size` and `.value` offsets. Raw: the offsets. Synthetic: XORed
    /// into the guest's.
    pub array: [u16; 2],
    /// The caps, see [`limits`].
    pub limits: [u8; 8],
    /// Synthetic: 0 reads the possible count from `nr_cpu_ids`, else `cpus % 9`.
    /// Raw: `cpus % 4 + 1` offsets from `offsets`.
    pub cpus: u8,
    /// Synthetic: XORed into the address of `__per_cpu_offset`.
    pub per_cpu_offset: u64,
    /// Synthetic: XORed into the address of `nr_cpu_ids`.
    pub nr_cpu_ids: u64,
    /// Reads: `(key, cpu, offset, len)`.
    pub reads: [(u32, u8, u16, u16); 3],
    /// Raw: the map's address (an offset into the RAM's direct map).
    pub kva: u32,
    /// Raw: `map_type` XOR PERCPU_ARRAY (so 0 is one), `key_size` XOR 4,
    /// `value_size`, `max_entries`.
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
            array: u.arbitrary()?,
            limits: u.arbitrary()?,
            cpus: u.arbitrary()?,
            per_cpu_offset: u.arbitrary()?,
            nr_cpu_ids: u.arbitrary()?,
            ..Self::default()
        };
        let limits = limits(&mut Unstructured::new(&h.limits))?;
        for r in &mut h.reads {
            *r = (
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
                u.arbitrary()?,
            );
        }
        h.kva = u.arbitrary()?;
        h.info = u.arbitrary()?;
        h.offsets = u.arbitrary()?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
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
            .u8(self.cpus)
            .u64(self.per_cpu_offset)
            .u64(self.nr_cpu_ids);
        for &(key, cpu, offset, len) in &self.reads {
            e.u32(key).u8(cpu).u16(offset).u16(len);
        }
        e.u32(self.kva);
        for &i in &self.info {
            e.u32(i);
        }
        for &o in &self.offsets {
            e.u64(o);
        }
        e.u16(self.base_page).u64(self.cr3);
    }
}

/// The offsets on their own: every CPU's copy of a pointer, one by one and together.
fn check_offsets<K: KernelRead + ?Sized>(mem: &K, o: &PerCpuOffsets<Vec<u64>>, pptr: u64) {
    let n = o.possible();
    for cpu in 0..n.min(16).saturating_add(1) {
        let kva = o.copy_kva(pptr, cpu);
        match (o.offset(cpu), kva) {
            (Some(off), CpuCopy::Present(va)) => assert_eq!(va.0, pptr.wrapping_add(off)),
            (None, CpuCopy::NoSuchCpu) => assert!(cpu >= n || cpu != 0),
            other => panic!("offset and copy_kva disagree for CPU {cpu}: {other:?}"),
        }
        let mut buf = [0u8; 16];
        match o.read_copy(mem, pptr, cpu, &mut buf) {
            Ok(c) => assert_eq!(c.is_present(), kva.is_present()),
            Err(e) => sink(&e),
        }
    }
    match o.read_copies(mem, pptr, 16) {
        Ok(v) => assert_eq!(v.len() as u64, u64::from(n)),
        Err(e) => sink(&e),
    }
}

/// Every PERCPU_ARRAY operation on `info`.
pub fn check<K: KernelRead + ?Sized>(
    bpf: &Bpf<'_, K>,
    mem: &K,
    info: &MapInfo,
    offsets: Option<&PerCpuOffsets<Vec<u64>>>,
    h: &Header,
) {
    let map = match bpf.percpu_array(info) {
        Ok(m) => m,
        Err(e) => {
            sink(&e);
            return;
        }
    };
    std::hint::black_box(map.info());
    let mut walk: PerCpuArrayWalk<'_, K> = map.walk(mem);
    sink(&format_args!("{walk:?}"));
    let mut first_pptr = None;
    for item in walk.by_ref().take(WALK_KEYS) {
        match item {
            Ok(e) => {
                assert_eq!(
                    map.pptr(mem, e.key),
                    Ok(e.pptr),
                    "walk and pptr({}) differ",
                    e.key
                );
                first_pptr.get_or_insert(e.pptr);
            }
            Err(e) => sink(&e),
        }
    }
    if u64::from(info.max_entries) <= WALK_KEYS as u64 {
        assert!(
            walk.next().is_none(),
            "a PERCPU_ARRAY walk went past max_entries"
        );
    }
    let mut buf = vec![0u8; MAX_LEN];
    let mut again = vec![0u8; MAX_LEN];
    for &(key, cpu, offset, len) in &h.reads {
        let cpu = u32::from(cpu % 5);
        let len = usize::from(len) % (MAX_LEN + 1);
        if let Err(e) = map.pptr_kva(key) {
            sink(&e);
        }
        let Some(o) = offsets else { continue };
        let r = map.read_cpu(mem, o, key, cpu, u64::from(offset), &mut buf[..len]);
        match r {
            Ok(copy) => {
                // The same bytes straight from the offsets.
                let pptr = map.pptr(mem, key).expect("read_cpu read the pointer");
                let again_r = o.read_copy(
                    mem,
                    pptr.wrapping_add(u64::from(offset)),
                    cpu,
                    &mut again[..len],
                );
                assert_eq!(again_r, Ok(copy));
                assert_eq!(buf[..len], again[..len], "read_cpu and read_copy differ");
            }
            Err(e) => sink(&e),
        }
        match map.values(mem, o, key) {
            Ok(v) => {
                assert_eq!(v.len() as u64, u64::from(o.possible()));
                for (c, copy) in v.iter().enumerate() {
                    if let CpuCopy::Present(bytes) = copy {
                        assert_eq!(bytes.len() as u64, u64::from(info.value_size));
                        let mut one = vec![0u8; bytes.len()];
                        let r = map.read_cpu(mem, o, key, c as u32, 0, &mut one);
                        assert_eq!(r, Ok(CpuCopy::Present(())));
                        assert_eq!(&one, bytes, "values and read_cpu differ for CPU {c}");
                    }
                }
            }
            Err(e) => sink(&e),
        }
    }
    if let (Some(o), Some(pptr)) = (offsets, first_pptr) {
        check_offsets(mem, o, pptr);
    }
}

/// One input.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((h, limits)) = Header::decode(&mut u) else {
        return;
    };
    if h.mode % 2 == 0 {
        let g = hash_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
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
        let mut found: Vec<MapInfo> = maps.filter_map(Result::ok).take(64).collect();
        found.sort_by_key(|m| m.map_type != MapType::PERCPU_ARRAY);
        let Some(info) = found.get(usize::from(h.pick) % found.len().max(1)) else {
            return;
        };
        let offsets = read_offsets(
            &view,
            Kva(g.g.symbols.per_cpu_offset.0 ^ h.per_cpu_offset),
            Kva(g.g.symbols.nr_cpu_ids.0 ^ h.nr_cpu_ids),
            h.cpus,
        );
        check(&bpf, &view, info, offsets.as_ref(), &h);
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
            map_type: MapType(h.info[0] ^ MapType::PERCPU_ARRAY.0),
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
        let n = usize::from(h.cpus % 4) + 1;
        let offsets = match PerCpuOffsets::new(h.offsets[..n].to_vec()) {
            Ok(o) => Some(o),
            Err(e) => {
                sink(&e);
                None
            }
        };
        // A count of CPUs from the header, resolved without memory.
        if let Some(p) = PossibleCpus::count(u32::from(h.cpus)) {
            std::hint::black_box(p);
        }
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        let bpf = Bpf::new(&view, &layout, Kva(0));
        check(&bpf, &view, &info, offsets.as_ref(), &h);
    }
}
