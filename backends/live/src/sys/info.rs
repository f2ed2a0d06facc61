//! Object commands: map and BTF ids, descriptors and info.

use core::mem::{offset_of, size_of};
use std::os::fd::{BorrowedFd, OwnedFd};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::attr::*;
use super::{addr_of_mut, bpf, fd_u32, owned_fd, Cmd};
use crate::error::{Errno, Error, Result};

/// `struct bpf_map_info`, as `BPF_OBJ_GET_INFO_BY_FD` fills it (88 bytes: the layout
/// since Linux 5.16; newer kernels copy only this much, older ones leave the tail zero).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
pub(crate) struct RawMapInfo {
    /// `type`: the map type.
    pub map_type: u32,
    /// `id`.
    pub id: u32,
    /// `key_size`.
    pub key_size: u32,
    /// `value_size`.
    pub value_size: u32,
    /// `max_entries`.
    pub max_entries: u32,
    /// `map_flags`.
    pub map_flags: u32,
    /// `name`, NUL-padded.
    pub name: [u8; 16],
    /// `ifindex` (offloaded maps).
    pub ifindex: u32,
    /// `btf_vmlinux_value_type_id` (STRUCT_OPS maps).
    pub btf_vmlinux_value_type_id: u32,
    /// `netns_dev` (offloaded maps).
    pub netns_dev: u64,
    /// `netns_ino` (offloaded maps).
    pub netns_ino: u64,
    /// `btf_id`: the id of the map's BTF object, 0 when it has none.
    pub btf_id: u32,
    /// `btf_key_type_id`.
    pub btf_key_type_id: u32,
    /// `btf_value_type_id`.
    pub btf_value_type_id: u32,
    /// Padding in the uapi struct (`:32`).
    pub _pad: u32,
    /// `map_extra` (bloom filter hash count, arena user address, ...).
    pub map_extra: u64,
}

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct RawBtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

layout!(RawMapInfo, 88, map_type @ 0, id @ 4, key_size @ 8, value_size @ 12,
    max_entries @ 16, map_flags @ 20, name @ 24, ifindex @ 40,
    btf_vmlinux_value_type_id @ 44, netns_dev @ 48, netns_ino @ 56, btf_id @ 64,
    btf_key_type_id @ 68, btf_value_type_id @ 72, map_extra @ 80);
layout!(RawBtfInfo, 32, btf @ 0, btf_size @ 8, id @ 12, name @ 16, name_len @ 24,
    kernel_btf @ 28);

/// `BPF_MAP_GET_NEXT_ID`—The smallest map id above `start`, or `None` when there is none.
///
/// # Errors
/// [`Error::Denied`] without `CAP_SYS_ADMIN`; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn map_get_next_id(start: u32) -> Result<Option<u32>> {
    let mut attr = IdAttr {
        id: start,
        ..IdAttr::default()
    };
    // SAFETY:
    // - `IdAttr` has no pointer fields.
    match unsafe { bpf(Cmd::MAP_GET_NEXT_ID, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e == Errno::ENOENT => Ok(None),
        Err(e) => Err(Error::from_errno(Cmd::MAP_GET_NEXT_ID, e)),
    }
}

