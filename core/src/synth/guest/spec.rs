//! What to lay into a synthetic guest: maps and their entries.

use alloc::vec::Vec;

use crate::bpf::storage::OwnerDesc;
use crate::bpf::{MapType, PptrPlacement, BPF_F_MMAPABLE};
use crate::limits::BPF_OBJ_NAME_LEN;

/// Where a map object is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// kmalloc: physically contiguous, in the direct map.
    DirectMap,
    /// vmalloc: virtually contiguous pages scattered over physical memory, reached
    /// only through the page tables.
    Vmalloc,
}

/// One element of a hash map to lay into a synthetic guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec {
    /// The key (`key_size` bytes).
    pub key: Vec<u8>,
    /// The value of a HASH or LRU_HASH element (at most `value_size` bytes; the rest is
    /// zero).
    pub value: Vec<u8>,
    /// The per-CPU values of a PERCPU_HASH or LRU_PERCPU_HASH element, by CPU (missing
    /// CPUs and bytes stay zero).
    pub cpu_values: Vec<Vec<u8>>,
    /// Its bucket; by default a hash of the key picks one.
    pub bucket: Option<u32>,
}

/// A kernel object that a slot of an object map points at (see [`MapSpec::object`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotObject {
    /// DEVMAP, DEVMAP_HASH: a `struct bpf_dtab_netdev` whose `val` holds these bytes
    /// (its `idx` is the key).
    NetDev(Vec<u8>),
    /// CPUMAP: a `struct bpf_cpu_map_entry` whose `value` holds these bytes (its `cpu`
    /// is the key).
    CpuEntry(Vec<u8>),
    /// SOCKMAP, SOCKHASH, REUSEPORT_SOCKARRAY: a `struct sock` with this cookie.
    Sock(u64),
    /// CGROUP_ARRAY: a `struct cgroup` whose `kernfs_node` has this id.
    Cgroup(u64),
    /// PERF_EVENT_ARRAY: a `struct bpf_event_entry` whose event has this type, config
    /// and CPU.
    PerfEvent {
        /// `perf_event_attr.type`.
        event_type: u32,
        /// `perf_event_attr.config`.
        config: u64,
        /// `perf_event.cpu`.
        cpu: i32,
    },
    /// XSKMAP: a `struct xdp_sock` bound to this device and queue.
    Xsk {
        /// The device's `ifindex`.
        ifindex: u32,
        /// `xdp_sock.queue_id` (a u16 in the kernel).
        queue_id: u32,
    },
}

