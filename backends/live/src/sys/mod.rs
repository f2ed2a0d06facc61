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
// Checks a `#[repr(C)]` struct's size and field offsets at compile time.
macro_rules! layout {
    ($ty:ty, $size:expr, $($field:ident @ $off:expr),* $(,)?) => {
        const _: () = assert!(size_of::<$ty>() == $size);
        $(const _: () = assert!(offset_of!($ty, $field) == $off);)*
    };
}

mod attr;
mod batch;
#[cfg(feature = "test-util")]
mod btf_load;
mod info;
mod map;
mod mmap;
#[cfg(feature = "test-util")]
mod prog;
mod proginfo;

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Errno, Result};

pub use batch::Batch;
#[cfg(feature = "test-util")]
pub use btf_load::{btf_load, map_create_with_btf};
pub(crate) use info::RawMapInfo;
pub use info::{btf_get_fd_by_id, btf_info, map_get_fd_by_id, map_get_next_id, BtfObject};
pub use map::{
    map_create, MapCreate, MapHandle, BPF_ANY, BPF_EXIST, BPF_F_NO_PREALLOC, BPF_F_RDONLY,
    BPF_F_SEGV_ON_FAULT, BPF_NOEXIST,
};
pub use mmap::{page_size, MmapRegion};
#[cfg(feature = "test-util")]
pub use prog::{prog_load, prog_test_run, Insn, PROG_TYPE_SOCKET_FILTER};
pub use proginfo::{prog_get_fd_by_id, prog_get_next_id, prog_info, ProgObject};

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
    /// `BPF_PROG_GET_NEXT_ID`.
    pub const PROG_GET_NEXT_ID: Self = Self(11);
    /// `BPF_MAP_GET_NEXT_ID`.
    pub const MAP_GET_NEXT_ID: Self = Self(12);
    /// `BPF_PROG_GET_FD_BY_ID`.
    pub const PROG_GET_FD_BY_ID: Self = Self(13);
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
            11 => "BPF_PROG_GET_NEXT_ID",
            12 => "BPF_MAP_GET_NEXT_ID",
            13 => "BPF_PROG_GET_FD_BY_ID",
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
            11..=14 | 19 => "CAP_SYS_ADMIN",
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
