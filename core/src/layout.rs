//! The kernel's data layout, as plain data.
//!
//! Every struct offset a walker uses comes from here. The values are filled by whoever
//! knows the kernel: the harness resolves them from BTF, tests write them as literals.
//! Nothing here parses or reads anything.
//!
//! Groups that only some walkers need are `Option`s in [`KernelLayout`]: a kernel
//! without them (or a description that could not resolve them) disables those walkers,
//! which then return [`crate::Error::LayoutMissing`].

/// Offsets in `struct xarray` and `struct xa_node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XarrayLayout {
    /// `xarray.xa_head`.
    pub xa_head: u32,
    /// `xa_node.shift` (a `u8`).
    pub node_shift: u32,
    /// `xa_node.slots` (64 pointers).
    pub node_slots: u32,
}

/// Offsets in `struct idr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdrLayout {
    /// `idr.idr_rt`, the embedded `struct xarray`.
    pub idr_rt: u32,
    /// `idr.idr_next` (an `unsigned int`).
    pub idr_next: u32,
}

/// Offsets in `struct bpf_map`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BpfMapLayout {
    /// `map_type` (`enum bpf_map_type`, 4 bytes).
    pub map_type: u32,
    /// `key_size` (u32).
    pub key_size: u32,
    /// `value_size` (u32).
    pub value_size: u32,
    /// `max_entries` (u32).
    pub max_entries: u32,
    /// `map_flags` (u32).
    pub map_flags: u32,
    /// `id` (u32).
    pub id: u32,
    /// `name` (`char[16]`).
    pub name: u32,
    /// `btf` (`struct btf *`).
    pub btf: u32,
    /// `btf_key_type_id` (u32).
    pub btf_key_type_id: u32,
    /// `btf_value_type_id` (u32).
    pub btf_value_type_id: u32,
    /// `btf_vmlinux_value_type_id` (u32); absent on kernels without it.
    pub btf_vmlinux_value_type_id: Option<u32>,
    /// `frozen` (`bool`: `BPF_MAP_FREEZE` was called); absent when the BTF lacks it.
    pub frozen: Option<u32>,
}

/// Offsets in `struct bpf_array`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArrayLayout {
    /// `bpf_array.elem_size` (u32).
    pub elem_size: u32,
    /// `bpf_array.value` (the flexible array; `pptrs` shares the offset).
    pub value: u32,
}

/// Offsets in `struct bpf_htab`, `struct bucket` and `struct htab_elem`: the HASH,
/// LRU_HASH, PERCPU_HASH and LRU_PERCPU_HASH walkers.
///
/// Two kernel structs are named `bucket`; the one of `kernel/bpf/hashtab.c` is the one
/// with a `head` member (an `hlist_nulls_head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HtabLayout {
    /// `bpf_htab.buckets` (`struct bucket *`).
    pub buckets: u32,
    /// `bpf_htab.n_buckets` (u32).
    pub n_buckets: u32,
    /// `bpf_htab.elem_size` (u32).
    pub elem_size: u32,
    /// `bucket.head`: an `hlist_nulls_head`, whose `first` pointer is its first 8 bytes.
    pub bucket_head: u32,
    /// `sizeof(struct bucket)`: the stride of the bucket array.
    pub bucket_size: u32,
    /// `htab_elem.hash_node`: the `hlist_nulls_node` (with `next` first) that chain
    /// pointers point at.
    pub elem_hash_node: u32,
    /// `htab_elem.key` (the flexible array at the end: `sizeof(struct htab_elem)`).
    pub elem_key: u32,
    /// `hlist_nulls_node.pprev`: the back link of a chained element, the address of the
    /// pointer that points at it (the bucket's head or the previous element's `next`)
    /// while the element is linked.
    pub node_pprev: u32,
}

/// Offsets in `struct btf`, the kernel's BTF object: where a map's BTF is read through
/// (see [`crate::Bpf::map_btf`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BtfObjectLayout {
    /// `btf.data` (`void *`): the raw BTF, header first.
    pub data: u32,
    /// `btf.data_size` (u32): its length.
    pub data_size: u32,
    /// `btf.base_btf` (`struct btf *`): the base of a split BTF, NULL when standalone.
    pub base_btf: u32,
    /// `btf.id` (u32): the id `BPF_OBJ_GET_INFO_BY_FD` reports as a map's `btf_id`.
    pub id: u32,
}

