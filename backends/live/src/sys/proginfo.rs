//! Program ids, descriptors and info: `BPF_PROG_GET_NEXT_ID`, `BPF_PROG_GET_FD_BY_ID`
//! and `BPF_OBJ_GET_INFO_BY_FD` on a program.

use core::mem::{offset_of, size_of};
use std::os::fd::{BorrowedFd, OwnedFd};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::attr::*;
use super::{addr_of_mut, bpf, fd_u32, owned_fd, Cmd};
use crate::error::{Errno, Error, Result};

/// `struct bpf_prog_info`, as `BPF_OBJ_GET_INFO_BY_FD` fills it, up to `run_cnt` (208
/// bytes: the layout since Linux 5.1; older kernels leave the tail zero).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct RawProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
    ifindex: u32,
    /// `gpl_compatible:1` and 31 bits of padding.
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    nr_prog_tags: u32,
    prog_tags: u64,
    run_time_ns: u64,
    run_cnt: u64,
}

layout!(RawProgInfo, 208, prog_type @ 0, id @ 4, tag @ 8, jited_prog_len @ 16,
    xlated_prog_len @ 20, jited_prog_insns @ 24, xlated_prog_insns @ 32, load_time @ 40,
    created_by_uid @ 48, nr_map_ids @ 52, map_ids @ 56, name @ 64, ifindex @ 80,
    gpl_compatible @ 84, netns_dev @ 88, netns_ino @ 96, nr_jited_ksyms @ 104,
    nr_jited_func_lens @ 108, jited_ksyms @ 112, jited_func_lens @ 120, btf_id @ 128,
    func_info_rec_size @ 132, func_info @ 136, nr_func_info @ 144, nr_line_info @ 148,
    line_info @ 152, jited_line_info @ 160, nr_jited_line_info @ 168,
    line_info_rec_size @ 172, jited_line_info_rec_size @ 176, nr_prog_tags @ 180,
    prog_tags @ 184, run_time_ns @ 192, run_cnt @ 200);

/// What `BPF_OBJ_GET_INFO_BY_FD` says about a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgObject {
    /// `id`.
    pub id: u32,
    /// `type` (`enum bpf_prog_type`).
    pub prog_type: u32,
    /// `name`, NUL-padded.
    pub name: [u8; 16],
    /// `tag`.
    pub tag: [u8; 8],
    /// `gpl_compatible`.
    pub gpl_compatible: bool,
    /// `xlated_prog_len` (0 without `CAP_BPF`).
    pub xlated_len: u32,
    /// `jited_prog_len` (0 when not jitted, or without `CAP_BPF`).
    pub jited_len: u32,
    /// `load_time`: `CLOCK_BOOTTIME` nanoseconds when it was loaded.
    pub load_time: u64,
    /// `created_by_uid`.
    pub uid: u32,
    /// `map_ids`: the maps it uses.
    pub map_ids: Vec<u32>,
    /// `btf_id`; 0 when it has no BTF.
    pub btf_id: u32,
    /// `run_time_ns` (non-zero only while `kernel.bpf_stats_enabled`).
    pub run_time_ns: u64,
    /// `run_cnt`.
    pub run_cnt: u64,
}

/// Cap on the map ids asked for: the kernel's `MAX_USED_MAPS` is 64.
const MAX_MAP_IDS: u32 = 4096;

/// `BPF_PROG_GET_NEXT_ID`—The smallest program id above `start`, or `None` when there
/// is none.
///
/// # Errors
/// [`Error::Denied`] without `CAP_SYS_ADMIN`; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_get_next_id(start: u32) -> Result<Option<u32>> {
    let mut attr = IdAttr {
        id: start,
        ..IdAttr::default()
    };
    // SAFETY:
    // - `IdAttr` has no pointer fields.
    match unsafe { bpf(Cmd::PROG_GET_NEXT_ID, &mut attr) } {
        Ok(_) => Ok(Some(attr.next_id)),
        Err(e) if e == Errno::ENOENT => Ok(None),
        Err(e) => Err(Error::from_errno(Cmd::PROG_GET_NEXT_ID, e)),
    }
}

