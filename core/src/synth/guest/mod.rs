//! Whole synthetic guests: a kernel image with `map_idr`, page tables, and BPF maps.

mod layouter;
mod progspec;
mod spec;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::addr::{Kva, Pa};
use crate::arch::Paging;
use crate::bpf::{PerCpuOffsets, PossibleCpus};
use crate::kernel::{KernelAddrs, KernelView};
use crate::layout::{
    ArrayLayout, BloomLayout, BpfMapLayout, BtfObjectLayout, CgroupLayout, CpumapLayout,
    DevmapLayout, HtabLayout, IdrLayout, KernelLayout, LpmLayout, MapRefcnts, PerfEventLayout,
    ProgLayout, QueueStackLayout, ReuseportLayout, SockLayout, SockmapLayout, StackMapLayout,
    StructOpsLayout, XarrayLayout, XskmapLayout,
};
use crate::layout::{
    CgroupOwnerLayout, InodeOwnerLayout, SockOwnerLayout, StorageLayout, TaskOwnerLayout,
};
use crate::limits::MAX_CPUS;
use crate::mem::{Ram, RamCell};
use crate::synth::SynthRam;
use layouter::Layouter;

pub use progspec::ProgSpec;
pub use spec::{
    EntrySpec, MapSpec, Placement, RingSpec, SlotObject, StorageElemSpec, StructOpsSpec,
};

/// A layout like Linux 6.1's on x86_64 (the values are realistic but only need to be
/// self-consistent: the walkers take whatever layout they are given).
pub fn default_layout() -> KernelLayout {
    KernelLayout {
        xarray: XarrayLayout {
            xa_head: 8,
            node_shift: 0,
            node_slots: 40,
        },
        idr: IdrLayout {
            idr_rt: 0,
            idr_next: 20,
        },
        bpf_map: BpfMapLayout {
            map_type: 24,
            key_size: 28,
            value_size: 32,
            max_entries: 36,
            map_flags: 48,
            id: 60,
            btf_key_type_id: 68,
            btf_value_type_id: 72,
            btf_vmlinux_value_type_id: Some(76),
            btf: 80,
            name: 96,
            // Zero (not frozen) unless a test writes it.
            frozen: Some(112),
        },
        array: Some(ArrayLayout {
            elem_size: 256,
            value: 272,
        }),
        htab: Some(HtabLayout {
            buckets: 304,
            n_buckets: 580,
            elem_size: 584,
            bucket_head: 0,
            bucket_size: 16,
            elem_hash_node: 0,
            elem_key: 48,
            node_pprev: 8,
        }),
        btf_object: Some(BtfObjectLayout {
            data: 0,
            data_size: 80,
            id: 88,
            base_btf: 136,
        }),
        prog: Some(ProgLayout {
            prog_type: 4,
            len: 12,
            jited_len: 16,
            tag: 20,
            aux: 56,
            gpl_compatible_bit: Some(18),
            aux_id: 28,
            aux_name: 160,
            aux_prog: 144,
            aux_used_map_cnt: 8,
            aux_used_maps: 128,
            aux_func_cnt: 32,
            aux_func: 120,
            aux_btf: 136,
            aux_user: Some(152),
            user_uid: Some(8),
        }),
        lpm: Some(LpmLayout {
            root: 256,
            max_prefixlen: 272,
            data_size: 280,
            node_child: 16,
            node_prefixlen: 32,
            node_flags: 36,
            node_data: 40,
        }),
        queue: Some(QueueStackLayout {
            head: 260,
            tail: 264,
            size: 268,
            elements: 272,
        }),
        bloom: Some(BloomLayout {
            bitset_mask: 256,
            hash_seed: 260,
            nr_hash_funcs: 268,
            bitset: 272,
        }),
        devmap: Some(DevmapLayout {
            netdev_map: 256,
            dev_index_head: 280,
            n_buckets: 296,
            index_hlist: 8,
            idx: 48,
            val: 52,
            node_next: 0,
        }),
        cpumap: Some(CpumapLayout {
            cpu_map: 256,
            entry_cpu: 0,
            entry_value: 48,
        }),
        sock: Some(SockLayout { cookie: 104 }),
        sockmap: Some(SockmapLayout {
            sks: 256,
            buckets: 256,
            buckets_num: 264,
            bucket_head: 0,
            bucket_size: 16,
            elem_node: 32,
            elem_hash: 16,
            elem_sk: 24,
            elem_key: 48,
            node_next: 0,
        }),
        reuseport: Some(ReuseportLayout { ptrs: 256 }),
        cgroup: Some(CgroupLayout { kn: 288, kn_id: 72 }),
        perf_event: Some(PerfEventLayout {
            entry_event: 0,
            event_attr: 208,
            event_cpu: 624,
            attr_type: 0,
            attr_config: 8,
        }),
        xskmap: Some(XskmapLayout {
            xsk_map: 264,
            dev: 760,
            queue_id: 772,
            ifindex: 264,
        }),
        // Linux 6.8's on x86_64, `pending_pos` included.
        ringbuf: Some(crate::layout::RingbufLayout {
            rb: 256,
            mask: 64,
            consumer_pos: 4096,
            producer_pos: 8192,
            pending_pos: Some(8200),
            data: 12288,
        }),
        // Linux 6.1 has no `struct bpf_arena`.
        arena: None,
        storage: Some(storage_layout()),
        stackmap: Some(StackMapLayout {
            n_buckets: 288,
            buckets: 296,
            bucket_nr: 12,
            bucket_data: 16,
        }),
        // Linux 6.1's on x86_64 (`links` without `funcs_cnt`, `kvalue.refcnt`).
        struct_ops: Some(StructOpsLayout {
            uvalue: 328,
            kvalue: 384,
            links: 312,
            funcs_cnt: None,
            value_refcnt: 0,
            value_state: 4,
            link_prog: 24,
            map_refcnts: Some(MapRefcnts {
                refcnt: 128,
                usercnt: 136,
            }),
            refcnt_retired: false,
        }),
    }
}