/// A BPF map to lay into a synthetic guest.
///
/// Only the `struct bpf_map` header is laid out for types without a builder of their
/// own. ARRAY, PERCPU_ARRAY, HASH, LRU_HASH, PERCPU_HASH and LRU_PERCPU_HASH maps get
/// their values too (when the layout has their group): arrays their values by key, hash
/// maps a bucket array of `roundup_pow_of_two(max_entries)` buckets and one element per
/// [`EntrySpec`], chained in the order given (several in one bucket collide).
#[derive(Debug, Clone)]
pub struct MapSpec {
    /// Its id (the `map_idr` index and `bpf_map.id`).
    pub id: u32,
    /// `map_type`.
    pub map_type: MapType,
    /// `name` (at most 15 bytes, NUL-padded).
    pub name: Vec<u8>,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub map_flags: u32,
    /// Values of an ARRAY, by key (missing keys stay zero).
    pub values: Vec<Vec<u8>>,
    /// Where the object goes.
    pub placement: Placement,
    /// `btf_key_type_id` and `btf_value_type_id`.
    pub btf_ids: (u32, u32),
    /// Elements of a hash map, in chain order within each bucket.
    pub entries: Vec<EntrySpec>,
    /// Values of a PERCPU_ARRAY, by key and then by CPU (missing ones stay zero).
    pub cpu_values: Vec<Vec<Vec<u8>>>,
    /// Where the per-CPU copies of a per-CPU map go: the first per-CPU chunk (direct
    /// map) or a vmalloc'd chunk.
    pub percpu_placement: Placement,
    /// Where a per-CPU hash map's elements keep their `__percpu` pointer (default: the
    /// 6.1 way, [`PptrPlacement::KeySize`]).
    pub pptr_placement: PptrPlacement,
    /// The populated slots of a PROG_ARRAY, ARRAY_OF_MAPS or HASH_OF_MAPS: the key (a
    /// 4-byte index for the arrays) and the id of the program or map the slot points
    /// at (a bare object is laid for an id the guest does not have).
    pub fd_slots: Vec<(Vec<u8>, u32)>,
    /// The prefixes of an LPM_TRIE, inserted in this order as the kernel inserts them
    /// (intermediate nodes included): prefix length, data (`key_size - 4` bytes),
    /// value.
    pub lpm_entries: Vec<(u32, Vec<u8>, Vec<u8>)>,
    /// A QUEUE or STACK's `head`, `tail` and the bytes of every one of its
    /// `max_entries + 1` slots.
    pub ring: Option<(u32, u32, Vec<Vec<u8>>)>,
    /// A BLOOM_FILTER's `nr_hash_funcs`, `hash_seed` and the bits set in its array (the
    /// array's size is the kernel's, from `max_entries` and the hash count).
    pub bloom: Option<(u32, u32, Vec<u32>)>,
    /// The populated slots of an object map (DEVMAP, DEVMAP_HASH, CPUMAP, SOCKMAP,
    /// SOCKHASH, REUSEPORT_SOCKARRAY, CGROUP_ARRAY, PERF_EVENT_ARRAY, XSKMAP): the key
    /// and the object; the hash kinds chain them in the bucket the kernel would pick,
    /// in this order.
    pub objects: Vec<(Vec<u8>, SlotObject)>,
    /// The elements of a local-storage map, in chain order within each bucket.
    pub storage: Vec<StorageElemSpec>,
    /// The stored stacks of a STACK_TRACE map: bucket id, `nr`, and the bytes of the
    /// bucket's `data` (the map's `n_buckets` is `roundup_pow_of_two(max_entries)`).
    pub stacks: Vec<(u32, u32, Vec<u8>)>,
    /// A local-storage map's `bucket_log` (default 1: two buckets, as the kernel gives
    /// a guest with one or two CPUs).
    pub bucket_log: u32,
    /// A RINGBUF or USER_RINGBUF's positions and bytes (without it, `rb` stays null).
    pub ringbuf: Option<RingSpec>,
    /// A STRUCT_OPS map's registered struct (without it, `kvalue` stays zero: state
    /// INIT).
    pub struct_ops: Option<StructOpsSpec>,
}

/// A STRUCT_OPS map as the builder lays it out ([`MapSpec::struct_ops`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StructOpsSpec {
    /// `kvalue`'s state (`STRUCT_OPS_STATE_*`).
    pub state: u32,
    /// `kvalue`'s refcnt (what 6.1 reports).
    pub kvalue_refcnt: u32,
    /// `bpf_map.refcnt` and `bpf_map.usercnt`, written when the layout has them (what
    /// 6.4+ reports is their difference).
    pub map_refcnts: (u64, u64),
    /// The bytes of `*uvalue` (`value_size` of them; `uvalue` stays NULL when empty).
    pub uvalue: Vec<u8>,
    /// The ids of the programs `links[]` leads to, slot by slot (0: a NULL slot; a bare
    /// program named `sops_<id>` is laid for an id the guest lacks).
    pub link_progs: Vec<u32>,
    /// `funcs_cnt`, when the layout has it (default: the length of `link_progs`).
    pub funcs_cnt: Option<u32>,
}

