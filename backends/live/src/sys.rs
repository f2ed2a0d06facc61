//! The syscall edge: every `bpf(2)` call, every `mmap(2)` of a map, and the reads of
//! mapped memory. The only module of this crate with `unsafe` code.
//!
//! Rules kept here:
//! - one `bpf()` call site (the private `bpf` function); its return value is converted
//!   by one helper (`check`), `-1` becoming the thread's `errno`;
//! - each command's argument is a `#[repr(C)]` zerocopy struct with explicit padding
//!   fields, whose offsets are checked at compile time against the kernel's uapi header;
//! - pointers handed to the kernel come from Rust buffers whose lengths were checked
//!   against what the kernel will read or write, which is derived from the map's own
//!   `bpf_map_info` (see [`MapHandle`]);
//! - descriptors are [`OwnedFd`]s;
//! - mapped memory that the kernel or BPF programs write concurrently is never a Rust
//!   reference: it is copied out with volatile reads, or read through atomics.

#![allow(unsafe_code)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use mapwalk_core::bpf::BPF_F_MMAPABLE;
use mapwalk_core::MapType;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::cpus;
use crate::error::{Errno, Error, Result};

/// A `bpf(2)` command (`enum bpf_cmd`), as an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cmd(pub u32);

impl Cmd {
    /// `BPF_MAP_CREATE`.
    pub const MAP_CREATE: Self = Self(0);
    /// `BPF_MAP_LOOKUP_ELEM`.
    pub const MAP_LOOKUP_ELEM: Self = Self(1);
    /// `BPF_MAP_UPDATE_ELEM`.
    pub const MAP_UPDATE_ELEM: Self = Self(2);
    /// `BPF_MAP_DELETE_ELEM`.
    pub const MAP_DELETE_ELEM: Self = Self(3);
    /// `BPF_MAP_GET_NEXT_KEY`.
    pub const MAP_GET_NEXT_KEY: Self = Self(4);
    /// `BPF_PROG_LOAD`.
    pub const PROG_LOAD: Self = Self(5);
    /// `BPF_PROG_TEST_RUN`.
    pub const PROG_TEST_RUN: Self = Self(10);
    /// `BPF_MAP_GET_NEXT_ID`.
    pub const MAP_GET_NEXT_ID: Self = Self(12);
    /// `BPF_MAP_GET_FD_BY_ID`.
    pub const MAP_GET_FD_BY_ID: Self = Self(14);
    /// `BPF_OBJ_GET_INFO_BY_FD`.
    pub const OBJ_GET_INFO_BY_FD: Self = Self(15);
    /// `BPF_BTF_GET_FD_BY_ID`.
    pub const BTF_GET_FD_BY_ID: Self = Self(19);
    /// `BPF_MAP_LOOKUP_BATCH`.
    pub const MAP_LOOKUP_BATCH: Self = Self(24);
    /// `BPF_MAP_UPDATE_BATCH`.
    pub const MAP_UPDATE_BATCH: Self = Self(26);

    /// The command's name in the uapi header (`"BPF_MAP_LOOKUP_ELEM"`), or `None`.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "BPF_MAP_CREATE",
            1 => "BPF_MAP_LOOKUP_ELEM",
            2 => "BPF_MAP_UPDATE_ELEM",
            3 => "BPF_MAP_DELETE_ELEM",
            4 => "BPF_MAP_GET_NEXT_KEY",
            5 => "BPF_PROG_LOAD",
            10 => "BPF_PROG_TEST_RUN",
            12 => "BPF_MAP_GET_NEXT_ID",
            14 => "BPF_MAP_GET_FD_BY_ID",
            15 => "BPF_OBJ_GET_INFO_BY_FD",
            19 => "BPF_BTF_GET_FD_BY_ID",
            24 => "BPF_MAP_LOOKUP_BATCH",
            26 => "BPF_MAP_UPDATE_BATCH",
            _ => return None,
        })
    }

    /// What the caller lacks when the kernel refuses this command with `EPERM` or
    /// `EACCES`.
    pub const fn needs(self) -> &'static str {
        match self.0 {
            // kernel/bpf/syscall.c: bpf_obj_get_next_id() and the *_GET_FD_BY_ID
            // commands check capable(CAP_SYS_ADMIN).
            12 | 14 | 19 => "CAP_SYS_ADMIN",
            // Map creation and program loading need CAP_BPF when
            // kernel.unprivileged_bpf_disabled is set (the default).
            0 | 5 => "CAP_BPF",
            10 => "the right to run this program type (CAP_BPF, CAP_NET_ADMIN or CAP_SYS_ADMIN)",
            1 | 24 | 4 => {
                "read access to the map (it was created with BPF_F_WRONLY, or an LSM refused)"
            }
            2 | 3 => {
                "write access to the map (it is frozen or was created with BPF_F_RDONLY, \
                 or an LSM refused)"
            }
            _ => "a privilege the kernel did not name",
        }
    }
}

impl core::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Cmd({})", self.0),
        }
    }
}

impl core::fmt::Display for Cmd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

// ---------------------------------------------------------------------------------------
// Command arguments (members of `union bpf_attr`). Offsets checked below against
// include/uapi/linux/bpf.h.

/// `BPF_MAP_CREATE`'s part of `union bpf_attr`, up to `map_extra`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