/// Local-storage offsets like Linux 6.1's on x86_64.
fn storage_layout() -> StorageLayout {
    StorageLayout {
        buckets: 256,
        bucket_log: 264,
        bucket_first: 0,
        bucket_size: 16,
        elem_map_node: 0,
        elem_next: 0,
        elem_pprev: 8,
        elem_local_storage: 32,
        elem_smap: 64,
        elem_data: 72,
        storage_owner: 136,
        task: Some(TaskOwnerLayout {
            pid: 2416,
            tgid: 2420,
            comm: 2976,
        }),
        inode: Some(InodeOwnerLayout {
            ino: 64,
            sb: 40,
            s_dev: 16,
        }),
        sock: Some(SockOwnerLayout {
            cookie: 88,
            family: 16,
            num: 14,
            dport: 12,
            rcv_saddr: 4,
            daddr: 0,
            v6_rcv_saddr: Some(72),
            v6_daddr: Some(56),
        }),
        cgroup: Some(CgroupOwnerLayout {
            kn: 248,
            kn_id: 104,
            kn_name: 16,
        }),
    }
}

/// The architecture of a synthetic guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthArch {
    /// x86_64, 4- or 5-level.
    X86_64 {
        /// 5-level paging.
        five_level: bool,
    },
    /// aarch64 with a 48-bit kernel VA space.
    Aarch64 {
        /// 12, 14 or 16.
        granule_shift: u32,
    },
    /// aarch64 with TCR_EL1.DS = 1 (FEAT_LPA2) and a 52-bit kernel VA space, laid out
    /// as Linux does: the linear map at `0xfff0_0000_0000_0000` (five levels with
    /// 4 KiB granules).
    Aarch64Lpa2 {
        /// 12 or 14.
        granule_shift: u32,
    },
}

/// Builds a [`SyntheticGuest`].
#[derive(Debug, Clone)]
pub struct GuestBuilder {
    arch: SynthArch,
    ram_size: usize,
    layout: KernelLayout,
    maps: Vec<MapSpec>,
    progs: Vec<ProgSpec>,
    idr_next: Option<u32>,
    possible_cpus: u32,
    nr_cpus: u32,
}