/// Offsets in `struct bpf_prog`, `struct bpf_prog_aux` and `struct user_struct`: the
/// program walker ([`crate::bpf::Progs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgLayout {
    /// `bpf_prog.type` (`enum bpf_prog_type`, 4 bytes).
    pub prog_type: u32,
    /// `bpf_prog.len` (u32): instructions after verification (`xlated` = `len * 8`).
    pub len: u32,
    /// `bpf_prog.jited_len` (u32).
    pub jited_len: u32,
    /// `bpf_prog.tag` (`u8[8]`).
    pub tag: u32,
    /// `bpf_prog.aux` (`struct bpf_prog_aux *`).
    pub aux: u32,
    /// The bit offset of the `bpf_prog.gpl_compatible` bitfield; absent when the BTF
    /// lacks it.
    pub gpl_compatible_bit: Option<u32>,
    /// `bpf_prog_aux.id` (u32).
    pub aux_id: u32,
    /// `bpf_prog_aux.name` (`char[16]`).
    pub aux_name: u32,
    /// `bpf_prog_aux.prog` (`struct bpf_prog *`): the back link to the program.
    pub aux_prog: u32,
    /// `bpf_prog_aux.used_map_cnt` (u32).
    pub aux_used_map_cnt: u32,
    /// `bpf_prog_aux.used_maps` (`struct bpf_map **`).
    pub aux_used_maps: u32,
    /// `bpf_prog_aux.func_cnt` (u32): subprograms, each jitted apart.
    pub aux_func_cnt: u32,
    /// `bpf_prog_aux.func` (`struct bpf_prog **`).
    pub aux_func: u32,
    /// `bpf_prog_aux.btf` (`struct btf *`).
    pub aux_btf: u32,
    /// `bpf_prog_aux.user` (`struct user_struct *`); absent on kernels without it.
    pub aux_user: Option<u32>,
    /// `user_struct.uid` (`kuid_t`, 4 bytes); absent with `aux_user`.
    pub user_uid: Option<u32>,
}

/// Offsets in `struct lpm_trie` and `struct lpm_trie_node`: the LPM_TRIE walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LpmLayout {
    /// `lpm_trie.root` (`struct lpm_trie_node *`).
    pub root: u32,
    /// `lpm_trie.max_prefixlen` (`size_t`).
    pub max_prefixlen: u32,
    /// `lpm_trie.data_size` (`size_t`): key bytes after the prefix length.
    pub data_size: u32,
    /// `lpm_trie_node.child` (two pointers).
    pub node_child: u32,
    /// `lpm_trie_node.prefixlen` (u32).
    pub node_prefixlen: u32,
    /// `lpm_trie_node.flags` (u32).
    pub node_flags: u32,
    /// `lpm_trie_node.data` (the key's data, then the value).
    pub node_data: u32,
}

/// Offsets in `struct bpf_queue_stack`: the QUEUE and STACK walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStackLayout {
    /// `bpf_queue_stack.head` (u32).
    pub head: u32,
    /// `bpf_queue_stack.tail` (u32).
    pub tail: u32,
    /// `bpf_queue_stack.size` (u32): `max_entries + 1` slots.
    pub size: u32,
    /// `bpf_queue_stack.elements` (the slots).
    pub elements: u32,
}

/// Offsets in `struct bpf_stack_map` and `struct stack_map_bucket`: the STACK_TRACE
/// walker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackMapLayout {
    /// `bpf_stack_map.n_buckets` (u32): `roundup_pow_of_two(max_entries)`.
    pub n_buckets: u32,
    /// `bpf_stack_map.buckets` (the inline array of `struct stack_map_bucket *`).
    pub buckets: u32,
    /// `stack_map_bucket.nr` (u32): the frames held.
    pub bucket_nr: u32,
    /// `stack_map_bucket.data` (the frames: u64 addresses, or build-id records).
    pub bucket_data: u32,
}

