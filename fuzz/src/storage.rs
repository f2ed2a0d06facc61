//! Target `storage`: [`Bpf::for_each_storage_elem`] and [`Bpf::for_each_entry`] over
//! local-storage maps (TASK, INODE, SK and CGRP_STORAGE), with an arbitrary
//! [`StorageLayout`] (owner kinds absent or not) and caps, over raw RAM or a mutated
//! synthetic guest whose storage maps have owners of every kind ([`storage_guest`]).
//!
//! Checked: the walk hands over no more elements than it may visit, its count is the
//! callback's, and every key `for_each_entry` hands over is an owner record that reads
//! back ([`StorageOwner::from_record`]) to an owner whose record is that key.

use std::ops::ControlFlow;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::storage::{
    CgroupOwner, InodeOwner, OwnerDesc, OwnerKind, SockOwner, StorageOwner, TaskOwner,
};
use mapwalk_core::bpf::{EntryValue, MapName, PerCpuOffsets, STORAGE_MAP_TYPES};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView};
use mapwalk_core::layout::{KernelLayout, StorageLayout};
use mapwalk_core::synth::{default_layout, GuestBuilder, MapSpec};
use mapwalk_core::{Bpf, Kva, Limits, MapFlags, MapInfo, MapType, Pa, Paging, Ram};

use crate::{drain, limits, sink, Enc, Guest, GuestKind, Mutated, Res, RAW_DIRECT_MAP};

/// Offsets of a [`StorageLayout`] (without its owners), in input order.
pub const OFFSETS: usize = 11;

/// Maps of a guest walked, at most.
const CHECKED: usize = 16;

fn comm(s: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[..s.len()].copy_from_slice(s.as_bytes());
    c
}

fn task(pid: i32, name: &str) -> OwnerDesc {
    OwnerDesc::Task(TaskOwner {
        pid,
        tgid: pid,
        comm: comm(name),
    })
}

fn build(kind: GuestKind) -> Guest {
    let mut b = GuestBuilder::new(kind.arch()).ram_size(32 << 20);
    let mut lo6 = [0u8; 16];
    lo6[15] = 1;
    let mut lo4 = [0u8; 16];
    lo4[..4].copy_from_slice(&[127, 0, 0, 1]);
    let sock = |cookie, family, port, addr| {
        OwnerDesc::Sock(SockOwner {
            cookie,
            family,
            local_port: port,
            remote_port: 0,
            local_addr: addr,
            remote_addr: [0; 16],
        })
    };
    b.add_map(
        MapSpec::storage(1, MapType::TASK_STORAGE, "tasks", 8)
            .storage_elem(task(1, "init"), &[1; 8])
            .storage_elem(task(2, "kthreadd"), &[2; 8])
            .storage_elem(task(3, "worker"), &[3; 8]),
    )
    .add_map(
        MapSpec::storage(2, MapType::INODE_STORAGE, "inodes", 4)
            .storage_elem(
                OwnerDesc::Inode(InodeOwner {
                    ino: 12,
                    dev: 8 << 20 | 1,
                }),
                &[4; 4],
            )
            .storage_elem(OwnerDesc::Inode(InodeOwner { ino: 3, dev: 5 }), &[5; 4]),
    )
    .add_map(
        MapSpec::storage(3, MapType::SK_STORAGE, "socks", 2)
            .storage_elem(sock(4097, 2, 47001, lo4), &[6; 2])
            .storage_elem(sock(0, 10, 47003, lo6), &[7; 2])
            .storage_elem(sock(9, 1, 0, [0; 16]), &[8; 2]),
    )
    .add_map(
        MapSpec::storage(4, MapType::CGRP_STORAGE, "cgroups", 16)
            .storage_elem(OwnerDesc::Cgroup(CgroupOwner::new(1, b"")), &[9; 16])
            .storage_elem(OwnerDesc::Cgroup(CgroupOwner::new(77, b"mw_cg")), &[10; 16]),
    );
    // Eight buckets, one chain of five.
    let mut long = MapSpec::storage(5, MapType::TASK_STORAGE, "chain", 4).bucket_log(3);
    for pid in 10..15 {
        long = long.storage_elem_in_bucket(5, task(pid, "c"), &[pid as u8; 4]);
    }
    b.add_map(long);
    let g = b.build();
    let regions = crate::heap_regions(&g, None);
    let mut vas = vec![g.map_idr];
    for m in &g.maps {
        vas.push(m.kva);
    }
    Guest { g, regions, vas }
}

/// The synthetic guest of `kind` with local-storage maps (ids 1 to 5: task, inode,
/// socket, cgroup, and a task map with a chain of five), built on first use.
pub fn storage_guest(kind: GuestKind) -> &'static Guest {
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
    /// The offsets of the storage layout (see [`offsets`]). Raw: the offsets.
    /// Synthetic: XORed into the guest's.
    pub offsets: [u16; OFFSETS],
    /// Bit 0..3: no task, inode, socket, cgroup owner offsets; bit 4: no storage layout.
    pub absent: u8,
    /// The caps, see [`limits`]; plus `storage_elems` and `bucket_reads` below.
    pub limits: [u8; 8],
    /// `Limits::storage_elems` (0: 4096).
    pub storage_elems: u16,
    /// `Limits::bucket_reads` (0: the default).
    pub bucket_reads: u8,
    /// Raw: the map's type (one of the four, by this index), value size and address
    /// (an offset into the RAM's direct map).
    pub map_type: u8,
    /// Raw: `value_size`.
    pub value_size: u16,
    /// Raw: the map's offset in the RAM.
    pub map_at: u32,
    /// Raw: the page number of the RAM's first byte.
    pub base_page: u16,
    /// Raw: CR3 for addresses outside the direct map.
    pub cr3: u64,
}