/// What a RINGBUF or USER_RINGBUF holds: its positions, and bytes written into its data
/// area (each at `data + (pos & mask)`, running on into the second mapping when it
/// wraps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingSpec {
    /// `consumer_pos`.
    pub consumer_pos: u64,
    /// `producer_pos`.
    pub producer_pos: u64,
    /// `pending_pos` where the layout has it (default `producer_pos`).
    pub pending_pos: Option<u64>,
    /// `mask` (default `max_entries - 1`).
    pub mask: Option<u64>,
    /// Bytes written at positions of the ring.
    pub writes: Vec<(u64, Vec<u8>)>,
}

/// One element of a local-storage map to lay into a synthetic guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageElemSpec {
    /// What the owner object holds (the kind must be the map's).
    pub owner: OwnerDesc,
    /// The value (at most `value_size` bytes; the rest is zero).
    pub value: Vec<u8>,
    /// Its bucket; by default element `i` goes to bucket `i % (1 << bucket_log)`.
    pub bucket: Option<u32>,
}

impl MapSpec {
    /// An ARRAY map with 4-byte keys, zero values, in the direct map.
    pub fn array(id: u32, name: &str, value_size: u32, max_entries: u32) -> Self {
        Self::new(id, MapType::ARRAY, name, 4, value_size, max_entries)
    }