/// Offsets in `struct bpf_struct_ops_map`, `struct bpf_struct_ops_value` and
/// `struct bpf_link`: STRUCT_OPS maps ([`crate::Bpf::struct_ops_value`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StructOpsLayout {
    /// `bpf_struct_ops_map.uvalue` (`struct bpf_struct_ops_value *`): the user-space
    /// view, program ids in the function-pointer slots.
    pub uvalue: u32,
    /// `bpf_struct_ops_map.kvalue` (the embedded `struct bpf_struct_ops_value`): the
    /// kernel's struct, trampolines in the function-pointer slots.
    pub kvalue: u32,
    /// `bpf_struct_ops_map.links` (`struct bpf_link **`): one link per attached
    /// program, in member order.
    pub links: u32,
    /// `bpf_struct_ops_map.funcs_cnt` (u32): the length of `links`; absent on kernels
    /// that size it by the struct's member count (6.1).
    pub funcs_cnt: Option<u32>,
    /// `bpf_struct_ops_value.refcnt` (6.1) or `.common.refcnt` (6.9+), u32.
    pub value_refcnt: u32,
    /// `bpf_struct_ops_value.state` (6.1) or `.common.state` (6.9+), u32.
    pub value_state: u32,
    /// `bpf_link.prog` (`struct bpf_prog *`).
    pub link_prog: u32,
    /// `bpf_map.refcnt` and `bpf_map.usercnt`: from Linux 6.4 (and in stable kernels
    /// that took the change, such as Debian's 6.1.192) a lookup's `refcnt` is their
    /// difference, at least 0.
    pub map_refcnts: Option<MapRefcnts>,
    /// Whether `kvalue.refcnt` is retired for certain (the BTF has
    /// `struct bpf_struct_ops_link`, Linux 6.4+). Otherwise the map decides: a
    /// registered map whose `kvalue.refcnt` is 0 has it retired.
    pub refcnt_retired: bool,
}

/// Offsets of `bpf_map.refcnt` and `bpf_map.usercnt` (both `atomic64_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MapRefcnts {
    /// `bpf_map.refcnt`.
    pub refcnt: u32,
    /// `bpf_map.usercnt`.
    pub usercnt: u32,
}

/// Offsets in `struct bpf_local_storage_map`, its buckets and elements, and
/// `struct bpf_local_storage`: the TASK_STORAGE, INODE_STORAGE, SK_STORAGE and
/// CGRP_STORAGE walker ([`crate::Bpf::for_each_storage_elem`]), with the offsets that
/// describe each kind of owner (absent kinds are described by their address alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageLayout {
    /// `bpf_local_storage_map.buckets` (`struct bpf_local_storage_map_bucket *`).
    pub buckets: u32,
    /// `bpf_local_storage_map.bucket_log` (u32): the map has `1 << bucket_log` buckets.
    pub bucket_log: u32,
    /// `bpf_local_storage_map_bucket.list.first`: the head of a bucket's `hlist`.
    pub bucket_first: u32,
    /// `sizeof(struct bpf_local_storage_map_bucket)`: the stride of the bucket array.
    pub bucket_size: u32,
    /// `bpf_local_storage_elem.map_node`: the `hlist_node` chain pointers point at.
    pub elem_map_node: u32,
    /// `bpf_local_storage_elem.map_node.next`.
    pub elem_next: u32,
    /// `bpf_local_storage_elem.map_node.pprev`: the address of the pointer that points
    /// at the element while it is linked, NULL once it was unlinked.
    pub elem_pprev: u32,
    /// `bpf_local_storage_elem.local_storage` (`struct bpf_local_storage *`).
    pub elem_local_storage: u32,
    /// `bpf_local_storage_elem.sdata.smap`: the map the element belongs to.
    pub elem_smap: u32,
    /// `bpf_local_storage_elem.sdata.data`: the value.
    pub elem_data: u32,
    /// `bpf_local_storage.owner` (`void *`): the task, inode, socket or cgroup.
    pub storage_owner: u32,
    /// `struct task_struct`: TASK_STORAGE owners.
    pub task: Option<TaskOwnerLayout>,
    /// `struct inode` and `struct super_block`: INODE_STORAGE owners.
    pub inode: Option<InodeOwnerLayout>,
    /// `struct sock`: SK_STORAGE owners.
    pub sock: Option<SockOwnerLayout>,
    /// `struct cgroup` and `struct kernfs_node`: CGRP_STORAGE owners.
    pub cgroup: Option<CgroupOwnerLayout>,
}

