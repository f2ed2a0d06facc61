//! Member offsets and struct sizes looked up with the [`BtfReader`], and the
//! [`KernelLayout`] they make.

pub use mapwalk_core::layout::BtfObjectLayout;
use mapwalk_core::layout::{
    ArenaLayout, ArrayLayout, BloomLayout, BpfMapLayout, CgroupLayout, CgroupOwnerLayout,
    CpumapLayout, DevmapLayout, HtabLayout, IdrLayout, InodeOwnerLayout, LpmLayout, MapRefcnts,
    PerfEventLayout, ProgLayout, QueueStackLayout, ReuseportLayout, RingbufLayout, SockLayout,
    SockOwnerLayout, SockmapLayout, StackMapLayout, StorageLayout, StructOpsLayout,
    TaskOwnerLayout, XarrayLayout, XskmapLayout,
};
use mapwalk_core::KernelLayout;

use super::reader::{BtfReader, TypeRef};
use super::{BtfError, ResolvedLayout};

/// How deep anonymous structs and unions nest inside one another before the lookup
/// gives up.
pub const MAX_ANON_DEPTH: u32 = 16;
/// The most components of a member path (`"a.b.c"`).
pub const MAX_PATH_PARTS: u32 = 8;

/// The structs [`resolve_layout`] looks members up in: a reader built with
/// [`BtfReader::with_names`]`(bytes, LAYOUT_STRUCTS)` finds them without another pass.
pub const LAYOUT_STRUCTS: &[&str] = &[
    "xarray",
    "xa_node",
    "idr",
    "bpf_map",
    "bpf_array",
    "bpf_htab",
    "bucket",
    "htab_elem",
    "hlist_nulls_node",
    "e820_table",
    "e820_entry",
    "btf",
    "bpf_prog",
    "bpf_prog_aux",
    "user_struct",
    "lpm_trie",
    "lpm_trie_node",
    "bpf_queue_stack",
    "bpf_stack_map",
    "stack_map_bucket",
    "bpf_local_storage_map",
    "bpf_local_storage_map_bucket",
    "bpf_local_storage_elem",
    "bpf_local_storage",
    "task_struct",
    "inode",
    "super_block",
    "sock",
    "cgroup",
    "kernfs_node",
    "bpf_bloom_filter",
    "bpf_dtab",
    "bpf_dtab_netdev",
    "hlist_node",
    "bpf_cpu_map",
    "bpf_cpu_map_entry",
    "bpf_stab",
    "bpf_shtab",
    "bpf_shtab_bucket",
    "bpf_shtab_elem",
    "reuseport_array",
    "bpf_event_entry",
    "perf_event",
    "perf_event_attr",
    "xsk_map",
    "xdp_sock",
    "net_device",
    "bpf_ringbuf_map",
    "bpf_ringbuf",
    "bpf_arena",
    "vm_struct",
    "bpf_struct_ops_map",
    "bpf_struct_ops_value",
    "bpf_struct_ops_link",
    "bpf_link",
];

/// Finds `name` among the members of aggregate `ty`, looking into anonymous struct and
/// union members. Returns the member's bit offset from the start of `ty` and its type
/// id.
fn find_member(
    r: &BtfReader<'_>,
    ty: &TypeRef<'_>,
    name: &[u8],
    depth: u32,
) -> Result<Option<(u64, u32)>, BtfError> {
    if depth > MAX_ANON_DEPTH {
        return Err(BtfError::LimitExceeded {
            what: "nesting of anonymous structs and unions",
            limit: MAX_ANON_DEPTH,
        });
    }
    for m in ty.members() {
        let bit = u64::from(m.bit_offset);
        if m.name_off == 0 || r.str_at(m.name_off)?.is_empty() {
            let inner = r.strip(m.type_id)?;
            if inner.kind.is_aggregate() {
                if let Some((off, t)) = find_member(r, &inner, name, depth + 1)? {
                    return Ok(Some((bit.saturating_add(off), t)));
                }
            }
        } else if r.str_at(m.name_off)? == name {
            // A bitfield's offset is in bits too: the caller refuses one not on a byte.
            return Ok(Some((bit, m.type_id)));
        }
    }
    Ok(None)
}

