//! Laying a guest out: memory, page tables, per-CPU areas and map objects.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

mod lpm;
mod objmaps;
mod progs;
mod ringbuf;
mod stackmap;
mod storage;
mod structops;

use super::{
    BuiltElem, BuiltHtab, BuiltMap, BuiltObject, BuiltStorage, GuestBuilder, MapSpec, Placement,
    SynthArch, SynthSymbols, SyntheticGuest,
};
use crate::addr::{Kva, Pa};
use crate::bpf::{MapType, PptrPlacement, BPF_F_MMAPABLE};
use crate::kernel::{KernelAddrs, LinearRegion, X86_KERNEL_IMAGE_SIZE, X86_START_KERNEL_MAP};
use crate::limits::BPF_OBJ_NAME_LEN;
use crate::synth::{build_xarray, Aarch64PageTables, SynthRam, X86PageTables};

/// x86_64 direct-map base (randomized-looking, as with CONFIG_RANDOMIZE_MEMORY).
const X86_PAGE_OFFSET_4L: u64 = 0xffff_9a40_0000_0000;
const X86_PAGE_OFFSET_5L: u64 = 0xff2f_ef18_8000_0000;
const X86_VMALLOC: u64 = 0xffff_c900_0000_0000;
/// Where the synthetic kernel image's data starts, as `_text` would.
const X86_TEXT: u64 = X86_START_KERNEL_MAP + 0x0100_0000;
/// Physical KASLR: the image is loaded this far above its link address.
const X86_PHYS_BASE: u64 = 0x0020_0000;
const A64_RAM_BASE: u64 = 0x4000_0000;
const A64_PAGE_OFFSET: u64 = 0xffff_0000_0000_0000;
/// The linear map of a 52-bit (LPA2) aarch64 guest.
const A64_PAGE_OFFSET_52: u64 = 0xfff0_0000_0000_0000;
const A64_KIMAGE: u64 = 0xffff_8000_8000_0000;
const A64_VMALLOC: u64 = 0xffff_8000_9000_0000;
const IMAGE_SIZE: u64 = 2 << 20;

enum Tables {
    X86(X86PageTables),
    A64(Aarch64PageTables),
}

pub(super) struct Layouter<'b> {
    b: &'b GuestBuilder,
    ram: SynthRam,
    tables: Tables,
    addrs: KernelAddrs,
    image_va: u64,
    image_next: u64,
    vmalloc_next: u64,
    vmalloc_pages: BTreeMap<u64, Pa>,
    page_shift: u32,
    pcpu: Pcpu,
    htabs: BTreeMap<u32, BuiltHtab>,
    percpu_arrays: BTreeMap<u32, Vec<u64>>,
    storage: BTreeMap<u32, BuiltStorage>,
    objects: BTreeMap<u32, Vec<BuiltObject>>,
}

/// One per-CPU chunk: `possible` units of `unit` bytes from `base`.
#[derive(Default)]
struct PcpuChunk {
    base: u64,
    next: u64,
}

/// The per-CPU areas: every chunk has the same unit layout, as in the kernel, so that
/// `pptr + __per_cpu_offset[n]` is CPU `n`'s copy whichever chunk `pptr` is in.
#[derive(Default)]
struct Pcpu {
    /// `__per_cpu_start`: 0 on x86_64 (zero-based per-CPU), an image address on arm64.
    start: u64,
    unit: u64,
    offsets: Vec<u64>,
    first: PcpuChunk,
    vm: Option<PcpuChunk>,
}

/// Bytes at the start of every unit standing for the static per-CPU variables.
const PCPU_STATIC: u64 = 0x100;

/// Where arm64's pretend `__per_cpu_start` is (in the image, but never read).
const A64_PER_CPU_START: u64 = A64_KIMAGE + 0x18_0000;