/// `BPF_PROG_GET_FD_BY_ID`—A descriptor for the program with id `id`, or `None` when no
/// program has that id (any more).
///
/// # Errors
/// [`Error::Denied`] without `CAP_SYS_ADMIN`; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_get_fd_by_id(id: u32) -> Result<Option<OwnedFd>> {
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    // SAFETY:
    // - `IdAttr` has no pointer fields.
    match unsafe { bpf(Cmd::PROG_GET_FD_BY_ID, &mut attr) } {
        Ok(fd) => Ok(Some(owned_fd(fd))),
        Err(e) if e == Errno::ENOENT => Ok(None),
        Err(e) => Err(Error::from_errno(Cmd::PROG_GET_FD_BY_ID, e)),
    }
}

/// One `BPF_OBJ_GET_INFO_BY_FD` with room for `ids.len()` map ids.
fn query(fd: BorrowedFd<'_>, ids: &mut [u32]) -> Result<RawProgInfo> {
    let mut info = RawProgInfo {
        nr_map_ids: u32::try_from(ids.len()).unwrap_or(0),
        map_ids: if ids.is_empty() {
            0
        } else {
            addr_of_mut(ids.as_mut_bytes())
        },
        ..RawProgInfo::default()
    };
    let info_buf = info.as_mut_bytes();
    let mut attr = InfoAttr {
        bpf_fd: fd_u32(fd),
        info_len: u32::try_from(info_buf.len()).unwrap_or(0),
        info: addr_of_mut(info_buf),
    };
    // SAFETY:
    // - `attr.info` points to `info` (`info_len` bytes, a live local not otherwise
    //   borrowed during the call);
    // - `info.map_ids` is 0 or points to `ids`, `nr_map_ids` u32s, exclusively borrowed;
    //   the kernel writes at most that many;
    // - every other pointer field of `info` is 0 with its count 0, so the kernel writes
    //   nothing else.
    unsafe { bpf(Cmd::OBJ_GET_INFO_BY_FD, &mut attr) }
        .map_err(|e| Error::from_errno(Cmd::OBJ_GET_INFO_BY_FD, e))?;
    Ok(info)
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a program descriptor—What the kernel says about it, with
/// the ids of the maps it uses.
///
/// Two calls when the program uses maps: the first learns how many, the second copies
/// their ids (a program's maps do not change once it is loaded).
///
/// # Errors
/// [`Error::Sys`] (`EINVAL` when `fd` is not a program); [`Error::LimitExceeded`] for
/// more than 4,096 map ids.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_info(fd: BorrowedFd<'_>) -> Result<ProgObject> {
    let first = query(fd, &mut [])?;
    let n = first.nr_map_ids;
    if n > MAX_MAP_IDS {
        return Err(Error::LimitExceeded {
            what: "map ids of one program",
            limit: u64::from(MAX_MAP_IDS),
            value: u64::from(n),
        });
    }
    let mut ids = vec![0u32; usize::try_from(n).unwrap_or(0)];
    let info = if ids.is_empty() {
        first
    } else {
        query(fd, &mut ids)?
    };
    ids.truncate(usize::try_from(info.nr_map_ids.min(n)).unwrap_or(0));
    Ok(ProgObject {
        id: info.id,
        prog_type: info.prog_type,
        name: info.name,
        tag: info.tag,
        gpl_compatible: info.gpl_compatible & 1 != 0,
        xlated_len: info.xlated_prog_len,
        jited_len: info.jited_prog_len,
        load_time: info.load_time,
        uid: info.created_by_uid,
        map_ids: ids,
        btf_id: info.btf_id,
        run_time_ns: info.run_time_ns,
        run_cnt: info.run_cnt,
    })
}