/// The bit offset of the member path `path` (`"a"`, `"a.b"`) in aggregate `ty`.
fn path_bits(
    r: &BtfReader<'_>,
    ty: &TypeRef<'_>,
    owner: &str,
    path: &str,
) -> Result<u64, BtfError> {
    let mut total = 0u64;
    let mut cur = *ty;
    let mut done = 0usize;
    for (n, part) in path.split('.').enumerate() {
        if n >= MAX_PATH_PARTS as usize {
            return Err(BtfError::LimitExceeded {
                what: "components of a member path",
                limit: MAX_PATH_PARTS,
            });
        }
        done = done
            .saturating_add(part.len())
            .saturating_add(usize::from(n > 0));
        let here = || format!("{owner}.{}", path.get(..done).unwrap_or(path));
        if n > 0 {
            cur = r.strip(cur.id)?;
        }
        if !cur.kind.is_aggregate() {
            return Err(BtfError::NotAggregate(here()));
        }
        let (bit, mty) =
            find_member(r, &cur, part.as_bytes(), 0)?.ok_or_else(|| BtfError::NoMember(here()))?;
        total = total.saturating_add(bit);
        cur = r.type_by_id(mty, cur.id)?;
    }
    Ok(total)
}

/// The structs (or unions) named `name`, in id order.
fn aggregates<'a>(r: &BtfReader<'a>, name: &str) -> Result<Vec<TypeRef<'a>>, BtfError> {
    let found = r.aggregates_named(name)?;
    if found.is_empty() {
        return Err(BtfError::NoStruct(name.to_owned()));
    }
    Ok(found)
}

