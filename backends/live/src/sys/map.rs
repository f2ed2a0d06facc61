//! Map element commands, bound to a map whose sizes are known, and map creation.

use core::mem::size_of;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use mapwalk_core::MapType;

use super::attr::*;
use super::info::{map_info, RawMapInfo};
use super::{addr_of, addr_of_mut, bpf, fd_u32, owned_fd, Cmd};
use crate::cpus;
use crate::error::{Errno, Error, Result};

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
    pub(super) fd: OwnedFd,
    pub(super) info: RawMapInfo,
    pub(super) key_bytes: usize,
    /// Bytes per value in the syscall ABI; `None` for an unknown map type.
    pub(super) value_bytes: Option<usize>,
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
    pub(crate) fn info(&self) -> &RawMapInfo {
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

    pub(super) fn value_bytes_for(&self, op: &'static str) -> Result<usize> {
        self.value_bytes.ok_or(Error::Unsupported {
            id: self.info.id,
            map_type: self.map_type(),
            op,
        })
    }

    pub(super) fn check_len(need: usize, have: usize) -> Result<()> {
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
