//! Command arguments: the members of `union bpf_attr`.

use core::mem::{offset_of, size_of};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BPF_MAP_CREATE`'s part of `union bpf_attr`, up to `map_extra`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub(super) struct MapCreateAttr {
    pub(super) map_type: u32,
    pub(super) key_size: u32,
    pub(super) value_size: u32,
    pub(super) max_entries: u32,
    pub(super) map_flags: u32,
    pub(super) inner_map_fd: u32,
    pub(super) numa_node: u32,
    pub(super) map_name: [u8; 16],
    pub(super) map_ifindex: u32,
    pub(super) btf_fd: u32,
    pub(super) btf_key_type_id: u32,
    pub(super) btf_value_type_id: u32,
    pub(super) btf_vmlinux_value_type_id: u32,
    pub(super) map_extra: u64,
}

/// The element commands' part (`BPF_MAP_LOOKUP_ELEM`, `BPF_MAP_UPDATE_ELEM`,
/// `BPF_MAP_DELETE_ELEM`, `BPF_MAP_GET_NEXT_KEY`): `map_fd`, `key`, `value` or `next_key`, `flags`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub(super) struct ElemAttr {
    pub(super) map_fd: u32,
    pub(super) _pad: u32,
    pub(super) key: u64,
    pub(super) value: u64,
    pub(super) flags: u64,
}

/// `BPF_MAP_*_BATCH`'s part (`struct { in_batch, out_batch, keys, values, count, map_fd,
/// elem_flags, flags } batch`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub(super) struct BatchAttr {
    pub(super) in_batch: u64,
    pub(super) out_batch: u64,
    pub(super) keys: u64,
    pub(super) values: u64,
    pub(super) count: u32,
    pub(super) map_fd: u32,
    pub(super) elem_flags: u64,
    pub(super) flags: u64,
}

/// The `*_GET_NEXT_ID` / `*_GET_FD_BY_ID` part: `start_id`/`map_id`/`btf_id`, `next_id`,
/// `open_flags`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub(super) struct IdAttr {
    pub(super) id: u32,
    pub(super) next_id: u32,
    pub(super) open_flags: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`'s part: `bpf_fd`, `info_len`, `info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
pub(super) struct InfoAttr {
    pub(super) bpf_fd: u32,
    pub(super) info_len: u32,
    pub(super) info: u64,
}

// Offsets as in include/uapi/linux/bpf.h (checked with offsetof() on the 6.1 header and
// against the upstream header).
layout!(MapCreateAttr, 72, map_type @ 0, key_size @ 4, value_size @ 8, max_entries @ 12,
    map_flags @ 16, inner_map_fd @ 20, numa_node @ 24, map_name @ 28, map_ifindex @ 44,
    btf_fd @ 48, btf_key_type_id @ 52, btf_value_type_id @ 56,
    btf_vmlinux_value_type_id @ 60, map_extra @ 64);
layout!(ElemAttr, 32, map_fd @ 0, key @ 8, value @ 16, flags @ 24);
layout!(BatchAttr, 56, in_batch @ 0, out_batch @ 8, keys @ 16, values @ 24, count @ 32,
    map_fd @ 36, elem_flags @ 40, flags @ 48);
layout!(IdAttr, 12, id @ 0, next_id @ 4, open_flags @ 8);
layout!(InfoAttr, 16, bpf_fd @ 0, info_len @ 4, info @ 8);