/// The first struct named `struct_name` that has the member path `path`, and the
/// path's bit offset in it.
fn first_having<'a>(
    r: &BtfReader<'a>,
    struct_name: &str,
    path: &str,
) -> Result<(TypeRef<'a>, u64), BtfError> {
    let mut first_err = None;
    for ty in aggregates(r, struct_name)? {
        match path_bits(r, &ty, struct_name, path) {
            Ok(bits) => return Ok((ty, bits)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| BtfError::NoMember(format!("{struct_name}.{path}"))))
}

/// The bit offset of member path `path` in struct `struct_name`. When several structs
/// share the name (the kernel has two `struct bucket`s), the first one that has the
/// whole path wins.
///
/// # Errors
/// [`BtfError::NoStruct`] or [`BtfError::NoMember`] (naming `struct.path`),
/// [`BtfError::NotAggregate`] when a path component is not a struct or union, or the
/// reader's errors for BTF that does not decode.
pub fn member_bit_offset(
    r: &BtfReader<'_>,
    struct_name: &str,
    path: &str,
) -> Result<u64, BtfError> {
    first_having(r, struct_name, path).map(|(_, bits)| bits)
}

/// The byte offset of member path `path` (such as `"idr_rt.xa_head"`) in struct
/// `struct_name`; members of anonymous unions and structs count as members of the
/// struct that holds them.
///
/// # Errors
/// As [`member_bit_offset`], and [`BtfError::Bitfield`] when the member does not start
/// on a byte boundary.
pub fn member_offset(r: &BtfReader<'_>, struct_name: &str, path: &str) -> Result<u32, BtfError> {
    let bits = member_bit_offset(r, struct_name, path)?;
    let name = || format!("{struct_name}.{path}");
    if bits % 8 != 0 {
        return Err(BtfError::Bitfield(name()));
    }
    u32::try_from(bits / 8).map_err(|_| BtfError::TooFar(name()))
}

/// The size in bytes of the first struct named `struct_name`.
///
/// # Errors
/// [`BtfError::NoStruct`].
pub fn struct_size(r: &BtfReader<'_>, struct_name: &str) -> Result<u32, BtfError> {
    aggregates(r, struct_name)?
        .first()
        .map(|t| t.size_or_type)
        .ok_or_else(|| BtfError::NoStruct(struct_name.to_owned()))
}

/// The size in bytes of the first struct named `struct_name` that has member `path`
/// (the kernel has more than one `struct bucket`, for instance).
///
/// # Errors
/// [`BtfError::NoStruct`] or the member's resolution error.
pub fn struct_size_having(
    r: &BtfReader<'_>,
    struct_name: &str,
    path: &str,
) -> Result<u32, BtfError> {
    first_having(r, struct_name, path).map(|(ty, _)| ty.size_or_type)
}

/// Resolves every group of [`KernelLayout`].
///
/// Required: `xarray`, `idr`, `bpf_map` (except `btf_vmlinux_value_type_id`).
/// Optional: `array`, `htab`, `btf_object`, `prog`, `lpm`, `queue` and `storage`
/// (`None` and a warning when `bpf_array`, `bpf_htab`, `btf`, `bpf_prog`, `lpm_trie`,
/// `bpf_queue_stack` or `bpf_local_storage_map` cannot be resolved; within `storage`,
/// each kind of owner on its own: `task_struct`, `inode`, `sock`, `cgroup`), the object
/// maps' groups (`bloom`, `devmap`, `cpumap`, `sock`, `sockmap`, `reuseport`, `cgroup`,
/// `perf_event`, `xskmap`, the same way), `stackmap` (`bpf_stack_map`), `struct_ops` (`bpf_struct_ops_map`), and `bpf_map.btf_vmlinux_value_type_id`
/// (`None` and a warning).
///
/// # Errors
/// The first required field that cannot be resolved, as `struct.field`.
pub fn resolve_layout(r: &BtfReader<'_>) -> Result<ResolvedLayout, BtfError> {
    layout_with(
        |s, f| member_offset(r, s, f),
        |s, p| struct_size_having(r, s, p),
        |s, f| member_bit_offset(r, s, f),
    )
}

/// [`resolve_layout`] over any way of looking members up: `off(struct, path)` is a
/// member's byte offset, `size_having(struct, path)` the size of the first struct of
/// that name that has the path, `bits(struct, path)` a member's bit offset (for
/// bitfields). The groups, and which of them are optional, are here
/// once for every resolver.
pub(crate) fn layout_with(
    off: impl Fn(&str, &str) -> Result<u32, BtfError>,
    size_having: impl Fn(&str, &str) -> Result<u32, BtfError>,
    bits: impl Fn(&str, &str) -> Result<u64, BtfError>,
) -> Result<ResolvedLayout, BtfError> {
    let mut warnings = Vec::new();
    let xarray = XarrayLayout {
        xa_head: off("xarray", "xa_head")?,
        node_shift: off("xa_node", "shift")?,
        node_slots: off("xa_node", "slots")?,
    };
    let idr = IdrLayout {
        idr_rt: off("idr", "idr_rt")?,
        idr_next: off("idr", "idr_next")?,
    };
    let bpf_map = BpfMapLayout {
        map_type: off("bpf_map", "map_type")?,
        key_size: off("bpf_map", "key_size")?,
        value_size: off("bpf_map", "value_size")?,
        max_entries: off("bpf_map", "max_entries")?,
        map_flags: off("bpf_map", "map_flags")?,
        id: off("bpf_map", "id")?,
        name: off("bpf_map", "name")?,
        btf: off("bpf_map", "btf")?,
        btf_key_type_id: off("bpf_map", "btf_key_type_id")?,
        btf_value_type_id: off("bpf_map", "btf_value_type_id")?,
        btf_vmlinux_value_type_id: optional(
            &mut warnings,
            off("bpf_map", "btf_vmlinux_value_type_id"),
        ),
        frozen: optional(&mut warnings, off("bpf_map", "frozen")),
    };
    let array = group(&mut warnings, "bpf_array (ARRAY maps)", || {
        Ok(ArrayLayout {
            elem_size: off("bpf_array", "elem_size")?,
            value: off("bpf_array", "value")?,
        })
    });
    let htab = group(&mut warnings, "bpf_htab (HASH maps)", || {
        Ok(HtabLayout {
            buckets: off("bpf_htab", "buckets")?,
            n_buckets: off("bpf_htab", "n_buckets")?,
            elem_size: off("bpf_htab", "elem_size")?,
            bucket_head: off("bucket", "head")?,
            bucket_size: size_having("bucket", "head")?,
            elem_hash_node: off("htab_elem", "hash_node")?,
            elem_key: off("htab_elem", "key")?,
            node_pprev: off("hlist_nulls_node", "pprev")?,
        })
    });
    let btf_object = group(&mut warnings, "btf (maps' BTF and BTF ids)", || {
        Ok(BtfObjectLayout {
            data: off("btf", "data")?,
            data_size: off("btf", "data_size")?,
            base_btf: off("btf", "base_btf")?,
            id: off("btf", "id")?,
        })
    });
    let prog = group(&mut warnings, "bpf_prog (programs)", || {
        Ok(ProgLayout {
            prog_type: off("bpf_prog", "type")?,
            len: off("bpf_prog", "len")?,
            jited_len: off("bpf_prog", "jited_len")?,
            tag: off("bpf_prog", "tag")?,
            aux: off("bpf_prog", "aux")?,
            gpl_compatible_bit: bits("bpf_prog", "gpl_compatible")
                .ok()
                .and_then(|b| u32::try_from(b).ok()),
            aux_id: off("bpf_prog_aux", "id")?,
            aux_name: off("bpf_prog_aux", "name")?,
            aux_prog: off("bpf_prog_aux", "prog")?,
            aux_used_map_cnt: off("bpf_prog_aux", "used_map_cnt")?,
            aux_used_maps: off("bpf_prog_aux", "used_maps")?,
            aux_func_cnt: off("bpf_prog_aux", "func_cnt")?,
            aux_func: off("bpf_prog_aux", "func")?,
            aux_btf: off("bpf_prog_aux", "btf")?,
            aux_user: off("bpf_prog_aux", "user").ok(),
            user_uid: off("user_struct", "uid").ok(),
        })
    });
    let lpm = group(&mut warnings, "lpm_trie (LPM_TRIE maps)", || {
        Ok(LpmLayout {
            root: off("lpm_trie", "root")?,
            max_prefixlen: off("lpm_trie", "max_prefixlen")?,
            data_size: off("lpm_trie", "data_size")?,
            node_child: off("lpm_trie_node", "child")?,
            node_prefixlen: off("lpm_trie_node", "prefixlen")?,
            node_flags: off("lpm_trie_node", "flags")?,
            node_data: off("lpm_trie_node", "data")?,
        })
    });
    let queue = group(
        &mut warnings,
        "bpf_queue_stack (QUEUE and STACK maps)",
        || {
            Ok(QueueStackLayout {
                head: off("bpf_queue_stack", "head")?,
                tail: off("bpf_queue_stack", "tail")?,
                size: off("bpf_queue_stack", "size")?,
                elements: off("bpf_queue_stack", "elements")?,
            })
        },
    );
    let stackmap = group(&mut warnings, "bpf_stack_map (STACK_TRACE maps)", || {
        Ok(StackMapLayout {
            n_buckets: off("bpf_stack_map", "n_buckets")?,
            buckets: off("bpf_stack_map", "buckets")?,
            bucket_nr: off("stack_map_bucket", "nr")?,
            bucket_data: off("stack_map_bucket", "data")?,
        })
    });
    let struct_ops = group(
        &mut warnings,
        "bpf_struct_ops_map (STRUCT_OPS maps)",
        || struct_ops_layout(&off),
    );
    let storage = group(
        &mut warnings,
        "bpf_local_storage_map (TASK, INODE, SK and CGRP_STORAGE maps)",
        || storage_layout(&off, &size_having),
    )
    .map(|mut st| {
        let w = &mut warnings;
        st.task = group(w, "task_struct (local-storage owners)", || task_owner(&off));
        st.inode = group(w, "inode (local-storage owners)", || inode_owner(&off));
        st.sock = group(w, "sock (local-storage owners)", || sock_owner(&off));
        st.cgroup = group(w, "cgroup (local-storage owners)", || cgroup_owner(&off));
        st
    });
    let objects = object_groups(&mut warnings, &off, &size_having);
    Ok(ResolvedLayout {
        layout: KernelLayout {
            xarray,
            idr,
            bpf_map,
            array,
            htab,
            btf_object,
            prog,
            lpm,
            queue,
            storage,
            bloom: objects.bloom,
            devmap: objects.devmap,
            cpumap: objects.cpumap,
            sock: objects.sock,
            sockmap: objects.sockmap,
            reuseport: objects.reuseport,
            cgroup: objects.cgroup,
            perf_event: objects.perf_event,
            arena: newer_group(
                &mut warnings,
                "bpf_arena (ARENA maps, Linux 6.9+)",
                "bpf_arena",
                || {
                    Ok(ArenaLayout {
                        user_vm_start: off("bpf_arena", "user_vm_start")?,
                        user_vm_end: off("bpf_arena", "user_vm_end")?,
                        kern_vm: off("bpf_arena", "kern_vm")?,
                        vm_addr: off("vm_struct", "addr")?,
                    })
                },
            ),
            xskmap: objects.xskmap,
            ringbuf: group(
                &mut warnings,
                "bpf_ringbuf (RINGBUF and USER_RINGBUF maps)",
                || ringbuf_layout(&off),
            )
            .map(|mut l| {
                // Linux 6.8 and later.
                l.pending_pos = off("bpf_ringbuf", "pending_pos").ok();
                l
            }),
            stackmap,
            struct_ops,
        },
        warnings,
    })
}

/// The STRUCT_OPS offsets: `refcnt` and `state` directly in `bpf_struct_ops_value`
/// (6.1) or in its `common` (6.9+); `funcs_cnt` where `links[]` has it;
/// `bpf_map.refcnt` and `usercnt` (a lookup's reference count from 6.4); `kvalue.refcnt`
/// retired for certain on kernels with `struct bpf_struct_ops_link` (6.4+).
fn struct_ops_layout(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<StructOpsLayout, BtfError> {
    let value = |name: &str| {
        off("bpf_struct_ops_value", &format!("common.{name}"))
            .or_else(|_| off("bpf_struct_ops_value", name))
    };
    let map_refcnts = match (off("bpf_map", "refcnt"), off("bpf_map", "usercnt")) {
        (Ok(refcnt), Ok(usercnt)) => Some(MapRefcnts { refcnt, usercnt }),
        _ => None,
    };
    Ok(StructOpsLayout {
        uvalue: off("bpf_struct_ops_map", "uvalue")?,
        kvalue: off("bpf_struct_ops_map", "kvalue")?,
        links: off("bpf_struct_ops_map", "links")?,
        funcs_cnt: off("bpf_struct_ops_map", "funcs_cnt").ok(),
        value_refcnt: value("refcnt")?,
        value_state: value("state")?,
        link_prog: off("bpf_link", "prog")?,
        map_refcnts,
        refcnt_retired: off("bpf_struct_ops_link", "map").is_ok(),
    })
}

/// The local-storage walker's offsets, owners left out (the caller adds each kind it
/// can resolve).
fn storage_layout(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
    size_having: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<StorageLayout, BtfError> {
    let elem = |path| off("bpf_local_storage_elem", path);
    Ok(StorageLayout {
        buckets: off("bpf_local_storage_map", "buckets")?,
        bucket_log: off("bpf_local_storage_map", "bucket_log")?,
        bucket_first: off("bpf_local_storage_map_bucket", "list.first")?,
        bucket_size: size_having("bpf_local_storage_map_bucket", "list")?,
        elem_map_node: elem("map_node")?,
        elem_next: elem("map_node.next")?,
        elem_pprev: elem("map_node.pprev")?,
        elem_local_storage: elem("local_storage")?,
        elem_smap: elem("sdata.smap")?,
        elem_data: elem("sdata.data")?,
        storage_owner: off("bpf_local_storage", "owner")?,
        task: None,
        inode: None,
        sock: None,
        cgroup: None,
    })
}

fn task_owner(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<TaskOwnerLayout, BtfError> {
    Ok(TaskOwnerLayout {
        pid: off("task_struct", "pid")?,
        tgid: off("task_struct", "tgid")?,
        comm: off("task_struct", "comm")?,
    })
}

fn inode_owner(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<InodeOwnerLayout, BtfError> {
    Ok(InodeOwnerLayout {
        ino: off("inode", "i_ino")?,
        sb: off("inode", "i_sb")?,
        s_dev: off("super_block", "s_dev")?,
    })
}

fn sock_owner(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<SockOwnerLayout, BtfError> {
    let skc = |f: &str| off("sock", &format!("__sk_common.{f}"));
    Ok(SockOwnerLayout {
        cookie: skc("skc_cookie")?,
        family: skc("skc_family")?,
        num: skc("skc_num")?,
        dport: skc("skc_dport")?,
        rcv_saddr: skc("skc_rcv_saddr")?,
        daddr: skc("skc_daddr")?,
        // Kernels without IPv6 have no such members.
        v6_rcv_saddr: skc("skc_v6_rcv_saddr").ok(),
        v6_daddr: skc("skc_v6_daddr").ok(),
    })
}

fn cgroup_owner(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<CgroupOwnerLayout, BtfError> {
    Ok(CgroupOwnerLayout {
        kn: off("cgroup", "kn")?,
        kn_id: off("kernfs_node", "id")?,
        kn_name: off("kernfs_node", "name")?,
    })
}

/// The ring buffers' offsets, `pending_pos` left out (the caller adds it where the
/// kernel has it).
fn ringbuf_layout(
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> Result<RingbufLayout, BtfError> {
    Ok(RingbufLayout {
        rb: off("bpf_ringbuf_map", "rb")?,
        mask: off("bpf_ringbuf", "mask")?,
        consumer_pos: off("bpf_ringbuf", "consumer_pos")?,
        producer_pos: off("bpf_ringbuf", "producer_pos")?,
        pending_pos: None,
        data: off("bpf_ringbuf", "data")?,
    })
}

/// The object maps' layout groups (BLOOM_FILTER and the maps whose slots hold kernel
/// objects), each optional.
struct ObjectGroups {
    bloom: Option<BloomLayout>,
    devmap: Option<DevmapLayout>,
    cpumap: Option<CpumapLayout>,
    sock: Option<SockLayout>,
    sockmap: Option<SockmapLayout>,
    reuseport: Option<ReuseportLayout>,
    cgroup: Option<CgroupLayout>,
    perf_event: Option<PerfEventLayout>,
    xskmap: Option<XskmapLayout>,
}

fn object_groups(
    warnings: &mut Vec<String>,
    off: &impl Fn(&str, &str) -> Result<u32, BtfError>,
    size_having: &impl Fn(&str, &str) -> Result<u32, BtfError>,
) -> ObjectGroups {
    ObjectGroups {
        bloom: group(warnings, "bpf_bloom_filter (BLOOM_FILTER maps)", || {
            Ok(BloomLayout {
                bitset_mask: off("bpf_bloom_filter", "bitset_mask")?,
                hash_seed: off("bpf_bloom_filter", "hash_seed")?,
                nr_hash_funcs: off("bpf_bloom_filter", "nr_hash_funcs")?,
                bitset: off("bpf_bloom_filter", "bitset")?,
            })
        }),
        devmap: group(warnings, "bpf_dtab (DEVMAP maps)", || {
            Ok(DevmapLayout {
                netdev_map: off("bpf_dtab", "netdev_map")?,
                dev_index_head: off("bpf_dtab", "dev_index_head")?,
                n_buckets: off("bpf_dtab", "n_buckets")?,
                index_hlist: off("bpf_dtab_netdev", "index_hlist")?,
                idx: off("bpf_dtab_netdev", "idx")?,
                val: off("bpf_dtab_netdev", "val")?,
                node_next: off("hlist_node", "next")?,
            })
        }),
        cpumap: group(warnings, "bpf_cpu_map (CPUMAP maps)", || {
            Ok(CpumapLayout {
                cpu_map: off("bpf_cpu_map", "cpu_map")?,
                entry_cpu: off("bpf_cpu_map_entry", "cpu")?,
                entry_value: off("bpf_cpu_map_entry", "value")?,
            })
        }),
        sock: group(warnings, "sock (socket cookies)", || {
            Ok(SockLayout {
                cookie: off("sock", "__sk_common.skc_cookie")?,
            })
        }),
        sockmap: group(warnings, "bpf_stab (SOCKMAP and SOCKHASH maps)", || {
            Ok(SockmapLayout {
                sks: off("bpf_stab", "sks")?,
                buckets: off("bpf_shtab", "buckets")?,
                buckets_num: off("bpf_shtab", "buckets_num")?,
                bucket_head: off("bpf_shtab_bucket", "head")?,
                bucket_size: size_having("bpf_shtab_bucket", "head")?,
                elem_node: off("bpf_shtab_elem", "node")?,
                elem_hash: off("bpf_shtab_elem", "hash")?,
                elem_sk: off("bpf_shtab_elem", "sk")?,
                elem_key: off("bpf_shtab_elem", "key")?,
                node_next: off("hlist_node", "next")?,
            })
        }),
        reuseport: group(
            warnings,
            "reuseport_array (REUSEPORT_SOCKARRAY maps)",
            || {
                Ok(ReuseportLayout {
                    ptrs: off("reuseport_array", "ptrs")?,
                })
            },
        ),
        cgroup: group(warnings, "cgroup (CGROUP_ARRAY maps)", || {
            Ok(CgroupLayout {
                kn: off("cgroup", "kn")?,
                kn_id: off("kernfs_node", "id")?,
            })
        }),
        perf_event: group(warnings, "bpf_event_entry (PERF_EVENT_ARRAY maps)", || {
            Ok(PerfEventLayout {
                entry_event: off("bpf_event_entry", "event")?,
                event_attr: off("perf_event", "attr")?,
                event_cpu: off("perf_event", "cpu")?,
                attr_type: off("perf_event_attr", "type")?,
                attr_config: off("perf_event_attr", "config")?,
            })
        }),
        xskmap: group(warnings, "xsk_map (XSKMAP maps)", || {
            Ok(XskmapLayout {
                xsk_map: off("xsk_map", "xsk_map")?,
                dev: off("xdp_sock", "dev")?,
                queue_id: off("xdp_sock", "queue_id")?,
                ifindex: off("net_device", "ifindex")?,
            })
        }),
    }
}

/// An optional field: `None` and a warning when it cannot be resolved.
fn optional<T>(warnings: &mut Vec<String>, r: Result<T, BtfError>) -> Option<T> {
    r.map_err(|e| warnings.push(format!("optional field left out: {e}")))
        .ok()
}

/// The group of a map type that older kernels do not have: `None` and no warning when
/// the kernel's BTF has no struct `marker` at all (the kernel predates the type, so no
/// map of it can exist), otherwise as [`group`].
pub fn newer_group<T>(
    warnings: &mut Vec<String>,
    what: &str,
    marker: &str,
    resolve: impl FnOnce() -> Result<T, BtfError>,
) -> Option<T> {
    match resolve() {
        Ok(t) => Some(t),
        Err(BtfError::NoStruct(s)) if s == marker => None,
        Err(e) => {
            warnings.push(format!("{what} disabled: {e}"));
            None
        }
    }
}

/// An optional group: `None` and a warning naming the group when any of its fields
/// cannot be resolved.
pub fn group<T>(
    warnings: &mut Vec<String>,
    what: &str,
    resolve: impl FnOnce() -> Result<T, BtfError>,
) -> Option<T> {
    resolve()
        .map_err(|e| warnings.push(format!("{what} disabled: {e}")))
        .ok()
}