/// The element commands' part (`BPF_MAP_LOOKUP_ELEM`, `BPF_MAP_UPDATE_ELEM`,
/// `BPF_MAP_DELETE_ELEM`, `BPF_MAP_GET_NEXT_KEY`): `map_fd`, `key`, `value` or `next_key`, `flags`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `BPF_MAP_*_BATCH`'s part (`struct { in_batch, out_batch, keys, values, count, map_fd,
/// elem_flags, flags } batch`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// The `*_GET_NEXT_ID` / `*_GET_FD_BY_ID` part: `start_id`/`map_id`/`btf_id`, `next_id`,
/// `open_flags`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD`'s part: `bpf_fd`, `info_len`, `info`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `BPF_PROG_LOAD`'s part, up to `prog_name`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// `BPF_PROG_TEST_RUN`'s part, up to `duration`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, IntoBytes, FromBytes, Immutable, KnownLayout)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
}

/// `struct bpf_map_info`, as `BPF_OBJ_GET_INFO_BY_FD` fills it (88 bytes: the layout
/// since Linux 5.16; newer kernels copy only this much, older ones leave the tail zero).
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
pub struct RawMapInfo {
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

/// One BPF instruction (`struct bpf_insn`): `code`, `dst_reg:4 | src_reg:4`, `off`, `imm`.
#[repr(C)]
#[derive(
    Debug, Default, Clone, Copy, PartialEq, Eq, IntoBytes, FromBytes, Immutable, KnownLayout,
)]
pub struct Insn {
    /// The opcode.
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high nibble (little-endian hosts).
    pub regs: u8,
    /// `off`.
    pub off: i16,
    /// `imm`.
    pub imm: i32,
}

macro_rules! layout {
    ($ty:ty, $size:expr, $($field:ident @ $off:expr),* $(,)?) => {
        const _: () = assert!(size_of::<$ty>() == $size);
        $(const _: () = assert!(offset_of!($ty, $field) == $off);)*
    };
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
layout!(ProgLoadAttr, 64, prog_type @ 0, insn_cnt @ 4, insns @ 8, license @ 16,
    log_level @ 24, log_size @ 28, log_buf @ 32, kern_version @ 40, prog_flags @ 44,
    prog_name @ 48);
layout!(TestRunAttr, 40, prog_fd @ 0, retval @ 4, data_size_in @ 8, data_size_out @ 12,
    data_in @ 16, data_out @ 24, repeat @ 32, duration @ 36);
layout!(RawMapInfo, 88, map_type @ 0, id @ 4, key_size @ 8, value_size @ 12,
    max_entries @ 16, map_flags @ 20, name @ 24, ifindex @ 40,
    btf_vmlinux_value_type_id @ 44, netns_dev @ 48, netns_ino @ 56, btf_id @ 64,
    btf_key_type_id @ 68, btf_value_type_id @ 72, map_extra @ 80);
layout!(RawBtfInfo, 32, btf @ 0, btf_size @ 8, id @ 12, name @ 16, name_len @ 24,
    kernel_btf @ 28);
layout!(Insn, 8, code @ 0, regs @ 1, off @ 2, imm @ 4);

// ---------------------------------------------------------------------------------------
// The call site.

/// Converts a raw syscall return value: `-1` (any negative value) becomes the thread's
/// `errno`, anything else the non-negative result.
fn check(ret: libc::c_long) -> Result<i32, Errno> {
    if ret < 0 {
        return Err(Errno::last());
    }
    // bpf() returns 0 or a file descriptor, both ints.
    i32::try_from(ret).map_err(|_| Errno(libc::ERANGE))
}

/// The one `bpf(2)` call.
///
/// # Safety
/// Every pointer field of `attr` that `cmd` reads from or writes to must be valid for the
/// number of bytes the kernel will access for that command and object (for example
/// `key_size` bytes at `key` for `BPF_MAP_LOOKUP_ELEM`), and must stay valid and
/// unaliased by Rust references for the duration of the call.
unsafe fn bpf<A: IntoBytes + FromBytes + Immutable>(cmd: Cmd, attr: &mut A) -> Result<i32, Errno> {
    let size = libc::c_uint::try_from(size_of::<A>()).map_err(|_| Errno(libc::E2BIG))?;
    let cmd_arg = libc::c_int::try_from(cmd.0).map_err(|_| Errno(libc::EINVAL))?;
    let attr_ptr = ptr::from_mut(attr).cast::<c_void>();
    // SAFETY:
    // - `attr_ptr` points to a live, exclusively borrowed `A` of exactly `size` bytes,
    //   which the kernel may read and write back (some commands return values in it);
    //   `A: IntoBytes + FromBytes` so any bytes the kernel writes form a valid `A`;
    // - the pointers inside `attr` are valid for what `cmd` accesses: the caller's
    //   obligation (this function's `# Safety`).
    let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd_arg, attr_ptr, size) };
    check(ret)
}

/// A kernel address field (`__aligned_u64`) for a buffer.
fn addr_of(buf: &[u8]) -> u64 {
    buf.as_ptr() as usize as u64
}

/// A kernel address field for a buffer the kernel writes.
fn addr_of_mut(buf: &mut [u8]) -> u64 {
    buf.as_mut_ptr() as usize as u64
}