/// `BPF_MAP_GET_FD_BY_ID`—A read-write descriptor for the map with id `id`, or `None`
/// when no map has that id (any more).
///
/// # Errors
/// [`Error::Denied`] without `CAP_SYS_ADMIN`; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn map_get_fd_by_id(id: u32) -> Result<Option<OwnedFd>> {
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    // SAFETY:
    // - `IdAttr` has no pointer fields.
    match unsafe { bpf(Cmd::MAP_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => Ok(Some(owned_fd(fd))),
        Err(e) if e == Errno::ENOENT => Ok(None),
        Err(e) => Err(Error::from_errno(Cmd::MAP_GET_FD_BY_ID, e)),
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD`—The `struct bpf_map_info` of the map behind `fd`.
///
/// # Errors
/// [`Error::Sys`] (`EINVAL` when `fd` is not a BPF map).
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub(crate) fn map_info(fd: BorrowedFd<'_>) -> Result<RawMapInfo> {
    let mut info = RawMapInfo::default();
    let info_buf = info.as_mut_bytes();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd),
        info_len: u32::try_from(info_buf.len()).unwrap_or(0),
        info: addr_of_mut(info_buf),
    };
    // SAFETY:
    // - `attr.info` points to `info`, a live local of `attr.info_len` bytes that nothing
    //   else borrows during the call; the kernel writes at most `info_len` bytes.
    unsafe { bpf(Cmd::OBJ_GET_INFO_BY_FD, &mut attr) }
        .map_err(|e| Error::from_errno(Cmd::OBJ_GET_INFO_BY_FD, e))?;
    Ok(info)
}

/// `BPF_BTF_GET_FD_BY_ID`—A descriptor for the BTF object with id `id`, or `None` when
/// there is none.
///
/// # Errors
/// [`Error::Denied`] without `CAP_SYS_ADMIN`; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn btf_get_fd_by_id(id: u32) -> Result<Option<OwnedFd>> {
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    // SAFETY:
    // - `IdAttr` has no pointer fields.
    match unsafe { bpf(Cmd::BTF_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => Ok(Some(owned_fd(fd))),
        Err(e) if e == Errno::ENOENT => Ok(None),
        Err(e) => Err(Error::from_errno(Cmd::BTF_GET_FD_BY_ID, e)),
    }
}

/// What `BPF_OBJ_GET_INFO_BY_FD` says about a BTF object, with its raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BtfObject {
    /// The BTF object's id.
    pub id: u32,
    /// Its name (`"vmlinux"`, a module's name, or empty for program BTF).
    pub name: String,
    /// Whether it is kernel BTF (vmlinux or a module's).
    pub kernel: bool,
    /// The raw BTF, starting with the magic `9f eb 01 00`.
    pub bytes: Vec<u8>,
}

/// Cap on BTF sizes: vmlinux BTF is about 5-6 MiB; 256 MiB is far beyond any real one.
const MAX_BTF_BYTES: u32 = 256 << 20;

/// `BPF_OBJ_GET_INFO_BY_FD` on a BTF descriptor—The raw BTF bytes and what the kernel
/// says about them (`struct bpf_btf_info`).
///
/// Two calls: the first learns `btf_size` and `name_len`, the second copies. A BTF
/// object is immutable, so the sizes cannot change in between.
///
/// # Errors
/// [`Error::Sys`]; [`Error::LimitExceeded`] for a size above 256 MiB.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn btf_info(fd: BorrowedFd<'_>) -> Result<BtfObject> {
    let query = |info: &mut RawBtfInfo| -> Result<()> {
        let info_buf = info.as_mut_bytes();
        let mut attr = InfoAttr {
            bpf_fd: fd_u32(fd),
            info_len: u32::try_from(info_buf.len()).unwrap_or(0),
            info: addr_of_mut(info_buf),
        };
        // SAFETY:
        // - `attr.info` points to `info` (`info_len` bytes, exclusively borrowed);
        // - `info.btf` and `info.name` are 0 (the first call) or point to the buffers
        //   of the second call, of `info.btf_size` and `info.name_len` bytes, which
        //   outlive the call (the caller's locals) and are not otherwise borrowed.
        unsafe { bpf(Cmd::OBJ_GET_INFO_BY_FD, &mut attr) }
            .map(|_| ())
            .map_err(|e| Error::from_errno(Cmd::OBJ_GET_INFO_BY_FD, e))
    };
    let mut info = RawBtfInfo::default();
    query(&mut info)?;
    if info.btf_size > MAX_BTF_BYTES {
        return Err(Error::LimitExceeded {
            what: "BTF object bytes",
            limit: u64::from(MAX_BTF_BYTES),
            value: u64::from(info.btf_size),
        });
    }
    let size = info.btf_size;
    let name_len = info.name_len.min(4096).saturating_add(1);
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(0)];
    let mut name = vec![0u8; usize::try_from(name_len).unwrap_or(0)];
    let mut second = RawBtfInfo {
        btf: addr_of_mut(&mut bytes),
        btf_size: size,
        name: addr_of_mut(&mut name),
        name_len,
        ..RawBtfInfo::default()
    };
    query(&mut second)?;
    bytes.truncate(usize::try_from(second.btf_size.min(size)).unwrap_or(0));
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    name.truncate(end);
    Ok(BtfObject {
        id: second.id,
        name: String::from_utf8_lossy(&name).into_owned(),
        kernel: second.kernel_btf != 0,
        bytes,
    })
}