/// Offsets in `struct task_struct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskOwnerLayout {
    /// `task_struct.pid` (`pid_t`).
    pub pid: u32,
    /// `task_struct.tgid` (`pid_t`).
    pub tgid: u32,
    /// `task_struct.comm` (`char[16]`).
    pub comm: u32,
}

/// Offsets in `struct inode` and `struct super_block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InodeOwnerLayout {
    /// `inode.i_ino` (`unsigned long`, 8 bytes on the 64-bit kernels read).
    pub ino: u32,
    /// `inode.i_sb` (`struct super_block *`).
    pub sb: u32,
    /// `super_block.s_dev` (`dev_t`, the kernel's encoding: major << 20 | minor).
    pub s_dev: u32,
}

/// Offsets in `struct sock` (its `struct sock_common __sk_common`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockOwnerLayout {
    /// `sock.__sk_common.skc_cookie` (`atomic64_t`; 0 until something asked for it).
    pub cookie: u32,
    /// `sock.__sk_common.skc_family` (u16).
    pub family: u32,
    /// `sock.__sk_common.skc_num` (u16, host order): the local port.
    pub num: u32,
    /// `sock.__sk_common.skc_dport` (`__be16`): the remote port.
    pub dport: u32,
    /// `sock.__sk_common.skc_rcv_saddr` (`__be32`): the local IPv4 address.
    pub rcv_saddr: u32,
    /// `sock.__sk_common.skc_daddr` (`__be32`): the remote IPv4 address.
    pub daddr: u32,
    /// `sock.__sk_common.skc_v6_rcv_saddr` (16 bytes); absent without IPv6.
    pub v6_rcv_saddr: Option<u32>,
    /// `sock.__sk_common.skc_v6_daddr` (16 bytes); absent without IPv6.
    pub v6_daddr: Option<u32>,
}

/// Offsets in `struct cgroup` and `struct kernfs_node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupOwnerLayout {
    /// `cgroup.kn` (`struct kernfs_node *`).
    pub kn: u32,
    /// `kernfs_node.id` (u64): the cgroup id (`cgroup_id()`, the directory's inode
    /// number on 64-bit kernels).
    pub kn_id: u32,
    /// `kernfs_node.name` (`const char *`).
    pub kn_name: u32,
}

/// Offsets in `struct bpf_arena` and `struct vm_struct`: the ARENA page walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArenaLayout {
    /// `bpf_arena.user_vm_start` (u64): the user address of the arena's page 0.
    pub user_vm_start: u32,
    /// `bpf_arena.user_vm_end` (u64).
    pub user_vm_end: u32,
    /// `bpf_arena.kern_vm` (`struct vm_struct *`).
    pub kern_vm: u32,
    /// `vm_struct.addr` (`void *`): the start of the arena's kernel range, guard
    /// included.
    pub vm_addr: u32,
}

/// Offsets in `struct bpf_bloom_filter`: the BLOOM_FILTER reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BloomLayout {
    /// `bpf_bloom_filter.bitset_mask` (u32): the bit array's size in bits, minus one.
    pub bitset_mask: u32,
    /// `bpf_bloom_filter.hash_seed` (u32).
    pub hash_seed: u32,
    /// `bpf_bloom_filter.nr_hash_funcs` (u32).
    pub nr_hash_funcs: u32,
    /// `bpf_bloom_filter.bitset` (the bit array, `unsigned long`s).
    pub bitset: u32,
}

/// Offsets in `struct bpf_ringbuf_map` and `struct bpf_ringbuf`: RINGBUF and
/// USER_RINGBUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingbufLayout {
    /// `bpf_ringbuf_map.rb` (`struct bpf_ringbuf *`).
    pub rb: u32,
    /// `bpf_ringbuf.mask` (u64): the data area's size, minus one.
    pub mask: u32,
    /// `bpf_ringbuf.consumer_pos` (`unsigned long`, on its own page).
    pub consumer_pos: u32,
    /// `bpf_ringbuf.producer_pos` (`unsigned long`, on its own page).
    pub producer_pos: u32,
    /// `bpf_ringbuf.pending_pos` (`unsigned long`: Linux 6.8, and stable kernels the fix
    /// that added it was backported to, such as Debian's 6.1).
    pub pending_pos: Option<u32>,
    /// `bpf_ringbuf.data` (page-aligned; its pages are mapped twice, back to back).
    pub data: u32,
}

