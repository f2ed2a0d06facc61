//! Map discovery (`BPF_MAP_GET_NEXT_ID` → `BPF_MAP_GET_FD_BY_ID` →
//! `BPF_OBJ_GET_INFO_BY_FD`), map handles, single-key reads and writes.

use std::os::fd::{BorrowedFd, OwnedFd};

use mapwalk_core::bpf::MapName;
use mapwalk_core::{Kva, MapFlags, MapInfo, MapType};

use crate::cpus;
use crate::error::{Error, Result};
use crate::sys::{self, MapHandle, RawMapInfo};
use crate::value::{Value, ValueRef};

/// What `BPF_OBJ_GET_INFO_BY_FD` says about a map, as the core's [`MapInfo`]: the
/// same type a memory source gives. The syscall reveals no kernel addresses, so the
/// memory part ([`MapInfo::kva`], [`MapInfo::btf`]) stays [`Kva::NULL`].
fn map_info(r: &RawMapInfo) -> MapInfo {
    MapInfo {
        id: r.id,
        map_type: MapType(r.map_type),
        name: MapName::from_field(&r.name),
        map_flags: MapFlags::from_bits_retain(r.map_flags),
        key_size: r.key_size,
        value_size: r.value_size,
        max_entries: r.max_entries,
        btf_id: r.btf_id,
        btf_key_type_id: r.btf_key_type_id,
        btf_value_type_id: r.btf_value_type_id,
        btf_vmlinux_value_type_id: r.btf_vmlinux_value_type_id,
        kva: Kva::NULL,
        btf: Kva::NULL,
    }
}

/// Bytes between two CPUs' copies of a per-CPU value of `info`'s map.
pub(crate) fn percpu_stride(info: &MapInfo) -> usize {
    usize::try_from(info.percpu_stride()).unwrap_or(usize::MAX)
}

/// `BPF_*` flags for [`LiveMap::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Update {
    /// `BPF_ANY`: create the element or overwrite it.
    Any,
    /// `BPF_NOEXIST`: create only; `EEXIST` when the key is there.
    NoExist,
    /// `BPF_EXIST`: overwrite only; `ENOENT` when the key is absent.
    Exist,
}

impl Update {
    fn flags(self) -> u64 {
        match self {
            Self::Any => sys::BPF_ANY,
            Self::NoExist => sys::BPF_NOEXIST,
            Self::Exist => sys::BPF_EXIST,
        }
    }
}

/// A live map: an open descriptor and what the kernel said about the map.
///
/// The descriptor holds a reference on the map, so it cannot be freed (nor its id
/// reused) while the `LiveMap` exists, even when its creator goes away.
#[derive(Debug)]
pub struct LiveMap {
    handle: MapHandle,
    info: MapInfo,
    map_extra: u64,
}

impl LiveMap {
    /// Opens the map with id `id`; `None` when there is no such map (any more).
    ///
    /// # Errors
    /// [`Error::Denied`] without `CAP_SYS_ADMIN`; [`Error::Sys`].
    pub fn open(id: u32) -> Result<Option<Self>> {
        match sys::map_get_fd_by_id(id)? {
            None => Ok(None),
            Some(fd) => Self::from_fd(fd).map(Some),
        }
    }

