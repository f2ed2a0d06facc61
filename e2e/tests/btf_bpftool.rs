//! The kernel layout mapwalk resolves from BTF, checked field by field against what the
//! kernel's own BTF says according to `bpftool btf dump file F format raw`, on real
//! kernels: the host's `/sys/kernel/btf/vmlinux` and the `.BTF` sections of the Debian
//! 6.1 and 6.12 images the real-kernel tests boot (their `vmlinux`, unpacked from the
//! package's `vmlinuz` by `e2e/setup.sh`).
//!
//! bpftool's listing is parsed here and offsets are added up from it independently of
//! mapwalk's BTF code: member bit offsets, anonymous struct/union members, typedef and
//! qualifier chains, and the first of several same-named structs that has the path (the
//! kernel has two `struct bucket`s).
//!
//! Needs bpftool (`apt-get install bpftool`; setup.sh installs it) and, for the images,
//! what setup.sh downloads; without them each test says so on stderr and passes, and
//! fails under `CI=true`.

use goblin::elf::Elf;
use mapwalk::btf::{layout_from_bytes, ResolvedLayout};
use mapwalk_e2e as e2e;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

/// One type of a `bpftool btf dump ... format raw` listing.
#[derive(Debug)]
struct Ty {
    kind: String,
    name: String,
    /// `type_id=` of a typedef or qualifier.
    target: u32,
    /// `size=` of a struct or union.
    size: Option<u64>,
    /// (name, type id, bit offset) of each member.
    members: Vec<(String, u32, u64)>,
}

type Types = HashMap<u32, Ty>;

/// The value of `key=` among the words of `text`.
fn field(text: &str, key: &str) -> Option<u64> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

/// Parses `[ID] KIND 'name' ... type_id=N size=N` lines, each followed by member lines
/// `'name' type_id=N bits_offset=B`.
fn parse_bpftool(dump: &str) -> Types {
    let mut types = Types::default();
    let mut cur: Option<u32> = None;
    for line in dump.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let Some((id, rest)) = rest.split_once("] ") else {
                continue;
            };
            let mut words = rest.split_whitespace();
            let (Ok(id), Some(kind), Some(name)) = (id.parse(), words.next(), words.next()) else {
                continue;
            };
            let target = field(rest, "type_id=")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0);
            let ty = Ty {
                kind: kind.to_owned(),
                name: name.trim_matches('\'').to_owned(),
                target,
                size: field(rest, "size="),
                members: Vec::new(),
            };
            types.insert(id, ty);
            cur = Some(id);
        } else if let (Some(id), Some(m)) = (cur, line.trim_start().strip_prefix('\'')) {
            let Some((name, rest)) = m.split_once('\'') else {
                continue;
            };
            // Enum values, function parameters and the like have no offset.
            let (Some(type_id), Some(bits)) =
                (field(rest, "type_id="), field(rest, "bits_offset="))
            else {
                continue;
            };
            if let (Ok(type_id), Some(t)) = (u32::try_from(type_id), types.get_mut(&id)) {
                t.members.push((name.to_owned(), type_id, bits));
            }
        }
    }
    types
}

/// Follows typedefs and qualifiers.
fn strip(types: &Types, mut id: u32) -> u32 {
    for _ in 0..64 {
        match types.get(&id) {
            Some(t)
                if matches!(
                    t.kind.as_str(),
                    "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG"
                ) =>
            {
                id = t.target
            }
            _ => break,
        }
    }
    id
}

/// Member `name` of type `id`, looking into anonymous members: (bit offset, type id).
fn find_in(types: &Types, id: u32, name: &str) -> Option<(u64, u32)> {
    for (mname, tid, bits) in &types.get(&id)?.members {
        if mname == name {
            return Some((*bits, *tid));
        }
        if mname.is_empty() || mname == "(anon)" {
            if let Some((b, t)) = find_in(types, strip(types, *tid), name) {
                return Some((bits + b, t));
            }
        }
    }
    None
}

/// The structs named `name`, lowest id first.
fn structs_named<'a>(types: &'a Types, name: &str) -> Vec<(u32, &'a Ty)> {
    let mut found: Vec<(u32, &Ty)> = types
        .iter()
        .filter(|(_, t)| t.kind == "STRUCT" && t.name == name)
        .map(|(&id, t)| (id, t))
        .collect();
    found.sort_unstable_by_key(|(id, _)| *id);
    found
}