/// Offsets in `struct bpf_dtab` and `struct bpf_dtab_netdev`: DEVMAP and DEVMAP_HASH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DevmapLayout {
    /// `bpf_dtab.netdev_map` (`struct bpf_dtab_netdev **`, DEVMAP).
    pub netdev_map: u32,
    /// `bpf_dtab.dev_index_head` (`struct hlist_head *`, DEVMAP_HASH).
    pub dev_index_head: u32,
    /// `bpf_dtab.n_buckets` (u32, DEVMAP_HASH).
    pub n_buckets: u32,
    /// `bpf_dtab_netdev.index_hlist` (an `hlist_node`: what the chains point at).
    pub index_hlist: u32,
    /// `bpf_dtab_netdev.idx` (the key).
    pub idx: u32,
    /// `bpf_dtab_netdev.val` (`struct bpf_devmap_val`: what a lookup returns).
    pub val: u32,
    /// `hlist_node.next`.
    pub node_next: u32,
}

/// Offsets in `struct bpf_cpu_map` and `struct bpf_cpu_map_entry`: CPUMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpumapLayout {
    /// `bpf_cpu_map.cpu_map` (`struct bpf_cpu_map_entry **`).
    pub cpu_map: u32,
    /// `bpf_cpu_map_entry.cpu` (u32: the key).
    pub entry_cpu: u32,
    /// `bpf_cpu_map_entry.value` (`struct bpf_cpumap_val`: what a lookup returns).
    pub entry_value: u32,
}

/// Offsets in `struct sock`: what SOCKMAP, SOCKHASH and REUSEPORT_SOCKARRAY read of a
/// socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockLayout {
    /// `sock.__sk_common.skc_cookie` (`atomic64_t`): the socket cookie, 0 until one is
    /// asked for.
    pub cookie: u32,
}

/// Offsets in `struct bpf_stab`, `struct bpf_shtab`, `struct bpf_shtab_bucket` and
/// `struct bpf_shtab_elem`: SOCKMAP and SOCKHASH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SockmapLayout {
    /// `bpf_stab.sks` (`struct sock **`, SOCKMAP).
    pub sks: u32,
    /// `bpf_shtab.buckets` (`struct bpf_shtab_bucket *`).
    pub buckets: u32,
    /// `bpf_shtab.buckets_num` (u32).
    pub buckets_num: u32,
    /// `bpf_shtab_bucket.head` (an `hlist_head`).
    pub bucket_head: u32,
    /// `sizeof(struct bpf_shtab_bucket)`: the stride of the bucket array.
    pub bucket_size: u32,
    /// `bpf_shtab_elem.node` (an `hlist_node`: what the chains point at).
    pub elem_node: u32,
    /// `bpf_shtab_elem.hash` (u32).
    pub elem_hash: u32,
    /// `bpf_shtab_elem.sk` (`struct sock *`).
    pub elem_sk: u32,
    /// `bpf_shtab_elem.key` (the key, `key_size` bytes).
    pub elem_key: u32,
    /// `hlist_node.next`.
    pub node_next: u32,
}

/// Offsets in `struct reuseport_array`: REUSEPORT_SOCKARRAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReuseportLayout {
    /// `reuseport_array.ptrs` (`struct sock *[]`).
    pub ptrs: u32,
}

/// Offsets in `struct cgroup` and `struct kernfs_node`: CGROUP_ARRAY (a `bpf_array` of
/// `struct cgroup *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CgroupLayout {
    /// `cgroup.kn` (`struct kernfs_node *`).
    pub kn: u32,
    /// `kernfs_node.id` (u64): the cgroup id.
    pub kn_id: u32,
}