    /// A map of any type (only its `struct bpf_map` header is laid out for types without
    /// a builder of their own).
    pub fn new(
        id: u32,
        map_type: MapType,
        name: &str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Self {
        assert!(
            name.len() < BPF_OBJ_NAME_LEN,
            "map name {name:?} is too long"
        );
        Self {
            id,
            map_type,
            name: name.as_bytes().to_vec(),
            key_size,
            value_size,
            max_entries,
            map_flags: 0,
            values: Vec::new(),
            placement: Placement::DirectMap,
            btf_ids: (0, 0),
            entries: Vec::new(),
            cpu_values: Vec::new(),
            percpu_placement: Placement::DirectMap,
            pptr_placement: PptrPlacement::KeySize,
            fd_slots: Vec::new(),
            lpm_entries: Vec::new(),
            ring: None,
            storage: Vec::new(),
            bucket_log: 1,
            bloom: None,
            objects: Vec::new(),
            ringbuf: None,
            stacks: Vec::new(),
            struct_ops: None,
        }
    }

    /// Makes a STRUCT_OPS map registered as `ops` says.
    #[must_use]
    pub fn struct_ops(mut self, ops: StructOpsSpec) -> Self {
        self.struct_ops = Some(ops);
        self
    }

    /// Sets a RINGBUF or USER_RINGBUF's consumer and producer positions to `pos`: an
    /// empty ring that [`ring_record`](Self::ring_record) fills from there.
    #[must_use]
    pub fn ring_at(mut self, pos: u64) -> Self {
        let r = self.ringbuf.get_or_insert_with(RingSpec::default);
        r.consumer_pos = pos;
        r.producer_pos = pos;
        self
    }

    /// Appends a record at the producer position: the header (`len_bits` or'ed into the
    /// length: busy and discard bits; `pg_off` 0), then `data`; moves the producer
    /// position on by the record's 8-byte-aligned span.
    #[must_use]
    pub fn ring_record(mut self, len_bits: u32, data: &[u8]) -> Self {
        let r = self.ringbuf.get_or_insert_with(RingSpec::default);
        let pos = r.producer_pos;
        let mut bytes = (data.len() as u32 | len_bits).to_le_bytes().to_vec();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(data);
        r.producer_pos = pos + (data.len() as u64 + 8).next_multiple_of(8);
        r.writes.push((pos, bytes));
        self
    }

    /// Changes the ring's spec in place (positions past the ring, hostile bytes).
    #[must_use]
    pub fn ring_with(mut self, f: impl FnOnce(&mut RingSpec)) -> Self {
        f(self.ringbuf.get_or_insert_with(RingSpec::default));
        self
    }

    /// Sets a BLOOM_FILTER's hash count, seed, and the bits set in its array.
    #[must_use]
    pub fn bloom(mut self, nr_hash_funcs: u32, hash_seed: u32, bits: &[u32]) -> Self {
        self.bloom = Some((nr_hash_funcs, hash_seed, bits.to_vec()));
        self
    }

    /// Adds a populated slot to an object map: `key` (4 bytes for every kind but
    /// SOCKHASH) points at `object`.
    #[must_use]
    pub fn object(mut self, key: &[u8], object: SlotObject) -> Self {
        assert_eq!(key.len(), self.key_size as usize, "key {key:?} length");
        self.objects.push((key.to_vec(), object));
        self
    }

    /// A local-storage map (TASK_STORAGE, INODE_STORAGE, SK_STORAGE or CGRP_STORAGE)
    /// as the kernel makes one: 4-byte keys (a file descriptor), `max_entries` 0,
    /// `BPF_F_NO_PREALLOC`.
    pub fn storage(id: u32, map_type: MapType, name: &str, value_size: u32) -> Self {
        let mut s = Self::new(id, map_type, name, 4, value_size, 0);
        s.map_flags = 1; // BPF_F_NO_PREALLOC
        s
    }

    /// Adds an element of a local-storage map, owned by an object holding `owner`.
    #[must_use]
    pub fn storage_elem(self, owner: OwnerDesc, value: &[u8]) -> Self {
        self.push_storage(None, owner, value)
    }

    /// Adds an element of a local-storage map in bucket `bucket`, after the ones
    /// already there.
    #[must_use]
    pub fn storage_elem_in_bucket(self, bucket: u32, owner: OwnerDesc, value: &[u8]) -> Self {
        self.push_storage(Some(bucket), owner, value)
    }

    /// Sets a local-storage map's `bucket_log`.
    #[must_use]
    pub fn bucket_log(mut self, log: u32) -> Self {
        self.bucket_log = log;
        self
    }

    fn push_storage(mut self, bucket: Option<u32>, owner: OwnerDesc, value: &[u8]) -> Self {
        assert!(value.len() <= self.value_size as usize, "value is too long");
        self.storage.push(StorageElemSpec {
            owner,
            value: value.to_vec(),
            bucket,
        });
        self
    }

    /// Stores a stack of u64 frames in bucket `id` of a STACK_TRACE map.
    #[must_use]
    pub fn stack(mut self, id: u32, frames: &[u64]) -> Self {
        let data = frames.iter().flat_map(|f| f.to_le_bytes()).collect();
        self.stacks.push((id, frames.len() as u32, data));
        self
    }

    /// Stores bucket `id` of a STACK_TRACE map with any `nr` and `data` bytes (for
    /// build-id records, or corrupt counts).
    #[must_use]
    pub fn stack_raw(mut self, id: u32, nr: u32, data: &[u8]) -> Self {
        self.stacks.push((id, nr, data.to_vec()));
        self
    }

    /// Sets a QUEUE or STACK's `head` and `tail`, and each slot's bytes from `slot`.
    #[must_use]
    pub fn ring(mut self, head: u32, tail: u32, slot: impl Fn(u32) -> Vec<u8>) -> Self {
        let slots = (0..=self.max_entries).map(slot).collect();
        self.ring = Some((head, tail, slots));
        self
    }

    /// Adds a prefix to an LPM_TRIE: `prefixlen` bits of `data` (`key_size - 4`
    /// bytes), with `value`.
    #[must_use]
    pub fn lpm_entry(mut self, prefixlen: u32, data: &[u8], value: &[u8]) -> Self {
        assert_eq!(data.len() + 4, self.key_size as usize, "LPM data length");
        assert!(value.len() <= self.value_size as usize, "value is too long");
        self.lpm_entries
            .push((prefixlen, data.to_vec(), value.to_vec()));
        self
    }

    /// Adds a populated slot to a PROG_ARRAY, ARRAY_OF_MAPS (`key`: the index, 4 bytes)
    /// or HASH_OF_MAPS: it points at the program or map with id `id`.
    #[must_use]
    pub fn fd_slot(mut self, key: &[u8], id: u32) -> Self {
        if self.map_type == MapType::HASH_OF_MAPS {
            self = self.push_entry(None, key, &[], Vec::new());
        }
        self.fd_slots.push((key.to_vec(), id));
        self
    }

    /// A HASH map, empty, in the direct map.
    pub fn hash(id: u32, name: &str, key_size: u32, value_size: u32, max_entries: u32) -> Self {
        Self::new(id, MapType::HASH, name, key_size, value_size, max_entries)
    }

    /// Adds an element of a HASH or LRU_HASH map, in the bucket its key hashes to.
    #[must_use]
    pub fn entry(self, key: &[u8], value: &[u8]) -> Self {
        self.push_entry(None, key, value, Vec::new())
    }

    /// Adds an element of a HASH or LRU_HASH map in bucket `bucket`, after the ones
    /// already there.
    #[must_use]
    pub fn entry_in_bucket(self, bucket: u32, key: &[u8], value: &[u8]) -> Self {
        self.push_entry(Some(bucket), key, value, Vec::new())
    }

    /// Adds an element of a PERCPU_HASH or LRU_PERCPU_HASH map with one value per CPU.
    #[must_use]
    pub fn percpu_entry(self, key: &[u8], cpu_values: Vec<Vec<u8>>) -> Self {
        self.push_entry(None, key, &[], cpu_values)
    }

    /// Adds an element of a per-CPU hash map in bucket `bucket`.
    #[must_use]
    pub fn percpu_entry_in_bucket(self, bucket: u32, key: &[u8], cpu_values: Vec<Vec<u8>>) -> Self {
        self.push_entry(Some(bucket), key, &[], cpu_values)
    }

    fn push_entry(
        mut self,
        bucket: Option<u32>,
        key: &[u8],
        value: &[u8],
        cpu_values: Vec<Vec<u8>>,
    ) -> Self {
        assert_eq!(
            key.len(),
            self.key_size as usize,
            "key {key:?} is not key_size long"
        );
        assert!(value.len() <= self.value_size as usize, "value is too long");
        self.entries.push(EntrySpec {
            key: key.to_vec(),
            value: value.to_vec(),
            cpu_values,
            bucket,
        });
        self
    }

    /// Sets every per-CPU value of a PERCPU_ARRAY from `f(key, cpu)`, for CPUs
    /// `0 .. cpus`.
    #[must_use]
    pub fn with_cpu_values(mut self, cpus: u32, f: impl Fn(u32, u32) -> Vec<u8>) -> Self {
        self.cpu_values = (0..self.max_entries)
            .map(|key| (0..cpus).map(|cpu| f(key, cpu)).collect())
            .collect();
        self
    }

    /// Puts the per-CPU copies in a vmalloc'd per-CPU chunk (scattered pages).
    #[must_use]
    pub fn percpu_vmalloc(mut self) -> Self {
        self.percpu_placement = Placement::Vmalloc;
        self
    }

    /// Where a per-CPU hash map's elements keep their `__percpu` pointer.
    #[must_use]
    pub fn pptr_placement(mut self, placement: PptrPlacement) -> Self {
        self.pptr_placement = placement;
        self
    }

    /// Sets every value from `f(key)` (each value must be `value_size` bytes or shorter).
    #[must_use]
    pub fn with_values(mut self, f: impl Fn(u32) -> Vec<u8>) -> Self {
        self.values = (0..self.max_entries).map(f).collect();
        self
    }

    /// Allocates the object with vmalloc (scattered physical pages).
    #[must_use]
    pub fn vmalloc(mut self) -> Self {
        self.placement = Placement::Vmalloc;
        self
    }

    /// A `BPF_F_MMAPABLE` array: vmalloc'd, with its values starting on a page boundary.
    #[must_use]
    pub fn mmapable(mut self) -> Self {
        self.map_flags |= BPF_F_MMAPABLE;
        self.placement = Placement::Vmalloc;
        self
    }
}