/// The bit offset of `path` in the first struct named `struct_name` that has it, and
/// that struct's size.
fn offset_in(types: &Types, struct_name: &str, path: &str) -> Option<(u64, u64)> {
    'structs: for (id, ty) in structs_named(types, struct_name) {
        let mut cur = id;
        let mut total = 0;
        for part in path.split('.') {
            let Some((bits, tid)) = find_in(types, strip(types, cur), part) else {
                continue 'structs;
            };
            total += bits;
            cur = tid;
        }
        return Some((total, ty.size?));
    }
    None
}

/// bpftool's raw listing of the BTF in `path` (raw BTF or an ELF with `.BTF`), or `None`
/// when bpftool cannot be run (reported).
fn bpftool_types(test: &str, path: &Path) -> Option<Types> {
    let out = match Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(path)
        .args(["format", "raw"])
        .output()
    {
        Ok(o) if o.status.success() => o,
        other => {
            e2e::unavailable(
                test,
                &format!("bpftool (apt-get install bpftool) to compare with: {other:?}"),
            );
            return None;
        }
    };
    let types = parse_bpftool(&String::from_utf8_lossy(&out.stdout));
    assert!(
        types.len() > 10_000,
        "bpftool listed only {} types of {}",
        types.len(),
        path.display()
    );
    Some(types)
}