/// Offsets in `struct bpf_event_entry`, `struct perf_event` and
/// `struct perf_event_attr`: PERF_EVENT_ARRAY (a `bpf_array` of
/// `struct bpf_event_entry *`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PerfEventLayout {
    /// `bpf_event_entry.event` (`struct perf_event *`).
    pub entry_event: u32,
    /// `perf_event.attr` (the embedded `struct perf_event_attr`).
    pub event_attr: u32,
    /// `perf_event.cpu` (int: -1 for any CPU).
    pub event_cpu: u32,
    /// `perf_event_attr.type` (u32).
    pub attr_type: u32,
    /// `perf_event_attr.config` (u64).
    pub attr_config: u32,
}

/// Offsets in `struct xsk_map`, `struct xdp_sock` and `struct net_device`: XSKMAP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XskmapLayout {
    /// `xsk_map.xsk_map` (`struct xdp_sock *[]`).
    pub xsk_map: u32,
    /// `xdp_sock.dev` (`struct net_device *`).
    pub dev: u32,
    /// `xdp_sock.queue_id` (u16).
    pub queue_id: u32,
    /// `net_device.ifindex` (int).
    pub ifindex: u32,
}

/// Every offset the walkers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelLayout {
    /// `struct xarray` / `struct xa_node`.
    pub xarray: XarrayLayout,
    /// `struct idr`.
    pub idr: IdrLayout,
    /// `struct bpf_map`.
    pub bpf_map: BpfMapLayout,
    /// `struct bpf_array`: ARRAY and PERCPU_ARRAY walkers.
    pub array: Option<ArrayLayout>,
    /// `struct bpf_htab`, `struct bucket`, `struct htab_elem`: the hash walkers.
    pub htab: Option<HtabLayout>,
    /// `struct btf`: maps' BTF objects and their ids.
    pub btf_object: Option<BtfObjectLayout>,
    /// `struct bpf_prog` and `struct bpf_prog_aux`: the program walker.
    pub prog: Option<ProgLayout>,
    /// `struct lpm_trie` and `struct lpm_trie_node`: the LPM_TRIE walker.
    pub lpm: Option<LpmLayout>,
    /// `struct bpf_queue_stack`: the QUEUE and STACK walker.
    pub queue: Option<QueueStackLayout>,
    /// `struct bpf_local_storage_map` and friends: the local-storage walker.
    pub storage: Option<StorageLayout>,
    /// `struct bpf_bloom_filter`: the BLOOM_FILTER reader.
    pub bloom: Option<BloomLayout>,
    /// `struct bpf_dtab` and `struct bpf_dtab_netdev`: DEVMAP and DEVMAP_HASH.
    pub devmap: Option<DevmapLayout>,
    /// `struct bpf_cpu_map` and `struct bpf_cpu_map_entry`: CPUMAP.
    pub cpumap: Option<CpumapLayout>,
    /// `struct sock`: the socket cookie of SOCKMAP, SOCKHASH and REUSEPORT_SOCKARRAY.
    pub sock: Option<SockLayout>,
    /// `struct bpf_stab` and `struct bpf_shtab`: SOCKMAP and SOCKHASH.
    pub sockmap: Option<SockmapLayout>,
    /// `struct reuseport_array`: REUSEPORT_SOCKARRAY.
    pub reuseport: Option<ReuseportLayout>,
    /// `struct cgroup` and `struct kernfs_node`: CGROUP_ARRAY.
    pub cgroup: Option<CgroupLayout>,
    /// `struct bpf_event_entry` and `struct perf_event`: PERF_EVENT_ARRAY.
    pub perf_event: Option<PerfEventLayout>,
    /// `struct xsk_map` and `struct xdp_sock`: XSKMAP.
    pub xskmap: Option<XskmapLayout>,
    /// `struct bpf_ringbuf_map` and `struct bpf_ringbuf`: RINGBUF and USER_RINGBUF.
    pub ringbuf: Option<RingbufLayout>,
    /// `struct bpf_arena` and `vm_struct.addr`: ARENA (Linux 6.9+).
    pub arena: Option<ArenaLayout>,
    /// `struct bpf_stack_map` and `struct stack_map_bucket`: STACK_TRACE.
    pub stackmap: Option<StackMapLayout>,
    /// `struct bpf_struct_ops_map` and friends: STRUCT_OPS.
    pub struct_ops: Option<StructOpsLayout>,
}