/// Kernel-image symbols of a synthetic guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSymbols {
    /// `map_idr`.
    pub map_idr: Kva,
    /// `phys_base` (x86_64).
    pub phys_base: Kva,
    /// `page_offset_base` (x86_64).
    pub page_offset_base: Kva,
    /// `__per_cpu_offset` (`NR_CPUS` `u64`s; zero past the possible CPUs).
    pub per_cpu_offset: Kva,
    /// `nr_cpu_ids` (an `unsigned int`: the possible CPUs).
    pub nr_cpu_ids: Kva,
}

/// One element of a hash map as laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltElem {
    /// Its bucket.
    pub bucket: u32,
    /// The address of its `struct htab_elem`.
    pub kva: Kva,
    /// Its `__percpu` pointer (per-CPU maps).
    pub pptr: Option<u64>,
}

/// A hash map as laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltHtab {
    /// The bucket array.
    pub buckets: Kva,
    /// Its length.
    pub n_buckets: u32,
    /// `bpf_htab.elem_size`.
    pub elem_size: u32,
    /// The elements, in the order of the [`MapSpec`]'s entries.
    pub elems: Vec<BuiltElem>,
}

/// One element of a local-storage map as laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltStorageElem {
    /// Its bucket.
    pub bucket: u32,
    /// The address of its `struct bpf_local_storage_elem`.
    pub kva: Kva,
    /// Its owner's `struct bpf_local_storage`.
    pub local_storage: Kva,
    /// The owner object.
    pub owner: Kva,
}

/// A local-storage map as laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltStorage {
    /// The bucket array.
    pub buckets: Kva,
    /// `bucket_log`.
    pub bucket_log: u32,
    /// The elements, in the order of the [`MapSpec`]'s.
    pub elems: Vec<BuiltStorageElem>,
}

/// A map as laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltMap {
    /// Its id.
    pub id: u32,
    /// The address of its `struct bpf_map`.
    pub kva: Kva,
}

/// An object a slot of an object map points at, as laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BuiltObject {
    /// Where the pointer to it lies: the array slot, or for the hash kinds the bucket
    /// head or the previous element's `next`.
    pub slot: Kva,
    /// The object (for SOCKHASH, its `struct bpf_shtab_elem`).
    pub object: Kva,
}

/// A program as laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltProg {
    /// Its id.
    pub id: u32,
    /// The address of its `struct bpf_prog`.
    pub kva: Kva,
    /// The address of its `struct bpf_prog_aux`.
    pub aux: Kva,
}

/// A guest built by [`GuestBuilder`]: RAM, paging state, layout and where things are.
#[derive(Debug, Clone)]
pub struct SyntheticGuest {
    /// The RAM.
    pub ram: SynthRam,
    /// The paging state.
    pub paging: Paging,
    /// The kernel's linear mappings.
    pub addrs: KernelAddrs,
    /// The layout the objects were laid out with.
    pub layout: KernelLayout,
    /// `map_idr`.
    pub map_idr: Kva,
    /// The kernel-image symbols.
    pub symbols: SynthSymbols,
    /// The maps, in the order they were added.
    pub maps: Vec<BuiltMap>,
    /// `phys_base` (x86_64; 0 on aarch64).
    pub phys_base: u64,
    /// Pages mapped by the page tables outside the linear maps: virtual page to
    /// physical page.
    pub vmalloc_pages: BTreeMap<u64, Pa>,
    /// The possible CPUs.
    pub possible_cpus: u32,
    /// `__per_cpu_offset`, all `NR_CPUS` slots as written.
    pub per_cpu_offsets: Vec<u64>,
    /// The hash maps, by id.
    pub htabs: BTreeMap<u32, BuiltHtab>,
    /// The `__percpu` pointers of the PERCPU_ARRAY maps, by id and key.
    pub percpu_arrays: BTreeMap<u32, Vec<u64>>,
    /// The objects of the object maps, by id, in the order of their
    /// [`MapSpec::objects`].
    pub objects: BTreeMap<u32, Vec<BuiltObject>>,
    /// `prog_idr` (a kernel-image variable, after the others).
    pub prog_idr: Kva,
    /// The programs, in the order they were added.
    pub progs: Vec<BuiltProg>,
    /// The local-storage maps, by id.
    pub storage: BTreeMap<u32, BuiltStorage>,
}