/// Every offset of `r` against bpftool's listing; returns how many were compared.
fn check_against_bpftool(what: &str, r: &ResolvedLayout, types: &Types) -> usize {
    let l = &r.layout;
    let array = l
        .array
        .unwrap_or_else(|| panic!("{what}: bpf_array unresolved: {:?}", r.warnings));
    let htab = l
        .htab
        .unwrap_or_else(|| panic!("{what}: bpf_htab unresolved: {:?}", r.warnings));
    let vmlinux_value = l
        .bpf_map
        .btf_vmlinux_value_type_id
        .unwrap_or_else(|| panic!("{what}: btf_vmlinux_value_type_id: {:?}", r.warnings));
    assert!(r.warnings.is_empty(), "{what}: warnings {:?}", r.warnings);
    // ARENA came with 6.9: a kernel whose BTF has no `struct bpf_arena` (bpftool
    // agreeing) has no arena group, and says nothing of it.
    let no_arena = structs_named(types, "bpf_arena").is_empty();
    assert_eq!(l.arena.is_none(), no_arena, "{what}: arena {:?}", l.arena);
    let st = l
        .storage
        .unwrap_or_else(|| panic!("{what}: bpf_local_storage_map unresolved"));
    let (task, inode, sock, cgroup) = (
        st.task.unwrap(),
        st.inode.unwrap(),
        st.sock.unwrap(),
        st.cgroup.unwrap(),
    );
    let mut fields: Vec<(&str, &str, u32)> = vec![
        ("xarray", "xa_head", l.xarray.xa_head),
        ("xa_node", "shift", l.xarray.node_shift),
        ("xa_node", "slots", l.xarray.node_slots),
        ("idr", "idr_rt", l.idr.idr_rt),
        ("idr", "idr_next", l.idr.idr_next),
        ("idr", "idr_rt.xa_head", l.idr.idr_rt + l.xarray.xa_head),
        ("bpf_map", "map_type", l.bpf_map.map_type),
        ("bpf_map", "key_size", l.bpf_map.key_size),
        ("bpf_map", "value_size", l.bpf_map.value_size),
        ("bpf_map", "max_entries", l.bpf_map.max_entries),
        ("bpf_map", "map_flags", l.bpf_map.map_flags),
        ("bpf_map", "id", l.bpf_map.id),
        ("bpf_map", "name", l.bpf_map.name),
        ("bpf_map", "btf", l.bpf_map.btf),
        ("bpf_map", "btf_key_type_id", l.bpf_map.btf_key_type_id),
        ("bpf_map", "btf_value_type_id", l.bpf_map.btf_value_type_id),
        ("bpf_map", "btf_vmlinux_value_type_id", vmlinux_value),
        ("bpf_array", "map.id", l.bpf_map.id),
        ("bpf_array", "elem_size", array.elem_size),
        ("bpf_array", "value", array.value),
        // `value`, `ptrs` and `pptrs` share the flexible-array union.
        ("bpf_array", "pptrs", array.value),
        ("bpf_htab", "buckets", htab.buckets),
        ("bpf_htab", "n_buckets", htab.n_buckets),
        ("bpf_htab", "elem_size", htab.elem_size),
        ("bucket", "head", htab.bucket_head),
        ("htab_elem", "hash_node", htab.elem_hash_node),
        ("htab_elem", "key", htab.elem_key),
    ];
    let elem = "bpf_local_storage_elem";
    fields.extend([
        ("bpf_local_storage_map", "buckets", st.buckets),
        ("bpf_local_storage_map", "bucket_log", st.bucket_log),
        (
            "bpf_local_storage_map_bucket",
            "list.first",
            st.bucket_first,
        ),
        (elem, "map_node", st.elem_map_node),
        (elem, "map_node.next", st.elem_next),
        (elem, "map_node.pprev", st.elem_pprev),
        (elem, "local_storage", st.elem_local_storage),
        (elem, "sdata.smap", st.elem_smap),
        (elem, "sdata.data", st.elem_data),
        ("bpf_local_storage", "owner", st.storage_owner),
        ("task_struct", "pid", task.pid),
        ("task_struct", "tgid", task.tgid),
        ("task_struct", "comm", task.comm),
        ("inode", "i_ino", inode.ino),
        ("inode", "i_sb", inode.sb),
        ("super_block", "s_dev", inode.s_dev),
        ("sock", "__sk_common.skc_cookie", sock.cookie),
        ("sock", "__sk_common.skc_family", sock.family),
        ("sock", "__sk_common.skc_num", sock.num),
        ("sock", "__sk_common.skc_dport", sock.dport),
        ("sock", "__sk_common.skc_rcv_saddr", sock.rcv_saddr),
        ("sock", "__sk_common.skc_daddr", sock.daddr),
        (
            "sock",
            "__sk_common.skc_v6_rcv_saddr",
            sock.v6_rcv_saddr.unwrap(),
        ),
        ("sock", "__sk_common.skc_v6_daddr", sock.v6_daddr.unwrap()),
        ("cgroup", "kn", cgroup.kn),
        ("kernfs_node", "id", cgroup.kn_id),
        ("kernfs_node", "name", cgroup.kn_name),
    ]);
    fields.extend(object_fields(what, r));
    fields.extend(ring_stack_arena_fields(what, r));
    for &(s, f, ours) in &fields {
        let (bits, _) =
            offset_in(types, s, f).unwrap_or_else(|| panic!("{what}: bpftool lists no {s}.{f}"));
        assert_eq!(
            u64::from(ours) * 8,
            bits,
            "{what}: {s}.{f}: mapwalk vs bpftool"
        );
    }
    let sockmap = l.sockmap.unwrap();
    let (_, shtab_bucket_size) = offset_in(types, "bpf_shtab_bucket", "head").unwrap();
    assert_eq!(
        u64::from(sockmap.bucket_size),
        shtab_bucket_size,
        "{what}: size of struct bpf_shtab_bucket"
    );
    let (_, bucket_size) = offset_in(types, "bucket", "head").unwrap();
    assert_eq!(
        u64::from(htab.bucket_size),
        bucket_size,
        "{what}: size of the struct bucket with a head"
    );
    let (_, storage_bucket) = offset_in(types, "bpf_local_storage_map_bucket", "list").unwrap();
    assert_eq!(
        u64::from(st.bucket_size),
        storage_bucket,
        "{what}: size of struct bpf_local_storage_map_bucket"
    );
    // Facts of every 64-bit kernel, so a parser agreeing with itself cannot pass.
    assert_eq!(l.idr.idr_rt, 0, "{what}");
    assert_eq!(l.xarray.node_slots, 40, "{what}: xa_node.slots on 64-bit");
    fields.len() + 2
}