/// The offsets of `l` (owners left out), in input order.
pub fn offsets(l: &StorageLayout) -> [u32; OFFSETS] {
    [
        l.buckets,
        l.bucket_log,
        l.bucket_first,
        l.bucket_size,
        l.elem_map_node,
        l.elem_next,
        l.elem_pprev,
        l.elem_local_storage,
        l.elem_smap,
        l.elem_data,
        l.storage_owner,
    ]
}

/// The default layout with the storage offsets `o` (input order); `absent` as in
/// [`Header::absent`].
pub fn layout(o: [u32; OFFSETS], absent: u8) -> KernelLayout {
    let d = default_layout();
    let owners = d.storage.expect("the default layout has local storage");
    let storage = StorageLayout {
        buckets: o[0],
        bucket_log: o[1],
        bucket_first: o[2],
        bucket_size: o[3],
        elem_map_node: o[4],
        elem_next: o[5],
        elem_pprev: o[6],
        elem_local_storage: o[7],
        elem_smap: o[8],
        elem_data: o[9],
        storage_owner: o[10],
        task: owners.task.filter(|_| absent & 1 == 0),
        inode: owners.inode.filter(|_| absent & 2 == 0),
        sock: owners.sock.filter(|_| absent & 4 == 0),
        cgroup: owners.cgroup.filter(|_| absent & 8 == 0),
    };
    KernelLayout {
        storage: (absent & 16 == 0).then_some(storage),
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
        h.limits = u.arbitrary()?;
        h.storage_elems = u.arbitrary()?;
        h.bucket_reads = u.arbitrary()?;
        h.map_type = u.arbitrary()?;
        h.value_size = u.arbitrary()?;
        h.map_at = u.arbitrary()?;
        h.base_page = u.arbitrary()?;
        h.cr3 = u.arbitrary()?;
        let base = limits(&mut Unstructured::new(&h.limits))?;
        let l = Limits {
            storage_elems: match h.storage_elems {
                0 => 4096,
                n => u32::from(n),
            },
            bucket_reads: match h.bucket_reads {
                0 => base.bucket_reads,
                n => u32::from(n % 32),
            },
            ..base
        };
        Ok((h, l))
    }

    /// Encodes the header.
    pub fn encode(&self, e: &mut Enc) {
        e.u8(self.mode).u8(self.guest);
        for &o in &self.offsets {
            e.u16(o);
        }
        e.u8(self.absent)
            .bytes(&self.limits)
            .u16(self.storage_elems)
            .u8(self.bucket_reads)
            .u8(self.map_type)
            .u16(self.value_size)
            .u32(self.map_at)
            .u16(self.base_page)
            .u64(self.cr3);
    }
}

/// Both walks of one local-storage map.
fn check_map<K: KernelRead + ?Sized>(bpf: &Bpf<'_, K>, map: &MapInfo) {
    let cap = u64::from(bpf.mem().limits().storage_elems);
    let mut value = vec![0u8; (map.value_size as usize).min(1 << 16)];
    let mut steps = 0u64;
    match bpf.for_each_storage_elem(map, &mut value, |owner, v| {
        steps += 1;
        sink(&format_args!("{owner:?}"));
        std::hint::black_box(v);
        ControlFlow::Continue(())
    }) {
        Ok(stats) => {
            assert_eq!(stats.elems, steps);
            assert!(stats.elems + stats.skipped <= cap, "{stats:?} past {cap}");
        }
        Err(e) => sink(&e),
    }
    let Ok(lens) = bpf.entry_buffer_lens(map, 0) else {
        return;
    };
    let kind = OwnerKind::of(map.map_type).expect("a local-storage map");
    assert_eq!(lens.key, kind.record_len());
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value.min(1 << 16)]);
    let mut again = vec![0u8; lens.key];
    let walked = bpf.for_each_entry(
        map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let owner = StorageOwner::from_record(kind, k).expect("an owner record");
            owner.write_record(&mut again).expect("its length");
            assert_eq!(again, k, "the record does not read back");
            assert!(matches!(v, EntryValue::Single(_)));
            ControlFlow::Continue(())
        },
    );
    if let Err(e) = walked {
        sink(&e);
    }
}

/// Every local-storage map among the first maps of `map_idr`.
fn check_guest<K: KernelRead + ?Sized>(mem: &K, layout: &KernelLayout, map_idr: Kva) {
    let bpf = Bpf::new(mem, layout, map_idr);
    let Ok(mut maps) = bpf.maps() else {
        return;
    };
    let (found, _) = drain(&mut maps, CHECKED, false);
    for map in found
        .iter()
        .filter(|m| STORAGE_MAP_TYPES.contains(&m.map_type))
    {
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
        let g = storage_guest(GuestKind::pick(&GuestKind::ALL, h.guest));
        let mut o = offsets(&g.g.layout.storage.expect("the default layout has storage"));
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
        let view = KernelView::new(
            Ram::new(Pa(base), bytes),
            Paging::X86_64(X86Paging::new(h.cr3, false)),
            KernelAddrs::x86_64(RAW_DIRECT_MAP, base + len, 0),
        )
        .with_limits(limits);
        let map = MapInfo {
            id: 1,
            kva: Kva(RAW_DIRECT_MAP + base + u64::from(h.map_at) % len.max(1)),
            map_type: STORAGE_MAP_TYPES[usize::from(h.map_type) % STORAGE_MAP_TYPES.len()],
            map_flags: MapFlags::empty(),
            key_size: 4,
            value_size: u32::from(h.value_size),
            max_entries: 0,
            name: MapName::from_field(b"fuzz\0\0\0\0\0\0\0\0\0\0\0\0"),
            ..MapInfo::default()
        };
        check_map(&Bpf::new(&view, &layout, Kva(0)), &map);
    }
}