    /// Wraps a map descriptor obtained elsewhere (a pinned map, [`sys::map_create`]).
    ///
    /// # Errors
    /// [`Error::Sys`] when `fd` is not a BPF map; [`Error::Cpus`].
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let handle = MapHandle::from_fd(fd)?;
        let info = map_info(handle.info());
        let map_extra = handle.info().map_extra;
        Ok(Self {
            handle,
            info,
            map_extra,
        })
    }

    /// What the kernel said about the map when it was opened (no memory part: its
    /// kernel addresses are [`Kva::NULL`]).
    pub fn info(&self) -> &MapInfo {
        &self.info
    }

    /// `map_extra`: an arena's fixed user address (0 when the first mmap chose it), a
    /// bloom filter's hash count.
    pub fn map_extra(&self) -> u64 {
        self.map_extra
    }

    /// The map's id.
    pub fn id(&self) -> u32 {
        self.info.id
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.handle.fd()
    }

    /// The syscall-level handle.
    pub fn handle(&self) -> &MapHandle {
        &self.handle
    }

    /// The possible CPUs (whose copies per-CPU values hold), when the map is per-CPU.
    pub(crate) fn cpu_ids(&self) -> Result<&'static [u32]> {
        if self.info.map_type.is_percpu() {
            Ok(cpus::possible()?.ids())
        } else {
            Ok(&[])
        }
    }

    /// Views raw syscall value bytes (`value_bytes` long) as a value.
    pub(crate) fn value_ref<'a>(&self, bytes: &'a [u8], cpus: &'a [u32]) -> ValueRef<'a> {
        if self.info.map_type.is_percpu() {
            ValueRef::per_cpu(
                bytes,
                percpu_stride(&self.info),
                usize::try_from(self.info.value_size).unwrap_or(0),
                cpus,
            )
        } else {
            ValueRef::Single(bytes)
        }
    }

    fn value_buffer(&self, op: &'static str) -> Result<Vec<u8>> {
        let n = self.handle.value_bytes().ok_or(Error::Unsupported {
            id: self.info.id,
            map_type: self.info.map_type,
            op,
        })?;
        Ok(vec![0u8; n])
    }

    /// The value at `key` (`BPF_MAP_LOOKUP_ELEM`); `None` when the key is absent.
    ///
    /// Per-CPU maps give every possible CPU's copy, without the padding.
    ///
    /// # Errors
    /// [`Error::BufferSize`] for a key of the wrong size, [`Error::Unsupported`],
    /// [`Error::Denied`], [`Error::Sys`].
    pub fn lookup(&self, key: &[u8]) -> Result<Option<Value>> {
        let mut buf = self.value_buffer("lookup")?;
        if !self.handle.lookup(key, &mut buf)? {
            return Ok(None);
        }
        let cpus = self.cpu_ids()?;
        Ok(Some(self.value_ref(&buf, cpus).to_owned()))
    }

    /// The value at index `index` of an array (ARRAY, PERCPU_ARRAY, or any map whose
    /// keys are `u32`s).
    ///
    /// # Errors
    /// [`Error::BufferSize`] when keys are not 4 bytes; as [`lookup`](Self::lookup).
    pub fn lookup_index(&self, index: u32) -> Result<Option<Value>> {
        self.lookup(&index.to_ne_bytes())
    }

    /// Stores `value` at `key` (`BPF_MAP_UPDATE_ELEM`).
    ///
    /// For per-CPU maps `value` gives every possible CPU's copy in CPU order, each
    /// [`percpu_stride`](MapInfo::percpu_stride) bytes;
    /// [`update_percpu`](Self::update_percpu) pads them for you.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Unsupported`], [`Error::Denied`] (frozen or
    /// read-only maps), [`Error::Sys`] (`EEXIST`, `ENOENT`, `E2BIG` for a full map).
    pub fn update(&self, key: &[u8], value: &[u8], flags: Update) -> Result<()> {
        self.handle.update(key, value, flags.flags())
    }

    /// Stores many elements in one call (`BPF_MAP_UPDATE_BATCH`), each created or
    /// replaced as with [`Update::Any`]: `keys` holds whole keys back to back, `values`
    /// as many values (for per-CPU maps, every possible CPU's copy, as for
    /// [`update`](Self::update)). Returns how many were stored.
    ///
    /// # Errors
    /// As [`MapHandle::update_batch`](crate::sys::MapHandle::update_batch).
    pub fn update_batch(&self, keys: &[u8], values: &[u8]) -> Result<u32> {
        self.handle.update_batch(keys, values)
    }

    /// Removes `key` (`BPF_MAP_DELETE_ELEM`); `false` when it was not there.
    ///
    /// # Errors
    /// [`Error::BufferSize`], [`Error::Denied`], [`Error::Sys`] (`EINVAL` for arrays).
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.handle.delete(key)
    }

    /// Stores one value per possible CPU at `key`: `values[i]` for the `i`-th possible
    /// CPU, each `value_size` bytes.
    ///
    /// # Errors
    /// [`Error::BufferSize`] when a value has the wrong size or the count is not the
    /// number of possible CPUs; as [`update`](Self::update).
    pub fn update_percpu(&self, key: &[u8], values: &[&[u8]], flags: Update) -> Result<()> {
        let ncpus = cpus::possible()?.count();
        if values.len() != ncpus {
            return Err(Error::BufferSize {
                need: ncpus,
                have: values.len(),
            });
        }
        let size = usize::try_from(self.info.value_size).unwrap_or(0);
        let stride = percpu_stride(&self.info);
        let mut buf = vec![0u8; stride.saturating_mul(ncpus)];
        for (chunk, v) in buf.chunks_mut(stride).zip(values) {
            if v.len() != size {
                return Err(Error::BufferSize {
                    need: size,
                    have: v.len(),
                });
            }
            if let Some(d) = chunk.get_mut(..size) {
                d.copy_from_slice(v);
            }
        }
        self.update(key, &buf, flags)
    }
}

/// The ids of every map, in increasing order (`BPF_MAP_GET_NEXT_ID`).
///
/// Ids of maps destroyed while the walk runs simply stop appearing. The walk ends after
/// the first error: the iterator is fused.
#[derive(Debug)]
pub struct MapIds {
    next: u32,
    done: bool,
}

impl Iterator for MapIds {
    type Item = Result<u32>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match sys::map_get_next_id(self.next) {
            Ok(Some(id)) if id > self.next => {
                self.next = id;
                Some(Ok(id))
            }
            Ok(_) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for MapIds {}

/// Every map id, in increasing order.
pub fn map_ids() -> MapIds {
    MapIds {
        next: 0,
        done: false,
    }
}

/// Opens every map, in id order.
///
/// A map destroyed between `BPF_MAP_GET_NEXT_ID` and `BPF_MAP_GET_FD_BY_ID` (`ENOENT`)
/// is skipped. Each returned [`LiveMap`] holds a descriptor, so the maps stay alive
/// while they are read. Each holds one descriptor: mind `RLIMIT_NOFILE` on hosts with
/// thousands of maps (or walk [`map_ids`] and open one at a time).
///
/// # Errors
/// [`Error::Denied`] without `CAP_SYS_ADMIN`; any other error of the three commands.
pub fn maps() -> Result<Vec<LiveMap>> {
    let mut out = Vec::new();
    for id in map_ids() {
        if let Some(m) = LiveMap::open(id?)? {
            out.push(m);
        }
    }
    Ok(out)
}