/// The offsets of the RINGBUF and STACK_TRACE groups (which must be resolved), of
/// `bpf_ringbuf.pending_pos` where the kernel has it, and of the ARENA group where it
/// is resolved.
fn ring_stack_arena_fields(
    what: &str,
    r: &ResolvedLayout,
) -> Vec<(&'static str, &'static str, u32)> {
    let l = &r.layout;
    let ring = l
        .ringbuf
        .unwrap_or_else(|| panic!("{what}: bpf_ringbuf unresolved: {:?}", r.warnings));
    let stack = l
        .stackmap
        .unwrap_or_else(|| panic!("{what}: bpf_stack_map unresolved: {:?}", r.warnings));
    let mut v = vec![
        ("bpf_ringbuf_map", "rb", ring.rb),
        ("bpf_ringbuf", "mask", ring.mask),
        ("bpf_ringbuf", "consumer_pos", ring.consumer_pos),
        ("bpf_ringbuf", "producer_pos", ring.producer_pos),
        ("bpf_ringbuf", "data", ring.data),
        ("bpf_stack_map", "n_buckets", stack.n_buckets),
        ("bpf_stack_map", "buckets", stack.buckets),
        ("stack_map_bucket", "nr", stack.bucket_nr),
        ("stack_map_bucket", "data", stack.bucket_data),
    ];
    if let Some(p) = ring.pending_pos {
        v.push(("bpf_ringbuf", "pending_pos", p));
    }
    if let Some(a) = l.arena {
        v.extend([
            ("bpf_arena", "user_vm_start", a.user_vm_start),
            ("bpf_arena", "user_vm_end", a.user_vm_end),
            ("bpf_arena", "kern_vm", a.kern_vm),
            ("vm_struct", "addr", a.vm_addr),
        ]);
    }
    v
}

/// The offsets of the object maps' groups (BLOOM_FILTER, DEVMAP, ..., XSKMAP), each
/// of which must be resolved.
fn object_fields(what: &str, r: &ResolvedLayout) -> Vec<(&'static str, &'static str, u32)> {
    let l = &r.layout;
    fn need<T>(what: &str, name: &str, warnings: &[String]) -> T {
        panic!("{what}: {name} unresolved: {warnings:?}")
    }
    let bloom = l
        .bloom
        .unwrap_or_else(|| need(what, "bpf_bloom_filter", &r.warnings));
    let devmap = l
        .devmap
        .unwrap_or_else(|| need(what, "bpf_dtab", &r.warnings));
    let cpumap = l
        .cpumap
        .unwrap_or_else(|| need(what, "bpf_cpu_map", &r.warnings));
    let sock = l.sock.unwrap_or_else(|| need(what, "sock", &r.warnings));
    let sockmap = l
        .sockmap
        .unwrap_or_else(|| need(what, "bpf_stab", &r.warnings));
    let reuseport = l
        .reuseport
        .unwrap_or_else(|| need(what, "reuseport_array", &r.warnings));
    let cgroup = l
        .cgroup
        .unwrap_or_else(|| need(what, "cgroup", &r.warnings));
    let perf = l
        .perf_event
        .unwrap_or_else(|| need(what, "bpf_event_entry", &r.warnings));
    let xsk = l
        .xskmap
        .unwrap_or_else(|| need(what, "xsk_map", &r.warnings));
    vec![
        ("bpf_bloom_filter", "bitset_mask", bloom.bitset_mask),
        ("bpf_bloom_filter", "hash_seed", bloom.hash_seed),
        ("bpf_bloom_filter", "nr_hash_funcs", bloom.nr_hash_funcs),
        ("bpf_bloom_filter", "bitset", bloom.bitset),
        ("bpf_dtab", "netdev_map", devmap.netdev_map),
        ("bpf_dtab", "dev_index_head", devmap.dev_index_head),
        ("bpf_dtab", "n_buckets", devmap.n_buckets),
        ("bpf_dtab_netdev", "index_hlist", devmap.index_hlist),
        ("bpf_dtab_netdev", "idx", devmap.idx),
        ("bpf_dtab_netdev", "val", devmap.val),
        ("hlist_node", "next", devmap.node_next),
        ("bpf_cpu_map", "cpu_map", cpumap.cpu_map),
        ("bpf_cpu_map_entry", "cpu", cpumap.entry_cpu),
        ("bpf_cpu_map_entry", "value", cpumap.entry_value),
        ("sock", "__sk_common.skc_cookie", sock.cookie),
        ("bpf_stab", "sks", sockmap.sks),
        ("bpf_shtab", "buckets", sockmap.buckets),
        ("bpf_shtab", "buckets_num", sockmap.buckets_num),
        ("bpf_shtab_bucket", "head", sockmap.bucket_head),
        ("bpf_shtab_elem", "node", sockmap.elem_node),
        ("bpf_shtab_elem", "hash", sockmap.elem_hash),
        ("bpf_shtab_elem", "sk", sockmap.elem_sk),
        ("bpf_shtab_elem", "key", sockmap.elem_key),
        ("reuseport_array", "ptrs", reuseport.ptrs),
        ("cgroup", "kn", cgroup.kn),
        ("kernfs_node", "id", cgroup.kn_id),
        ("bpf_event_entry", "event", perf.entry_event),
        ("perf_event", "attr", perf.event_attr),
        ("perf_event", "cpu", perf.event_cpu),
        ("perf_event_attr", "type", perf.attr_type),
        ("perf_event_attr", "config", perf.attr_config),
        ("xsk_map", "xsk_map", xsk.xsk_map),
        ("xdp_sock", "dev", xsk.dev),
        ("xdp_sock", "queue_id", xsk.queue_id),
        ("net_device", "ifindex", xsk.ifindex),
    ]
}

