//! Loading raw BTF and creating maps typed by it, behind the `test-util` feature: for
//! tests (maps whose values bpftool and mapwalk both render through BTF); not part of
//! the stable API.

use core::mem::{offset_of, size_of};
use std::os::fd::{BorrowedFd, OwnedFd};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::attr::MapCreateAttr;
use super::map::MapCreate;
use super::{addr_of, bpf, fd_u32, owned_fd, Cmd};
use crate::error::{Errno, Error, Result};

/// `BPF_BTF_LOAD`.
const BTF_LOAD: Cmd = Cmd(18);

/// `BPF_BTF_LOAD`'s part: `btf`, `btf_log_buf`, `btf_size`, `btf_log_size`,
/// `btf_log_level`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    _pad: u32,
}

layout!(BtfLoadAttr, 32, btf @ 0, btf_log_buf @ 8, btf_size @ 16, btf_log_size @ 20,
    btf_log_level @ 24);

/// `BPF_BTF_LOAD`: loads raw BTF (header, types, strings) into the kernel; the object
/// lives as long as a descriptor or a map refers to it.
///
/// For tests; not part of the stable API (cargo feature `test-util`).
///
/// # Errors
/// [`Error::Denied`] without `CAP_BPF`; [`Error::Sys`] for BTF the kernel refuses, or
/// BTF over 4 GiB.
pub fn btf_load(raw: &[u8]) -> Result<OwnedFd> {
    let size =
        u32::try_from(raw.len()).map_err(|_| Error::from_errno(BTF_LOAD, Errno(libc::E2BIG)))?;
    let mut attr = BtfLoadAttr {
        btf: addr_of(raw),
        btf_size: size,
        ..BtfLoadAttr::default()
    };
    // SAFETY:
    // - `btf` points at `raw`, `btf_size` bytes, alive for the call; the kernel only
    //   reads it.
    // - No log buffer (`btf_log_buf` 0, `btf_log_size` 0).
    unsafe { bpf(BTF_LOAD, &mut attr) }
        .map(owned_fd)
        .map_err(|e| Error::from_errno(BTF_LOAD, e))
}

/// `BPF_MAP_CREATE` of `spec` with its key and value typed by BTF object `btf`
/// (`btf_key_type_id` may be 0 for an untyped key).
///
/// For tests; not part of the stable API (cargo feature `test-util`).
///
/// # Errors
/// As [`map_create`](super::map_create); `EINVAL` when the types do not fit the sizes.
pub fn map_create_with_btf(
    spec: &MapCreate<'_>,
    btf: BorrowedFd<'_>,
    key_type_id: u32,
    value_type_id: u32,
) -> Result<OwnedFd> {
    let mut map_name = [0u8; 16];
    for (d, s) in map_name.iter_mut().take(15).zip(spec.name.bytes()) {
        *d = s;
    }
    let mut attr = MapCreateAttr {
        map_type: spec.map_type.0,
        key_size: spec.key_size,
        value_size: spec.value_size,
        max_entries: spec.max_entries,
        map_flags: spec.map_flags,
        map_name,
        map_extra: spec.map_extra,
        btf_fd: fd_u32(btf),
        btf_key_type_id: key_type_id,
        btf_value_type_id: value_type_id,
        ..MapCreateAttr::default()
    };
    // SAFETY:
    // - `MapCreateAttr` has no pointer fields; `btf_fd` is a descriptor borrowed for
    //   the call.
    unsafe { bpf(Cmd::MAP_CREATE, &mut attr) }
        .map(owned_fd)
        .map_err(|e| Error::from_errno(Cmd::MAP_CREATE, e))
}