/// Wraps a descriptor that `bpf()` just returned.
fn owned_fd(raw: i32) -> OwnedFd {
    // SAFETY:
    // - `raw` is a non-negative descriptor the kernel created for this call and
    //   returned to us (checked by `check`); nothing else owns it, so `OwnedFd` may
    //   close it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

fn fd_u32(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are non-negative.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------
// Object commands.

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
pub fn map_info(fd: BorrowedFd<'_>) -> Result<RawMapInfo> {
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

// ---------------------------------------------------------------------------------------
// Map element commands, bound to a map whose sizes are known.

/// `BPF_ANY`: create or update.
pub const BPF_ANY: u64 = 0;
/// `BPF_NOEXIST`: create only.
pub const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only.
pub const BPF_EXIST: u64 = 2;
/// `BPF_F_RDONLY`: a map that the syscall side cannot write.
pub const BPF_F_RDONLY: u32 = 1 << 3;
/// `BPF_F_NO_PREALLOC`: a hash map allocated on demand.
pub const BPF_F_NO_PREALLOC: u32 = 1;
/// `BPF_F_SEGV_ON_FAULT`: an arena that sends SIGSEGV instead of allocating a page when
/// user space touches a page it has not got.
pub const BPF_F_SEGV_ON_FAULT: u32 = 1 << 17;

/// How many bytes the kernel copies for one value of a map of type `t`, mirroring
/// `bpf_map_value_size()` in kernel/bpf/syscall.c; `None` for types this crate does not
/// know (a new per-CPU type would copy more than `value_size`).
fn syscall_value_bytes(t: MapType, value_size: u32, ncpus: usize) -> Option<usize> {
    let vs = usize::try_from(value_size).ok()?;
    match t {
        MapType::PERCPU_HASH
        | MapType::LRU_PERCPU_HASH
        | MapType::PERCPU_ARRAY
        | MapType::PERCPU_CGROUP_STORAGE => vs.checked_next_multiple_of(8)?.checked_mul(ncpus),
        MapType::PROG_ARRAY
        | MapType::PERF_EVENT_ARRAY
        | MapType::CGROUP_ARRAY
        | MapType::ARRAY_OF_MAPS
        | MapType::HASH_OF_MAPS => Some(size_of::<u32>()),
        t if t.name().is_some() => Some(vs),
        _ => None,
    }
}

/// A map descriptor together with the sizes the kernel uses for it.
///
/// Built only by [`MapHandle::from_fd`], which asks the kernel about that very
/// descriptor, so the element commands below know how many bytes the kernel will read
/// at a key pointer and write at a value pointer. Holding the descriptor keeps the map
/// alive: it cannot be freed (or its id reused) while a `MapHandle` exists.
#[derive(Debug)]
pub struct MapHandle {
    fd: OwnedFd,
    info: RawMapInfo,
    key_bytes: usize,
    /// Bytes per value in the syscall ABI; `None` for an unknown map type.
    value_bytes: Option<usize>,
}

/// The result of one `BPF_MAP_LOOKUP_BATCH` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// `count` elements were copied and there are more: feed `out_batch` back.
    More(u32),
    /// `count` elements were copied (possibly 0) and the map is exhausted (`ENOENT`).
    Done(u32),
    /// The buffers are too small for one bucket (`ENOSPC`): grow them.
    NoSpace,
    /// The kernel or this map type does not do batches (`EINVAL`, `ENOTSUPP`,
    /// `EOPNOTSUPP`): fall back to `BPF_MAP_GET_NEXT_KEY`.
    Unsupported(Errno),
}

impl MapHandle {
    /// Takes ownership of a map descriptor and asks the kernel for its
    /// `struct bpf_map_info` (`BPF_OBJ_GET_INFO_BY_FD`).
    ///
    /// # Errors
    /// [`Error::Sys`] when `fd` is not a BPF map; [`Error::Cpus`] when a per-CPU map's
    /// CPU count cannot be read.
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let info = map_info(fd.as_fd())?;
        let t = MapType(info.map_type);
        let ncpus = if t.is_percpu() {
            cpus::possible()?.count()
        } else {
            1
        };
        Ok(Self {
            key_bytes: usize::try_from(info.key_size).unwrap_or(usize::MAX),
            value_bytes: syscall_value_bytes(t, info.value_size, ncpus),
            fd,
            info,
        })
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The map's `struct bpf_map_info`, as read when the handle was made.
    pub fn info(&self) -> &RawMapInfo {
        &self.info
    }

    /// The map type.
    pub fn map_type(&self) -> MapType {
        MapType(self.info.map_type)
    }

    /// Bytes per key.
    pub fn key_bytes(&self) -> usize {
        self.key_bytes
    }

    /// Bytes per value as the syscalls copy them (all CPUs' copies for per-CPU maps),
    /// or `None` for a map type this crate does not know.
    pub fn value_bytes(&self) -> Option<usize> {
        self.value_bytes
    }

    fn value_bytes_for(&self, op: &'static str) -> Result<usize> {
        self.value_bytes.ok_or(Error::Unsupported {
            id: self.info.id,
            map_type: self.map_type(),
            op,
        })
    }

    fn check_len(need: usize, have: usize) -> Result<()> {
        if have == need {
            Ok(())
        } else {
            Err(Error::BufferSize { need, have })
        }
    }

    /// `BPF_MAP_LOOKUP_ELEM`—Copies the value at `key` into `value`; `false` when the
    /// key is absent (`ENOENT`).
    ///
    /// `key` must be [`key_bytes`](Self::key_bytes) long and `value`
    /// [`value_bytes`](Self::value_bytes) long.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`] (unknown map type),
    /// [`Error::Denied`], [`Error::Sys`].
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool> {
        let vb = self.value_bytes_for("BPF_MAP_LOOKUP_ELEM")?;
        Self::check_len(self.key_bytes, key.len())?;
        Self::check_len(vb, value.len())?;
        let mut attr = ElemAttr {
            map_fd: fd_u32(self.fd()),
            key: addr_of(key),
            value: addr_of_mut(value),
            ..ElemAttr::default()
        };
        // SAFETY:
        // - `attr.key` points to `key`, `key_size` bytes (checked above against the
        //   map's own info), which the kernel only reads;
        // - `attr.value` points to `value`, exclusively borrowed, of exactly the bytes
        //   the kernel copies for this map type (`bpf_map_value_size()`, mirrored by
        //   `syscall_value_bytes` for known types only).
        match unsafe { bpf(Cmd::MAP_LOOKUP_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e == Errno::ENOENT => Ok(false),
            Err(e) => Err(Error::from_errno(Cmd::MAP_LOOKUP_ELEM, e)),
        }
    }

    /// `BPF_MAP_GET_NEXT_KEY`—Writes the key after `key` (the first key when `key` is
    /// `None`, or when `key` is no longer in the map) into `next`; `false` when there
    /// is none (`ENOENT`).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Denied`], [`Error::Sys`] (`EOPNOTSUPP` or
    /// `EINVAL` for map types without keys to walk).
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<bool> {
        if let Some(k) = key {
            Self::check_len(self.key_bytes, k.len())?;
        }
        Self::check_len(self.key_bytes, next.len())?;
        let mut attr = ElemAttr {
            map_fd: fd_u32(self.fd()),
            key: key.map_or(0, addr_of),
            value: addr_of_mut(next),
            ..ElemAttr::default()
        };
        // SAFETY:
        // - `attr.key` is 0 (the kernel then starts at the first key) or points to
        //   `key_size` readable bytes (checked);
        // - `attr.value` (`next_key`) points to `next`, exclusively borrowed, of
        //   `key_size` bytes (checked), which is what the kernel writes.
        match unsafe { bpf(Cmd::MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e == Errno::ENOENT => Ok(false),
            Err(e) => Err(Error::from_errno(Cmd::MAP_GET_NEXT_KEY, e)),
        }
    }

    /// Bytes of the `in_batch`/`out_batch` tokens: a hash map writes a `u32` bucket
    /// index, an array a whole key.
    pub fn batch_token_bytes(&self) -> usize {
        self.key_bytes.max(8)
    }

    /// `BPF_MAP_LOOKUP_BATCH`—Copies up to `capacity` elements, starting where
    /// `in_batch` left off (`None`: from the start), into `keys` and `values`, and
    /// writes the position to resume from into `out_batch`.
    ///
    /// `keys` must hold `capacity` keys, `values` `capacity` values
    /// ([`value_bytes`](Self::value_bytes) each), `in_batch`/`out_batch`
    /// [`batch_token_bytes`](Self::batch_token_bytes).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`], [`Error::Denied`], [`Error::Sys`].
    /// Kernels and map types without batch support give [`Batch::Unsupported`], not an
    /// error.
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn lookup_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        capacity: u32,
    ) -> Result<Batch> {
        let vb = self.value_bytes_for("BPF_MAP_LOOKUP_BATCH")?;
        let n = usize::try_from(capacity).map_err(|_| Error::BufferSize {
            need: usize::MAX,
            have: keys.len(),
        })?;
        let tb = self.batch_token_bytes();
        if let Some(b) = in_batch {
            Self::check_len(tb, b.len())?;
        }
        Self::check_len(tb, out_batch.len())?;
        let overflow = Error::BufferSize {
            need: usize::MAX,
            have: keys.len(),
        };
        Self::check_len(
            self.key_bytes.checked_mul(n).ok_or(overflow.clone())?,
            keys.len(),
        )?;
        Self::check_len(vb.checked_mul(n).ok_or(overflow)?, values.len())?;
        let mut attr = BatchAttr {
            in_batch: in_batch.map_or(0, addr_of),
            out_batch: addr_of_mut(out_batch),
            keys: addr_of_mut(keys),
            values: addr_of_mut(values),
            count: capacity,
            map_fd: fd_u32(self.fd()),
            ..BatchAttr::default()
        };
        // SAFETY:
        // - `in_batch` is 0 or points to `batch_token_bytes()` readable bytes, at least
        //   the `u32` (hash maps) or `key_size` bytes (arrays) the kernel reads;
        // - `out_batch` points to as many writable bytes, at least what it writes;
        // - `keys` and `values` are exclusively borrowed and hold `count` keys and
        //   `count` values of the sizes the kernel copies (checked above); the kernel
        //   never copies more than `count` elements.
        match unsafe { bpf(Cmd::MAP_LOOKUP_BATCH, &mut attr) } {
            Ok(_) => Ok(Batch::More(attr.count.min(capacity))),
            Err(e) if e == Errno::ENOENT => Ok(Batch::Done(attr.count.min(capacity))),
            Err(e) if e == Errno::ENOSPC => Ok(Batch::NoSpace),
            Err(e) if e == Errno::EINVAL || e == Errno::ENOTSUPP || e == Errno::EOPNOTSUPP => {
                Ok(Batch::Unsupported(e))
            }
            Err(e) => Err(Error::from_errno(Cmd::MAP_LOOKUP_BATCH, e)),
        }
    }

    /// `BPF_MAP_UPDATE_ELEM`—Stores `value` at `key`, with `flags` [`BPF_ANY`],
    /// [`BPF_NOEXIST`] or [`BPF_EXIST`].
    ///
    /// For per-CPU maps `value` holds every possible CPU's copy, each padded to a
    /// multiple of 8 bytes.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`], [`Error::Denied`] (frozen or
    /// read-only maps), [`Error::Sys`] (`ENOENT` with `BPF_EXIST`, `EEXIST` with
    /// `BPF_NOEXIST`, `E2BIG` when the map is full).
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Result<()> {
        let vb = self.value_bytes_for("BPF_MAP_UPDATE_ELEM")?;
        Self::check_len(self.key_bytes, key.len())?;
        Self::check_len(vb, value.len())?;
        let mut attr = ElemAttr {
            map_fd: fd_u32(self.fd()),
            key: addr_of(key),
            value: addr_of(value),
            flags,
            ..ElemAttr::default()
        };
        // SAFETY:
        // - `attr.key` and `attr.value` point to `key_size` and value bytes (checked
        //   against the map's info), which the kernel only reads.
        unsafe { bpf(Cmd::MAP_UPDATE_ELEM, &mut attr) }
            .map(|_| ())
            .map_err(|e| Error::from_errno(Cmd::MAP_UPDATE_ELEM, e))
    }
}

impl MapHandle {
    /// `BPF_MAP_UPDATE_BATCH`—Stores `keys.len() / key_size` elements in one call,
    /// the `i`-th value at the `i`-th key, each as [`BPF_ANY`] would (created or
    /// replaced). Returns how many were stored (all of them). When an element fails,
    /// the kernel stops there: the elements before it stay stored and the call returns
    /// the error.
    ///
    /// There are no per-element flags: kernels that check the batch's `elem_flags`
    /// strictly (6.18 does) refuse [`BPF_NOEXIST`] and [`BPF_EXIST`] there with
    /// `EINVAL`.
    ///
    /// `keys` must hold a whole number of keys and `values` as many values
    /// ([`value_bytes`](Self::value_bytes) each).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`], [`Error::Denied`], [`Error::Sys`]
    /// (`EINVAL` for map types without batches, `E2BIG` when the map is full).
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<u32> {
        let vb = self.value_bytes_for("BPF_MAP_UPDATE_BATCH")?;
        let kb = self.key_bytes.max(1);
        let n = keys.len() / kb;
        Self::check_len(n.saturating_mul(kb), keys.len())?;
        Self::check_len(n.saturating_mul(vb), values.len())?;
        let count = u32::try_from(n).map_err(|_| Error::BufferSize {
            need: usize::try_from(u32::MAX).unwrap_or(usize::MAX),
            have: n,
        })?;
        if count == 0 {
            return Ok(0);
        }
        let mut attr = BatchAttr {
            keys: addr_of(keys),
            values: addr_of(values),
            count,
            map_fd: fd_u32(self.fd()),
            ..BatchAttr::default()
        };
        // SAFETY:
        // - `attr.keys` and `attr.values` point to `count` keys and `count` values of
        //   the sizes the kernel reads (checked above against the map's info); the
        //   kernel only reads them and never more than `count` elements;
        // - `in_batch` and `out_batch` are 0: the update command does not use them.
        match unsafe { bpf(Cmd::MAP_UPDATE_BATCH, &mut attr) } {
            Ok(_) => Ok(attr.count.min(count)),
            Err(e) => Err(Error::from_errno(Cmd::MAP_UPDATE_BATCH, e)),
        }
    }
}

impl MapHandle {
    /// `BPF_MAP_DELETE_ELEM`—Removes `key`; `false` when it was not there (`ENOENT`).
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Denied`], [`Error::Sys`] (`EINVAL` for arrays,
    /// whose elements cannot be deleted).
    ///
    /// # References
    /// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        Self::check_len(self.key_bytes, key.len())?;
        let mut attr = ElemAttr {
            map_fd: fd_u32(self.fd()),
            key: addr_of(key),
            ..ElemAttr::default()
        };
        // SAFETY:
        // - `attr.key` points to `key_size` bytes (checked against the map's info),
        //   which the kernel only reads; the command uses no other pointer.
        match unsafe { bpf(Cmd::MAP_DELETE_ELEM, &mut attr) } {
            Ok(_) => Ok(true),
            Err(e) if e == Errno::ENOENT => Ok(false),
            Err(e) => Err(Error::from_errno(Cmd::MAP_DELETE_ELEM, e)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Creating maps and running programs (for tests, benchmarks and tools).

/// What [`map_create`] creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapCreate<'a> {
    /// The map type.
    pub map_type: MapType,
    /// Key bytes.
    pub key_size: u32,
    /// Value bytes.
    pub value_size: u32,
    /// `max_entries` (for arenas: pages; for ring buffers: data bytes, a power of two
    /// and a multiple of the page size).
    pub max_entries: u32,
    /// `map_flags`.
    pub map_flags: u32,
    /// The name: at most 15 bytes of `[A-Za-z0-9_.]` (longer names are cut).
    pub name: &'a str,
    /// `map_extra` (an arena's fixed user address, a bloom filter's hash count).
    pub map_extra: u64,
}

impl<'a> MapCreate<'a> {
    /// A map of `map_type` with the given sizes, no flags.
    pub fn new(
        map_type: MapType,
        name: &'a str,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
    ) -> Self {
        Self {
            map_type,
            key_size,
            value_size,
            max_entries,
            map_flags: 0,
            name,
            map_extra: 0,
        }
    }

    /// The same with `map_flags` set.
    #[must_use]
    pub fn flags(mut self, map_flags: u32) -> Self {
        self.map_flags = map_flags;
        self
    }

    /// The same with `map_extra` set.
    #[must_use]
    pub fn extra(mut self, map_extra: u64) -> Self {
        self.map_extra = map_extra;
        self
    }
}

/// `BPF_MAP_CREATE`—Creates a map; it lives as long as a descriptor (or a pin, or a
/// program) refers to it.
///
/// # Errors
/// [`Error::Denied`] without `CAP_BPF`; [`Error::Sys`] (`EINVAL` for bad sizes or flags).
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn map_create(spec: &MapCreate<'_>) -> Result<OwnedFd> {
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
        ..MapCreateAttr::default()
    };
    // SAFETY:
    // - `MapCreateAttr` has no pointer fields (`map_extra` is an address the kernel only
    //   records for arenas; it is never dereferenced by this call).
    unsafe { bpf(Cmd::MAP_CREATE, &mut attr) }
        .map(owned_fd)
        .map_err(|e| Error::from_errno(Cmd::MAP_CREATE, e))
}

/// `BPF_PROG_TYPE_SOCKET_FILTER`.
pub const PROG_TYPE_SOCKET_FILTER: u32 = 1;

/// `BPF_PROG_LOAD`—Loads a program of `prog_type` with license `"GPL"`; on a verifier
/// rejection the error's text holds the verifier log.
///
/// # Errors
/// [`Error::Denied`] without `CAP_BPF`; [`Error::Verifier`] with the log when the
/// verifier rejects the program; [`Error::Sys`] otherwise.
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_load(prog_type: u32, name: &str, insns: &[Insn]) -> Result<OwnedFd> {
    const LICENSE: &[u8] = b"GPL\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().take(15).zip(name.bytes()) {
        *d = s;
    }
    let mut attr = ProgLoadAttr {
        prog_type,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| Error::BufferSize {
            need: u32::MAX as usize,
            have: insns.len(),
        })?,
        insns: addr_of(insns.as_bytes()),
        license: addr_of(LICENSE),
        log_level: 1,
        log_size: u32::try_from(log.len()).unwrap_or(0),
        log_buf: addr_of_mut(&mut log),
        prog_name,
        ..ProgLoadAttr::default()
    };
    // SAFETY:
    // - `insns` points to `insn_cnt` instructions of 8 bytes, read only;
    // - `license` points to a NUL-terminated static string;
    // - `log_buf` points to `log_size` writable bytes, exclusively borrowed.
    match unsafe { bpf(Cmd::PROG_LOAD, &mut attr) } {
        Ok(fd) => Ok(owned_fd(fd)),
        Err(e) if e == Errno::EACCES || e == Errno::EINVAL => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(log.get(..end).unwrap_or_default()).into_owned();
            if text.is_empty() {
                Err(Error::from_errno(Cmd::PROG_LOAD, e))
            } else {
                Err(Error::Verifier {
                    errno: e,
                    log: text,
                })
            }
        }
        Err(e) => Err(Error::from_errno(Cmd::PROG_LOAD, e)),
    }
}

/// `BPF_PROG_TEST_RUN`—Runs a program once on `data` (for a socket filter: a packet of
/// at least 14 bytes) and returns its return value.
///
/// # Errors
/// [`Error::Denied`], [`Error::Sys`].
///
/// # References
/// - [bpf(2)](https://man7.org/linux/man-pages/man2/bpf.2.html)
pub fn prog_test_run(prog: BorrowedFd<'_>, data: &[u8]) -> Result<u32> {
    let mut attr = TestRunAttr {
        prog_fd: fd_u32(prog),
        data_size_in: u32::try_from(data.len()).map_err(|_| Error::BufferSize {
            need: u32::MAX as usize,
            have: data.len(),
        })?,
        data_in: addr_of(data),
        repeat: 1,
        ..TestRunAttr::default()
    };
    // SAFETY:
    // - `data_in` points to `data_size_in` readable bytes; `data_out` and `ctx_*` are 0,
    //   so the kernel writes nothing through pointers.
    unsafe { bpf(Cmd::PROG_TEST_RUN, &mut attr) }
        .map_err(|e| Error::from_errno(Cmd::PROG_TEST_RUN, e))?;
    Ok(attr.retval)
}

// ---------------------------------------------------------------------------------------
// Memory maps of map descriptors.

/// The page size.
pub fn page_size() -> usize {
    // SAFETY:
    // - `sysconf` has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// A read-only shared mapping of a map descriptor, unmapped on drop.
///
/// The memory is written concurrently by BPF programs and the kernel, so it is never
/// handed out as a Rust reference: [`copy_out`](Self::copy_out) copies with volatile
/// reads, the positions of ring buffers are loaded through atomics.
///
/// Every constructor checks that reading any byte of the mapping cannot fault fatally:
/// arrays and ring buffers are fully backed; arena pages that the arena has not got are
/// allocated by the kernel on first touch (and arenas that would send `SIGSEGV`
/// instead, `BPF_F_SEGV_ON_FAULT`, are refused).
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY:
// - `Mapping` owns its mapping exclusively (unmapped once, in `drop`); its methods only
//   read through raw pointers with volatile or atomic accesses, which any thread may do.
unsafe impl Send for Mapping {}
// SAFETY:
// - as for `Send`: `&Mapping` only allows volatile/atomic reads of shared memory.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(hint, len, PROT_READ, MAP_SHARED, fd, 0)`.
    fn map(fd: BorrowedFd<'_>, len: usize, hint: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::BufferSize { need: 1, have: 0 });
        }
        let hint_ptr = ptr::null_mut::<c_void>().wrapping_byte_add(hint);
        // SAFETY:
        // - no existing memory is replaced: no MAP_FIXED, `hint` is only a hint;
        // - `fd` is a live descriptor for the duration of the call; the mapping keeps
        //   its own reference to the map.
        let p = unsafe {
            libc::mmap(
                hint_ptr,
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Mmap {
                what: "mmap",
                errno: Errno::last(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(Error::Mmap {
            what: "mmap",
            errno: Errno(libc::EFAULT),
        })?;
        Ok(Self { ptr, len })
    }

    /// Maps the values of an ARRAY created with `BPF_F_MMAPABLE`: `max_entries`
    /// values of `round_up(value_size, 8)` bytes, from offset 0.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps; [`Error::Mmap`].
    pub fn array(map: &MapHandle) -> Result<Self> {
        let info = map.info();
        if map.map_type() != MapType::ARRAY || info.map_flags & BPF_F_MMAPABLE == 0 {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "mmap (only BPF_F_MMAPABLE arrays)",
            });
        }
        let elem = u64::from(info.value_size).next_multiple_of(8);
        let len = elem
            .checked_mul(u64::from(info.max_entries))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::LimitExceeded {
                what: "mmapable array bytes",
                limit: usize::MAX as u64,
                value: elem,
            })?;
        Self::map(map.fd(), len, 0)
    }

    /// Maps a RINGBUF (or USER_RINGBUF) read-only: the consumer page, the producer
    /// page, then the `max_entries` data bytes twice in a row (so a record that wraps
    /// is contiguous).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps; [`Error::Mmap`].
    pub fn ringbuf(map: &MapHandle) -> Result<Self> {
        let info = map.info();
        if map.map_type() != MapType::RINGBUF && map.map_type() != MapType::USER_RINGBUF {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "ring buffer mmap",
            });
        }
        let data = usize::try_from(info.max_entries).unwrap_or(usize::MAX);
        let len = data
            .checked_mul(2)
            .and_then(|d| d.checked_add(2 * page_size()))
            .ok_or(Error::LimitExceeded {
                what: "ring buffer bytes",
                limit: usize::MAX as u64,
                value: u64::from(info.max_entries),
            })?;
        Self::map(map.fd(), len, 0)
    }

    /// Maps an ARENA read-only at its user address `addr` (every mapping of an arena
    /// must be at the same address).
    ///
    /// # Errors
    /// [`Error::Unsupported`] for other maps and for `BPF_F_SEGV_ON_FAULT` arenas;
    /// [`Error::ArenaAddress`] when the kernel placed the mapping elsewhere (the range is
    /// taken in this process); [`Error::Mmap`] (`EINVAL`, `EBUSY`: `addr` is not the
    /// arena's address).
    pub fn arena(map: &MapHandle, addr: u64) -> Result<Self> {
        let info = map.info();
        if map.map_type() != MapType::ARENA {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "arena mmap",
            });
        }
        if info.map_flags & BPF_F_SEGV_ON_FAULT != 0 {
            return Err(Error::Unsupported {
                id: info.id,
                map_type: map.map_type(),
                op: "reading a BPF_F_SEGV_ON_FAULT arena (a page it has not got kills the reader)",
            });
        }
        let len = usize::try_from(info.max_entries)
            .ok()
            .and_then(|n| n.checked_mul(page_size()))
            .ok_or(Error::LimitExceeded {
                what: "arena bytes",
                limit: usize::MAX as u64,
                value: u64::from(info.max_entries),
            })?;
        let hint = usize::try_from(addr).map_err(|_| Error::ArenaAddress {
            id: info.id,
            wanted: addr,
            got: 0,
        })?;
        let m = Self::map(map.fd(), len, hint)?;
        if m.addr() != addr {
            return Err(Error::ArenaAddress {
                id: info.id,
                wanted: addr,
                got: m.addr(),
            });
        }
        Ok(m)
    }

    /// The mapping's address in this process.
    pub fn addr(&self) -> u64 {
        self.ptr.as_ptr() as usize as u64
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never: constructors refuse length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn range(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfRange {
                offset: offset as u64,
                len: len as u64,
                size: self.len as u64,
            }),
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` with volatile reads (8 bytes at a
    /// time where aligned): the source may change while it is read, so a value that a
    /// BPF program updates concurrently can be torn, never undefined behaviour.
    ///
    /// # Errors
    /// [`Error::OutOfRange`].
    pub fn copy_out(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.range(offset, buf.len())?;
        let base = self.ptr.as_ptr().wrapping_add(offset);
        let mut i = 0usize;
        while i < buf.len() {
            let src = base.wrapping_add(i);
            let rest = buf.len().wrapping_sub(i);
            if src.align_offset(8) == 0 && rest >= 8 {
                // SAFETY:
                // - `src..src + 8` lies inside the mapping (`range` checked
                //   `offset + buf.len() <= len`, and `i + 8 <= buf.len()`), which stays
                //   mapped while `self` lives and reads without a fatal fault (see the
                //   constructors); `src` is 8-byte aligned (checked);
                // - a volatile read of plain bytes: no reference to the shared memory is
                //   formed, concurrent writers cannot cause undefined behaviour.
                let word = unsafe { ptr::read_volatile(src.cast::<u64>()) };
                if let Some(d) = buf.get_mut(i..i.wrapping_add(8)) {
                    d.copy_from_slice(&word.to_ne_bytes());
                }
                i = i.wrapping_add(8);
            } else {
                // SAFETY:
                // - `src` lies inside the mapping (`i < buf.len()`, range checked), which
                //   stays mapped and readable while `self` lives; one byte needs no
                //   alignment; a volatile read forms no reference.
                let byte = unsafe { ptr::read_volatile(src) };
                if let Some(d) = buf.get_mut(i) {
                    *d = byte;
                }
                i = i.wrapping_add(1);
            }
        }
        Ok(())
    }

    /// The address of the `size`-byte word at `offset`: inside the mapping and aligned
    /// to `size`, or the error that says which it is not.
    fn aligned(&self, offset: usize, size: usize) -> Result<*mut u8> {
        self.range(offset, size)?;
        let p = self.ptr.as_ptr().wrapping_add(offset);
        if p.align_offset(size) != 0 {
            return Err(Error::Misaligned {
                offset: offset as u64,
            });
        }
        Ok(p)
    }

    /// Loads the `u64` at `offset` with acquire ordering (`smp_load_acquire`), as ring
    /// buffer consumers read `producer_pos` and `consumer_pos`.
    ///
    /// # Errors
    /// [`Error::OutOfRange`], or [`Error::Misaligned`] when `offset` is not 8-aligned.
    pub fn load_u64_acquire(&self, offset: usize) -> Result<u64> {
        let p = self.aligned(offset, 8)?;
        // SAFETY:
        // - `p` is inside the mapping (range checked), 8-byte aligned (checked), and
        //   valid for the lifetime of the returned reference (it ends in this
        //   statement, while `self` keeps the mapping);
        // - every access to this word, by the kernel and BPF programs too, is atomic or
        //   made while no atomic access can race with it (the kernel writes positions
        //   with `smp_store_release`).
        let atomic = unsafe { AtomicU64::from_ptr(p.cast::<u64>()) };
        Ok(atomic.load(Ordering::Acquire))
    }

    /// Loads the `u32` at `offset` with acquire ordering (a ring buffer record header).
    ///
    /// # Errors
    /// [`Error::OutOfRange`], or [`Error::Misaligned`] when `offset` is not 4-aligned.
    pub fn load_u32_acquire(&self, offset: usize) -> Result<u32> {
        let p = self.aligned(offset, 4)?;
        // SAFETY:
        // - `p` is inside the mapping (range checked) and 4-byte aligned (checked); the
        //   reference lives only for this statement;
        // - the kernel publishes record headers with `smp_store_release`.
        let atomic = unsafe { AtomicU32::from_ptr(p.cast::<u32>()) };
        Ok(atomic.load(Ordering::Acquire))
    }

    /// `mincore(2)` over the mapping: for each page, whether it is resident in *this*
    /// mapping's page tables.
    ///
    /// # Errors
    /// [`Error::Mmap`] with `what = "mincore"`.
    pub fn resident(&self) -> Result<Vec<bool>> {
        let pages = self.len.div_ceil(page_size());
        let mut vec = vec![0u8; pages];
        // SAFETY:
        // - `self.ptr` is page-aligned (an mmap result) and `self.len` bytes from it are
        //   mapped while `self` lives;
        // - `vec` has one writable byte per page of that range, exclusively borrowed.
        let ret = unsafe {
            libc::mincore(
                self.ptr.as_ptr().cast::<c_void>(),
                self.len,
                vec.as_mut_ptr(),
            )
        };
        if ret != 0 {
            return Err(Error::Mmap {
                what: "mincore",
                errno: Errno::last(),
            });
        }
        Ok(vec.iter().map(|b| b & 1 != 0).collect())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY:
        // - `ptr`/`len` are exactly one mapping made by `Mapping::map` and owned by
        //   `self`; no reference into it exists (none is ever created), and it is
        //   unmapped only here, once.
        let _ = unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len) };
    }
}