/// The `.BTF` section of the ELF image at `path`.
fn elf_btf(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let elf = Elf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let sh = elf
        .section_headers
        .iter()
        .find(|sh| elf.shdr_strtab.get_at(sh.sh_name) == Some(".BTF"))
        .unwrap_or_else(|| panic!("{}: no .BTF section", path.display()));
    let start = usize::try_from(sh.sh_offset).unwrap();
    let end = start + usize::try_from(sh.sh_size).unwrap();
    bytes[start..end].to_vec()
}

/// The unpacked image of the e2e kernel `name`, or `None` (reported).
fn image(test: &str, name: &str) -> Option<(String, PathBuf)> {
    let assets = match e2e::assets() {
        Ok(a) => a,
        Err(e) => {
            e2e::unavailable(test, &format!("the guest kernels of setup.sh: {e}"));
            return None;
        }
    };
    let kernel = assets
        .kernels
        .get(name)
        .unwrap_or_else(|| panic!("setup.sh reported no kernel {name}"));
    let vmlinux = kernel.vmlinuz.with_file_name("vmlinux");
    assert!(
        vmlinux.is_file(),
        "setup.sh left no {} beside the kernel",
        vmlinux.display()
    );
    Some((kernel.release.clone(), vmlinux))
}

fn check_image(test: &str, name: &str, release_prefix: &str) {
    let Some((release, vmlinux)) = image(test, name) else {
        return;
    };
    assert!(
        release.starts_with(release_prefix),
        "{name}: release {release}"
    );
    let btf = elf_btf(&vmlinux);
    let resolved = layout_from_bytes(&btf).unwrap_or_else(|e| panic!("{name}: {e}"));
    let Some(types) = bpftool_types(test, &vmlinux) else {
        return;
    };
    let n = check_against_bpftool(&format!("{name} ({release})"), &resolved, &types);
    eprintln!("{name} ({release}): {n} offsets agree with bpftool");
}

#[test]
fn host_kernel_layout_matches_bpftool() {
    let test = "btf_bpftool::host_kernel_layout_matches_bpftool";
    let path = Path::new(HOST_BTF);
    if !path.exists() {
        e2e::unavailable(test, &format!("{HOST_BTF} (a kernel without BTF)"));
        return;
    }
    let resolved = layout_from_bytes(&std::fs::read(path).unwrap()).unwrap();
    let Some(types) = bpftool_types(test, path) else {
        return;
    };
    check_against_bpftool("host", &resolved, &types);
}

#[test]
fn debian_6_1_image_layout_matches_bpftool() {
    check_image(
        "btf_bpftool::debian_6_1_image_layout_matches_bpftool",
        "deb12-cloud",
        "6.1.",
    );
}

#[test]
fn debian_6_12_image_layout_matches_bpftool() {
    check_image(
        "btf_bpftool::debian_6_12_image_layout_matches_bpftool",
        "deb13-cloud",
        "6.12.",
    );
}

/// The listing parser on a fixed excerpt, so the comparison above cannot pass by
/// parsing nothing: an anonymous union member, a typedef, and a second same-named struct.
#[test]
fn the_bpftool_listing_parser_adds_offsets_up() {
    let dump = "\
[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED
[2] STRUCT 'bucket' size=4 vlen=1
\t'x' type_id=1 bits_offset=0
[3] UNION '(anon)' size=8 vlen=2
\t'head' type_id=1 bits_offset=0
\t'other' type_id=1 bits_offset=0
[4] TYPEDEF 'u_t' type_id=3
[5] STRUCT 'bucket' size=16 vlen=2
\t'lock' type_id=1 bits_offset=0
\t'(anon)' type_id=4 bits_offset=64
";
    let types = parse_bpftool(dump);
    assert_eq!(types.len(), 5);
    assert_eq!(offset_in(&types, "bucket", "head"), Some((64, 16)));
    assert_eq!(offset_in(&types, "bucket", "x"), Some((0, 4)));
    assert_eq!(offset_in(&types, "bucket", "nope"), None);
}