fn is_hash(t: MapType) -> bool {
    matches!(
        t,
        MapType::HASH
            | MapType::LRU_HASH
            | MapType::PERCPU_HASH
            | MapType::LRU_PERCPU_HASH
            | MapType::HASH_OF_MAPS
    )
}

/// A `struct bpf_array` laid like an ARRAY: values (or object pointers) inline.
fn is_inline_array(t: MapType) -> bool {
    matches!(
        t,
        MapType::ARRAY
            | MapType::PROG_ARRAY
            | MapType::ARRAY_OF_MAPS
            | MapType::CGROUP_ARRAY
            | MapType::PERF_EVENT_ARRAY
    )
}

fn is_percpu_hash(t: MapType) -> bool {
    matches!(t, MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH)
}

/// The synthetic kernel's hash: FNV-1a (the real one is jhash with a random seed).
fn key_hash(key: &[u8]) -> u32 {
    key.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

impl<'b> Layouter<'b> {
    pub(super) fn new(b: &'b GuestBuilder) -> Self {
        let ram_size = b.ram_size as u64;
        match b.arch {
            SynthArch::X86_64 { five_level } => {
                let mut ram = SynthRam::new(Pa(0), b.ram_size);
                // The image sits where `_text` would be loaded with physical KASLR.
                let image_pa = X86_TEXT - X86_START_KERNEL_MAP + X86_PHYS_BASE;
                ram.skip_to(Pa(image_pa + IMAGE_SIZE));
                let tables = X86PageTables::new(&mut ram, five_level);
                let page_offset = if five_level {
                    X86_PAGE_OFFSET_5L
                } else {
                    X86_PAGE_OFFSET_4L
                };
                tables.map_range(&mut ram, Kva(page_offset), Pa(0), ram_size, 21);
                tables.map_range(&mut ram, Kva(X86_TEXT), Pa(image_pa), IMAGE_SIZE, 21);
                let addrs = KernelAddrs::x86_64(page_offset, ram_size, X86_PHYS_BASE);
                Self {
                    b,
                    ram,
                    tables: Tables::X86(tables),
                    addrs,
                    image_va: X86_TEXT,
                    image_next: X86_TEXT,
                    vmalloc_next: X86_VMALLOC,
                    vmalloc_pages: BTreeMap::new(),
                    page_shift: 12,
                    pcpu: Pcpu::default(),
                    htabs: BTreeMap::new(),
                    percpu_arrays: BTreeMap::new(),
                    storage: BTreeMap::new(),
                    objects: BTreeMap::new(),
                }
            }
            SynthArch::Aarch64 { granule_shift } | SynthArch::Aarch64Lpa2 { granule_shift } => {
                let lpa2 = matches!(b.arch, SynthArch::Aarch64Lpa2 { .. });
                let mut ram = SynthRam::new(Pa(A64_RAM_BASE), b.ram_size);
                let image_pa = ram.alloc(IMAGE_SIZE, 1 << 21);
                let (tables, page_offset) = if lpa2 {
                    let t = Aarch64PageTables::new_lpa2(&mut ram, granule_shift, 12, 0x42);
                    (t, A64_PAGE_OFFSET_52)
                } else {
                    let t = Aarch64PageTables::new(&mut ram, granule_shift, 16, 0x42);
                    (t, A64_PAGE_OFFSET)
                };
                let block = match granule_shift {
                    12 => 21,
                    14 => 25,
                    _ => granule_shift,
                };
                tables.map_range(
                    &mut ram,
                    Kva(page_offset),
                    Pa(A64_RAM_BASE),
                    ram_size,
                    block,
                );
                tables.map_range(
                    &mut ram,
                    Kva(A64_KIMAGE),
                    image_pa,
                    IMAGE_SIZE,
                    granule_shift,
                );
                let addrs = KernelAddrs {
                    direct_map: Some(LinearRegion {
                        virt: Kva(page_offset),
                        phys: Pa(A64_RAM_BASE),
                        len: ram_size,
                    }),
                    image: Some(LinearRegion {
                        virt: Kva(A64_KIMAGE),
                        phys: image_pa,
                        len: IMAGE_SIZE,
                    }),
                };
                Self {
                    b,
                    ram,
                    tables: Tables::A64(tables),
                    addrs,
                    image_va: A64_KIMAGE,
                    image_next: A64_KIMAGE,
                    vmalloc_next: A64_VMALLOC,
                    vmalloc_pages: BTreeMap::new(),
                    page_shift: granule_shift,
                    pcpu: Pcpu {
                        start: A64_PER_CPU_START,
                        ..Pcpu::default()
                    },
                    htabs: BTreeMap::new(),
                    percpu_arrays: BTreeMap::new(),
                    storage: BTreeMap::new(),
                    objects: BTreeMap::new(),
                }
            }
        }
    }

    fn map_page(&mut self, va: u64, pa: Pa) {
        match &self.tables {
            Tables::X86(t) => t.map(&mut self.ram, Kva(va), pa, 12),
            Tables::A64(t) => t.map(&mut self.ram, Kva(va), pa, self.page_shift),
        }
        let page = 1u64 << self.page_shift;
        for sub in (0..page).step_by(0x1000) {
            self.vmalloc_pages.insert(va + sub, Pa(pa.0 + sub));
        }
    }

    /// A kernel-image variable of `size` bytes.
    fn image_var(&mut self, size: u64) -> Kva {
        let va = self.image_next.next_multiple_of(64);
        self.image_next = va + size;
        assert!(
            self.image_next - self.image_va <= IMAGE_SIZE,
            "synthetic kernel image is full"
        );
        Kva(va)
    }

    /// `size` bytes of kmalloc'd memory: its kernel address.
    fn kmalloc(&mut self, size: u64) -> Kva {
        let pa = self.ram.alloc(size.max(8), 64);
        Kva(self.addrs.direct_map.unwrap().virt.0 + (pa.0 - self.ram.base().0))
    }

    /// `size` bytes of vmalloc'd memory whose byte `align_at` lands on a page boundary:
    /// the kernel address of byte 0.
    fn vmalloc(&mut self, size: u64, align_at: u64) -> Kva {
        let page = 1u64 << self.page_shift;
        let lead = align_at.next_multiple_of(page) - align_at;
        let pages = (lead + size).div_ceil(page);
        let start = self.vmalloc_next;
        for i in 0..pages {
            // Every other physical page: virtually contiguous, physically scattered.
            let _gap = self.ram.alloc_page(self.page_shift);
            let pa = self.ram.alloc_page(self.page_shift);
            self.map_page(start + i * page, pa);
        }
        // A guard page between areas, as vmalloc leaves.
        self.vmalloc_next = start + (pages + 1) * page;
        Kva(start + lead)
    }

    fn pa_of(&self, va: u64) -> Pa {
        if let Some(span) = self.addrs.direct_map.and_then(|r| r.lookup(Kva(va))) {
            return span.start;
        }
        if let Some(span) = self.addrs.image.and_then(|r| r.lookup(Kva(va))) {
            return span.start;
        }
        let page = self
            .vmalloc_pages
            .get(&(va & !0xfff))
            .unwrap_or_else(|| panic!("{va:#x} is not mapped"));
        Pa(page.0 + (va & 0xfff))
    }

    /// Writes `data` at kernel address `va`, page by page.
    fn write(&mut self, va: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let here = va + done as u64;
            let chunk = ((0x1000 - (here & 0xfff)) as usize).min(data.len() - done);
            let pa = self.pa_of(here);
            self.ram.write(pa, &data[done..done + chunk]);
            done += chunk;
        }
    }

    fn write_u32(&mut self, va: u64, v: u32) {
        self.write(va, &v.to_le_bytes());
    }

    fn write_u64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes());
    }

    fn lay_map(&mut self, spec: &MapSpec) -> BuiltMap {
        let l = &self.b.layout;
        let m = l.bpf_map;
        let elem = u64::from(spec.value_size).next_multiple_of(8);
        let header = u64::from(m.name) + 64;
        let (size, align_at) = match (spec.map_type, l.array, l.htab) {
            (t, Some(a), _) if is_inline_array(t) => (
                u64::from(a.value) + elem * u64::from(spec.max_entries),
                u64::from(a.value),
            ),
            (MapType::PERCPU_ARRAY, Some(a), _) => (
                (u64::from(a.value) + 8 * u64::from(spec.max_entries)).max(header),
                0,
            ),
            (MapType::LPM_TRIE, _, _) if l.lpm.is_some() => (header.max(320), 0),
            (t, _, _) if crate::bpf::STORAGE_MAP_TYPES.contains(&t) && l.storage.is_some() => {
                let st = l.storage.unwrap();
                (header.max(u64::from(st.buckets.max(st.bucket_log)) + 8), 0)
            }
            (MapType::QUEUE | MapType::STACK, _, _) if l.queue.is_some() => (
                u64::from(l.queue.unwrap().elements)
                    + u64::from(spec.value_size) * (u64::from(spec.max_entries) + 1),
                0,
            ),
            (t, _, Some(h)) if is_hash(t) => (
                header
                    .max(u64::from(h.buckets) + 8)
                    .max(u64::from(h.n_buckets) + 4)
                    .max(u64::from(h.elem_size) + 4),
                0,
            ),
            _ if ringbuf::ringbuf_map_size(l, spec).is_some() => (
                header.max(ringbuf::ringbuf_map_size(l, spec).unwrap_or(0)),
                0,
            ),
            _ => (
                objmaps::object_map_size(l, spec)
                    .or_else(|| stackmap::stack_map_size(l, spec))
                    .or_else(|| structops::struct_ops_map_size(l, spec).map(|n| n.max(header)))
                    .unwrap_or(header),
                0,
            ),
        };
        let kva = match spec.placement {
            Placement::DirectMap => self.kmalloc(size),
            Placement::Vmalloc => {
                let align_at = if spec.map_flags & BPF_F_MMAPABLE != 0 {
                    align_at
                } else {
                    0
                };
                self.vmalloc(size, align_at)
            }
        };
        let base = kva.0;
        self.write_u32(base + u64::from(m.map_type), spec.map_type.0);
        self.write_u32(base + u64::from(m.key_size), spec.key_size);
        self.write_u32(base + u64::from(m.value_size), spec.value_size);
        self.write_u32(base + u64::from(m.max_entries), spec.max_entries);
        self.write_u32(base + u64::from(m.map_flags), spec.map_flags);
        self.write_u32(base + u64::from(m.id), spec.id);
        self.write_u32(base + u64::from(m.btf_key_type_id), spec.btf_ids.0);
        self.write_u32(base + u64::from(m.btf_value_type_id), spec.btf_ids.1);
        let mut name = [0u8; BPF_OBJ_NAME_LEN];
        name[..spec.name.len()].copy_from_slice(&spec.name);
        self.write(base + u64::from(m.name), &name);
        if let (true, Some(a)) = (is_inline_array(spec.map_type), l.array) {
            self.write_u32(base + u64::from(a.elem_size), elem as u32);
            for (key, value) in spec.values.iter().enumerate() {
                assert!(
                    value.len() <= spec.value_size as usize,
                    "value of key {key} is too long"
                );
                self.write(base + u64::from(a.value) + key as u64 * elem, value);
            }
        }
        if let (MapType::PERCPU_ARRAY, Some(a)) = (spec.map_type, l.array) {
            self.write_u32(base + u64::from(a.elem_size), elem as u32);
            let vm = spec.percpu_placement == Placement::Vmalloc;
            let mut pptrs = Vec::new();
            for key in 0..spec.max_entries {
                let pptr = self.pcpu_alloc(elem, vm);
                self.write_u64(base + u64::from(a.value) + u64::from(key) * 8, pptr);
                let values = spec
                    .cpu_values
                    .get(key as usize)
                    .cloned()
                    .unwrap_or_default();
                self.pcpu_fill(pptr, spec.value_size, &values);
                pptrs.push(pptr);
            }
            self.percpu_arrays.insert(spec.id, pptrs);
        }
        if let (true, Some(_)) = (is_hash(spec.map_type), l.htab) {
            self.lay_htab(spec, base);
        }
        if let (MapType::LPM_TRIE, Some(lpm)) = (spec.map_type, l.lpm) {
            self.lay_lpm(spec, base, &lpm);
        }
        if let (true, Some(st)) = (
            crate::bpf::STORAGE_MAP_TYPES.contains(&spec.map_type),
            l.storage,
        ) {
            self.lay_storage(spec, base, &st);
        }
        if let (MapType::QUEUE | MapType::STACK, Some(q)) = (spec.map_type, l.queue) {
            self.write_u32(base + u64::from(q.size), spec.max_entries + 1);
            if let Some((head, tail, slots)) = &spec.ring {
                self.write_u32(base + u64::from(q.head), *head);
                self.write_u32(base + u64::from(q.tail), *tail);
                for (i, bytes) in slots.iter().enumerate() {
                    let at = base + u64::from(q.elements) + i as u64 * u64::from(spec.value_size);
                    self.write(at, bytes);
                }
            }
        }
        self.lay_object_map(spec, base);
        self.lay_ringbuf(spec, base);
        self.lay_stack_map(spec, base);
        self.lay_struct_ops(spec, base);
        BuiltMap { id: spec.id, kva }
    }

    /// Sizes and places the per-CPU chunks, and fills `__per_cpu_offset`.
    fn setup_pcpu(&mut self) {
        let l = self.b.layout;
        let possible = u64::from(self.b.possible_cpus);
        let (mut direct, mut vm) = (0u64, 0u64);
        for spec in &self.b.maps {
            let copies = match spec.map_type {
                MapType::PERCPU_ARRAY if l.array.is_some() => u64::from(spec.max_entries),
                t if is_percpu_hash(t) && l.htab.is_some() => spec.entries.len() as u64,
                _ => 0,
            };
            let bytes = copies * u64::from(spec.value_size).next_multiple_of(8);
            match spec.percpu_placement {
                Placement::DirectMap => direct += bytes,
                Placement::Vmalloc => vm += bytes,
            }
        }
        let unit = (PCPU_STATIC + direct.max(vm)).next_multiple_of(64);
        self.pcpu.unit = unit;
        let first = self.kmalloc(possible * unit).0;
        for cpu in 0..possible {
            // The static area: the CPU number, as `cpu_number` would hold it.
            self.write_u32(first + cpu * unit, cpu as u32);
        }
        self.pcpu.first = PcpuChunk {
            base: first,
            next: PCPU_STATIC,
        };
        if vm > 0 {
            let base = self.vmalloc(possible * unit, 0).0;
            self.pcpu.vm = Some(PcpuChunk { base, next: 0 });
        }
        self.pcpu.offsets = (0..possible)
            .map(|cpu| (first + cpu * unit).wrapping_sub(self.pcpu.start))
            .collect();
    }

    /// Allocates `size` bytes of per-CPU memory: the `__percpu` pointer.
    fn pcpu_alloc(&mut self, size: u64, vm: bool) -> u64 {
        let (unit, start, first) = (self.pcpu.unit, self.pcpu.start, self.pcpu.first.base);
        let chunk = if vm {
            self.pcpu.vm.as_mut().expect("a vmalloc'd per-CPU chunk")
        } else {
            &mut self.pcpu.first
        };
        let off = chunk.next.next_multiple_of(8);
        chunk.next = off + size;
        assert!(
            chunk.next <= unit,
            "per-CPU unit of {unit:#x} bytes is full"
        );
        chunk
            .base
            .wrapping_add(off)
            .wrapping_sub(first)
            .wrapping_add(start)
    }

    /// Writes each CPU's value of the per-CPU object `pptr`.
    fn pcpu_fill(&mut self, pptr: u64, value_size: u32, values: &[Vec<u8>]) {
        for (cpu, value) in values.iter().enumerate().take(self.pcpu.offsets.len()) {
            assert!(
                value.len() <= value_size as usize,
                "per-CPU value is too long"
            );
            let va = pptr.wrapping_add(self.pcpu.offsets[cpu]);
            self.write(va, value);
        }
    }

    /// `size` bytes where the map's placement says.
    fn map_alloc(&mut self, spec: &MapSpec, size: u64) -> u64 {
        match spec.placement {
            Placement::DirectMap => self.kmalloc(size).0,
            Placement::Vmalloc => self.vmalloc(size.max(8), 0).0,
        }
    }

    /// The bucket array and elements of a hash map whose `struct bpf_htab` is at `base`.
    fn lay_htab(&mut self, spec: &MapSpec, base: u64) {
        let h = self.b.layout.htab.unwrap();
        let n = u64::from(spec.max_entries.max(1)).next_power_of_two();
        let percpu = is_percpu_hash(spec.map_type);
        let ks = u64::from(spec.key_size);
        let rounded = ks.next_multiple_of(8);
        let vr = u64::from(spec.value_size).next_multiple_of(8);
        let elem_size = u64::from(h.elem_key) + rounded + if percpu { 8 } else { vr };
        let stride = u64::from(h.bucket_size);
        let buckets = self.map_alloc(spec, n * stride);
        let nulls = |b: u64| (b << 1) | 1;
        for b in 0..n {
            self.write_u64(buckets + b * stride + u64::from(h.bucket_head), nulls(b));
        }
        let elems = self.map_alloc(spec, elem_size * spec.entries.len().max(1) as u64);
        let vm = spec.percpu_placement == Placement::Vmalloc;
        let mut chains: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut built = Vec::new();
        for (i, e) in spec.entries.iter().enumerate() {
            let bucket = u64::from(e.bucket.unwrap_or_else(|| key_hash(&e.key))) & (n - 1);
            assert!(
                e.bucket.is_none_or(|b| u64::from(b) < n),
                "bucket {:?} of a map of {n} buckets",
                e.bucket
            );
            chains.entry(bucket).or_default().push(i);
            let elem = elems + i as u64 * elem_size;
            let key = elem + u64::from(h.elem_key);
            self.write(key, &e.key);
            let pptr = if percpu {
                let pptr = self.pcpu_alloc(vr, vm);
                let at = match spec.pptr_placement {
                    PptrPlacement::KeySize => key + ks,
                    PptrPlacement::Aligned => key + rounded,
                };
                self.write_u64(at, pptr);
                self.pcpu_fill(pptr, spec.value_size, &e.cpu_values);
                Some(pptr)
            } else {
                self.write(key + rounded, &e.value);
                None
            };
            built.push(BuiltElem {
                bucket: bucket as u32,
                kva: Kva(elem),
                pptr,
            });
        }
        let node = |i: usize| elems + i as u64 * elem_size + u64::from(h.elem_hash_node);
        for (&bucket, list) in &chains {
            let head = buckets + bucket * stride + u64::from(h.bucket_head);
            self.write_u64(head, node(list[0]));
            for (j, &i) in list.iter().enumerate() {
                let next = list.get(j + 1).map_or(nulls(bucket), |&k| node(k));
                self.write_u64(node(i), next);
                // The back link: the pointer that points at this element.
                let pprev = if j == 0 { head } else { node(list[j - 1]) };
                self.write_u64(node(i) + u64::from(h.node_pprev), pprev);
            }
        }
        self.write_u64(base + u64::from(h.buckets), buckets);
        self.write_u32(base + u64::from(h.n_buckets), n as u32);
        self.write_u32(base + u64::from(h.elem_size), elem_size as u32);
        self.htabs.insert(
            spec.id,
            BuiltHtab {
                buckets: Kva(buckets),
                n_buckets: n as u32,
                elem_size: elem_size as u32,
                elems: built,
            },
        );
    }

    pub(super) fn run(mut self) -> SyntheticGuest {
        let l = self.b.layout;
        let map_idr = self.image_var(64);
        let phys_base_sym = self.image_var(8);
        let page_offset_sym = self.image_var(8);
        let phys_base = match self.tables {
            Tables::X86(_) => X86_PHYS_BASE,
            Tables::A64(_) => 0,
        };
        self.write_u64(phys_base_sym.0, phys_base);
        let direct = self.addrs.direct_map.unwrap();
        self.write_u64(page_offset_sym.0, direct.virt.0);
        let (possible, nr_cpus) = (self.b.possible_cpus, self.b.nr_cpus);
        assert!(
            nr_cpus >= possible,
            "NR_CPUS {nr_cpus} below {possible} possible CPUs"
        );
        let per_cpu_offset_sym = self.image_var(8 * u64::from(nr_cpus));
        let nr_cpu_ids_sym = self.image_var(4);
        self.write_u32(nr_cpu_ids_sym.0, possible);
        self.setup_pcpu();
        let mut per_cpu_offsets = self.pcpu.offsets.clone();
        per_cpu_offsets.resize(nr_cpus as usize, 0);
        let raw: Vec<u8> = per_cpu_offsets
            .iter()
            .flat_map(|o| o.to_le_bytes())
            .collect();
        self.write(per_cpu_offset_sym.0, &raw);

        let specs = self.b.maps.clone();
        let maps: Vec<BuiltMap> = specs.iter().map(|s| self.lay_map(s)).collect();
        let entries: Vec<(u64, u64)> = maps.iter().map(|m| (u64::from(m.id), m.kva.0)).collect();
        let direct_base = direct.virt.0.wrapping_sub(direct.phys.0);
        let head = build_xarray(&mut self.ram, &l.xarray, direct_base, &entries);
        let xa = map_idr.0 + u64::from(l.idr.idr_rt);
        self.write_u64(xa + u64::from(l.xarray.xa_head), head);
        let next = self
            .b
            .idr_next
            .unwrap_or_else(|| maps.iter().map(|m| m.id + 1).max().unwrap_or(1));
        self.write_u32(map_idr.0 + u64::from(l.idr.idr_next), next);
        let (prog_idr, progs) = self.lay_progs(&maps);
        self.lay_fd_slots(&maps, &progs);
        self.lay_struct_ops_links(&maps, &progs);

        let paging = match &self.tables {
            Tables::X86(t) => t.paging(),
            Tables::A64(t) => t.paging(),
        };
        let _ = X86_KERNEL_IMAGE_SIZE;
        SyntheticGuest {
            ram: self.ram,
            paging,
            addrs: self.addrs,
            layout: l,
            map_idr,
            symbols: SynthSymbols {
                map_idr,
                phys_base: phys_base_sym,
                page_offset_base: page_offset_sym,
                per_cpu_offset: per_cpu_offset_sym,
                nr_cpu_ids: nr_cpu_ids_sym,
            },
            maps,
            phys_base,
            vmalloc_pages: self.vmalloc_pages,
            possible_cpus: possible,
            per_cpu_offsets,
            htabs: self.htabs,
            percpu_arrays: self.percpu_arrays,
            objects: self.objects,
            prog_idr,
            progs,
            storage: self.storage,
        }
    }
}