impl SyntheticGuest {
    /// A kernel view over the guest's RAM (read-only).
    pub fn view(&self) -> KernelView<Ram<&[u8]>> {
        KernelView::new(self.ram.as_ram(), self.paging, self.addrs)
    }

    /// A writable kernel view over a copy of the guest's RAM.
    pub fn view_mut(&self) -> KernelView<RamCell<Vec<u8>>> {
        KernelView::new(
            RamCell::new(self.ram.base(), self.ram.bytes().to_vec()),
            self.paging,
            self.addrs,
        )
    }

    /// The possible CPUs, as a [`PossibleCpus`].
    pub fn possible(&self) -> PossibleCpus {
        PossibleCpus::count(self.possible_cpus).unwrap()
    }

    /// `__per_cpu_offset` of the possible CPUs.
    pub fn offsets(&self) -> PerCpuOffsets<Vec<u64>> {
        PerCpuOffsets::new(self.per_cpu_offsets[..self.possible_cpus as usize].to_vec()).unwrap()
    }

    /// The physical address of kernel address `va` by the builder's own records.
    pub fn pa_of(&self, va: Kva) -> Pa {
        if let Some(span) = self.addrs.direct_map.and_then(|r| r.lookup(va)) {
            return span.start;
        }
        if let Some(span) = self.addrs.image.and_then(|r| r.lookup(va)) {
            return span.start;
        }
        let page = self
            .vmalloc_pages
            .get(&(va.0 & !0xfff))
            .unwrap_or_else(|| panic!("{va} is not mapped"));
        Pa(page.0 + (va.0 & 0xfff))
    }
}

impl GuestBuilder {
    /// An x86_64 guest with 64 MiB of RAM at physical 0.
    pub fn x86_64(five_level: bool) -> Self {
        Self::new(SynthArch::X86_64 { five_level })
    }

    /// An aarch64 guest with 64 MiB of RAM at physical `0x4000_0000`.
    pub fn aarch64(granule_shift: u32) -> Self {
        Self::new(SynthArch::Aarch64 { granule_shift })
    }

    /// An aarch64 guest with TCR_EL1.DS = 1 (LPA2) and 52-bit kernel VAs, 64 MiB of RAM
    /// at physical `0x4000_0000`.
    pub fn aarch64_lpa2(granule_shift: u32) -> Self {
        Self::new(SynthArch::Aarch64Lpa2 { granule_shift })
    }

    /// A guest of `arch` with the [`default_layout`].
    pub fn new(arch: SynthArch) -> Self {
        Self {
            arch,
            ram_size: 64 << 20,
            layout: default_layout(),
            maps: Vec::new(),
            progs: Vec::new(),
            idr_next: None,
            possible_cpus: 2,
            nr_cpus: 64,
        }
    }

    /// Sets the number of possible CPUs (default 2; at most [`MAX_CPUS`]).
    #[must_use]
    pub fn possible_cpus(mut self, n: u32) -> Self {
        assert!((1..=MAX_CPUS).contains(&n), "{n} possible CPUs");
        self.possible_cpus = n;
        self
    }

    /// Sets `NR_CPUS`, the length of `__per_cpu_offset` (default 64).
    #[must_use]
    pub fn nr_cpus(mut self, n: u32) -> Self {
        self.nr_cpus = n;
        self
    }

    /// Sets the RAM size (at least 32 MiB).
    #[must_use]
    pub fn ram_size(mut self, bytes: usize) -> Self {
        assert!(bytes >= 32 << 20, "synthetic guests need at least 32 MiB");
        self.ram_size = bytes;
        self
    }

    /// Uses `layout` instead of the default.
    #[must_use]
    pub fn layout(mut self, layout: KernelLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Sets `map_idr.idr_next` (default: one past the highest id).
    #[must_use]
    pub fn idr_next(mut self, next: u32) -> Self {
        self.idr_next = Some(next);
        self
    }

    /// Adds a map.
    pub fn add_map(&mut self, spec: MapSpec) -> &mut Self {
        self.maps.push(spec);
        self
    }

    /// Adds a program.
    pub fn add_prog(&mut self, spec: ProgSpec) -> &mut Self {
        self.progs.push(spec);
        self
    }

    /// Lays everything out.
    pub fn build(&self) -> SyntheticGuest {
        Layouter::new(self).run()
    }
}
