//! The owners of local-storage elements: which task, inode, socket or cgroup holds an
//! element, described through BTF offsets, and the fixed-size record a walk hands
//! over as the element's key.
//!
//! The record's layout is in the [module docs](crate::bpf::storage).

use crate::addr::Kva;
use crate::bpf::MapType;
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::StorageLayout;
use crate::limits::CGROUP_NAME_MAX;

/// `AF_INET`.
pub const AF_INET: u16 = 2;
/// `AF_INET6`.
pub const AF_INET6: u16 = 10;

/// Bytes of the record before the kind's own fields.
const HEADER: usize = 16;

/// What owns the elements of a local-storage map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    /// TASK_STORAGE: a `struct task_struct`.
    Task,
    /// INODE_STORAGE: a `struct inode`.
    Inode,
    /// SK_STORAGE: a `struct sock`.
    Sock,
    /// CGRP_STORAGE: a `struct cgroup`.
    Cgroup,
}

impl OwnerKind {
    /// The owners of `map_type`'s elements, for the four local-storage types.
    pub const fn of(map_type: MapType) -> Option<Self> {
        match map_type {
            MapType::TASK_STORAGE => Some(Self::Task),
            MapType::INODE_STORAGE => Some(Self::Inode),
            MapType::SK_STORAGE => Some(Self::Sock),
            MapType::CGRP_STORAGE => Some(Self::Cgroup),
            _ => None,
        }
    }

    /// The length of this kind's owner record (see the [module docs](crate::bpf::storage)).
    pub const fn record_len(self) -> usize {
        match self {
            Self::Task => 40,
            Self::Inode => 32,
            Self::Sock => 64,
            Self::Cgroup => 288,
        }
    }

    /// `task`, `inode`, `sock` or `cgroup`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Inode => "inode",
            Self::Sock => "sock",
            Self::Cgroup => "cgroup",
        }
    }

    const fn code(self) -> u8 {
        match self {
            Self::Task => 1,
            Self::Inode => 2,
            Self::Sock => 3,
            Self::Cgroup => 4,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Task),
            2 => Some(Self::Inode),
            3 => Some(Self::Sock),
            4 => Some(Self::Cgroup),
            _ => None,
        }
    }
}

/// A task: `task_struct.pid`, `tgid` and `comm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskOwner {
    /// `pid` (the thread id).
    pub pid: i32,
    /// `tgid` (the process id).
    pub tgid: i32,
    /// `comm`, NUL-padded.
    pub comm: [u8; 16],
}

impl TaskOwner {
    /// `comm` up to its first NUL.
    pub fn comm(&self) -> &[u8] {
        until_nul(&self.comm)
    }
}

/// An inode: `inode.i_ino` and its superblock's `s_dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeOwner {
    /// `i_ino`.
    pub ino: u64,
    /// `i_sb->s_dev`, the kernel's `dev_t` (major << 20 | minor).
    pub dev: u32,
}

impl InodeOwner {
    /// The device's major number.
    pub const fn major(&self) -> u32 {
        self.dev >> 20
    }

    /// The device's minor number.
    pub const fn minor(&self) -> u32 {
        self.dev & 0xf_ffff
    }
}

/// A socket: its cookie, family and the addresses of its `sock_common`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockOwner {
    /// `skc_cookie`: 0 until something asked for it (`SO_COOKIE`, a program's
    /// `bpf_get_socket_cookie`, sock_diag); the kernel assigns it on the first ask.
    pub cookie: u64,
    /// `skc_family` (`AF_INET` 2, `AF_INET6` 10, ...).
    pub family: u16,
    /// `skc_num`: the local port, host order.
    pub local_port: u16,
    /// `skc_dport`, in host order: the remote port.
    pub remote_port: u16,
    /// The local address: `skc_rcv_saddr` in the first 4 bytes (IPv4) or
    /// `skc_v6_rcv_saddr` (IPv6); zero for other families.
    pub local_addr: [u8; 16],
    /// The remote address: `skc_daddr` or `skc_v6_daddr`, as `local_addr`.
    pub remote_addr: [u8; 16],
}

/// A cgroup: its id and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CgroupOwner {
    /// `cgrp->kn->id`: the cgroup id (`cgroup_id()`; on 64-bit kernels also the
    /// directory's inode number in cgroupfs).
    pub id: u64,
    name: [u8; CGROUP_NAME_MAX],
    name_len: u8,
}

impl CgroupOwner {
    /// A cgroup with id `id` and name `name` (cut at [`CGROUP_NAME_MAX`] bytes).
    pub fn new(id: u64, name: &[u8]) -> Self {
        let mut bytes = [0u8; CGROUP_NAME_MAX];
        let len = name.len().min(CGROUP_NAME_MAX);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), name.get(..len)) {
            dst.copy_from_slice(src);
        }
        Self {
            id,
            name: bytes,
            name_len: u8::try_from(len).unwrap_or(u8::MAX),
        }
    }

    /// `kn->name` (the root cgroup's is empty).
    pub fn name(&self) -> &[u8] {
        self.name
            .get(..usize::from(self.name_len))
            .unwrap_or_default()
    }
}

/// What is known about an owner beyond its address.
// Plain data the walk hands over by reference, with no allocator to box a cgroup's
// name in.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerDesc {
    /// A task.
    Task(TaskOwner),
    /// An inode.
    Inode(InodeOwner),
    /// A socket.
    Sock(SockOwner),
    /// A cgroup.
    Cgroup(CgroupOwner),
}

/// The owner of one local-storage element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StorageOwner {
    /// What kind of object it is.
    pub kind: OwnerKind,
    /// Its kernel address (`bpf_local_storage.owner`).
    pub kva: Kva,
    /// Its description, or `None` when the kernel layout has no offsets for its kind.
    pub desc: Option<OwnerDesc>,
}

fn until_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or_default()
}

/// `dst[at..at + src.len()] = src`, when it fits (the record lengths make it fit).
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = at
        .checked_add(src.len())
        .and_then(|end| dst.get_mut(at..end))
    {
        d.copy_from_slice(src);
    }
}

fn get<const N: usize>(src: &[u8], at: usize) -> Option<[u8; N]> {
    src.get(at..at.checked_add(N)?)?.try_into().ok()
}

impl StorageOwner {
    /// Writes the owner record (see the [module docs](crate::bpf::storage)) into `buf`, which must be
    /// exactly [`OwnerKind::record_len`] bytes.
    ///
    /// # Errors
    /// [`Error::BufferSize`] for another length.
    pub fn write_record(&self, buf: &mut [u8]) -> Result<()> {
        let need = self.kind.record_len();
        if buf.len() != need {
            return Err(Error::BufferSize {
                need: crate::mem::len_u64(need),
                have: crate::mem::len_u64(buf.len()),
            });
        }
        buf.fill(0);
        put(buf, 0, &[self.kind.code(), u8::from(self.desc.is_some())]);
        put(buf, 8, &self.kva.0.to_le_bytes());
        match &self.desc {
            None => {}
            Some(OwnerDesc::Task(t)) => {
                put(buf, HEADER, &t.pid.to_le_bytes());
                put(buf, 20, &t.tgid.to_le_bytes());
                put(buf, 24, &t.comm);
            }
            Some(OwnerDesc::Inode(i)) => {
                put(buf, HEADER, &i.ino.to_le_bytes());
                put(buf, 24, &i.dev.to_le_bytes());
            }
            Some(OwnerDesc::Sock(s)) => {
                put(buf, HEADER, &s.cookie.to_le_bytes());
                put(buf, 24, &s.family.to_le_bytes());
                put(buf, 26, &s.local_port.to_le_bytes());
                put(buf, 28, &s.remote_port.to_le_bytes());
                put(buf, 32, &s.local_addr);
                put(buf, 48, &s.remote_addr);
            }
            Some(OwnerDesc::Cgroup(c)) => {
                put(buf, HEADER, &c.id.to_le_bytes());
                put(buf, 24, &[c.name_len]);
                put(buf, 32, c.name());
            }
        }
        Ok(())
    }

    /// The owner a record describes, or `None` when `rec` is not one of `kind`'s
    /// records (wrong length, kind or flag byte, or a cgroup name longer than its
    /// field).
    pub fn from_record(kind: OwnerKind, rec: &[u8]) -> Option<Self> {
        if rec.len() != kind.record_len() {
            return None;
        }
        let [code, described] = get::<2>(rec, 0)?;
        if OwnerKind::from_code(code) != Some(kind) || described > 1 {
            return None;
        }
        let kva = Kva(u64::from_le_bytes(get(rec, 8)?));
        let u64_at = |at| get(rec, at).map(u64::from_le_bytes);
        let u16_at = |at| get(rec, at).map(u16::from_le_bytes);
        let desc = if described == 0 {
            None
        } else {
            Some(match kind {
                OwnerKind::Task => OwnerDesc::Task(TaskOwner {
                    pid: i32::from_le_bytes(get(rec, HEADER)?),
                    tgid: i32::from_le_bytes(get(rec, 20)?),
                    comm: get(rec, 24)?,
                }),
                OwnerKind::Inode => OwnerDesc::Inode(InodeOwner {
                    ino: u64_at(HEADER)?,
                    dev: u32::from_le_bytes(get(rec, 24)?),
                }),
                OwnerKind::Sock => OwnerDesc::Sock(SockOwner {
                    cookie: u64_at(HEADER)?,
                    family: u16_at(24)?,
                    local_port: u16_at(26)?,
                    remote_port: u16_at(28)?,
                    local_addr: get(rec, 32)?,
                    remote_addr: get(rec, 48)?,
                }),
                OwnerKind::Cgroup => {
                    let [len] = get::<1>(rec, 24)?;
                    let name = rec.get(32..32usize.checked_add(usize::from(len))?)?;
                    OwnerDesc::Cgroup(CgroupOwner::new(u64_at(HEADER)?, name))
                }
            })
        };
        Some(Self { kind, kva, desc })
    }
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

/// A pointer the owner's fields lead to: a kernel address, 8-byte aligned.
fn pointer(at: Kva, raw: u64, what: &'static str) -> Result<Kva> {
    if raw >> 63 != 1 || raw & 7 != 0 {
        return Err(Error::Corrupt {
            what,
            at,
            value: raw,
        });
    }
    Ok(Kva(raw))
}

fn read_array<const N: usize, K: KernelRead + ?Sized>(mem: &K, at: Kva) -> Result<[u8; N]> {
    let mut b = [0u8; N];
    mem.read_kernel(at, &mut b)?;
    Ok(b)
}

/// Reads a NUL-terminated name of at most [`CGROUP_NAME_MAX`] bytes at `at`, never
/// reading past the 4 KiB page its terminator lies in.
fn read_name<K: KernelRead + ?Sized>(mem: &K, at: Kva) -> Result<CgroupOwner> {
    let mut buf = [0u8; CGROUP_NAME_MAX + 1];
    let mut done = 0usize;
    while done < buf.len() {
        let here = field(at, u32::try_from(done).unwrap_or(u32::MAX))?;
        let to_page_end = usize::try_from(0x1000u64.wrapping_sub(here.0 & 0xfff)).unwrap_or(1);
        let end = done.saturating_add(to_page_end).min(buf.len());
        let chunk = buf.get_mut(done..end).unwrap_or_default();
        mem.read_kernel(here, chunk)?;
        if let Some(nul) = chunk.iter().position(|&c| c == 0) {
            let len = done.saturating_add(nul);
            return Ok(CgroupOwner::new(0, buf.get(..len).unwrap_or_default()));
        }
        done = end;
    }
    Err(Error::Corrupt {
        what: "kernfs_node.name (no NUL within NAME_MAX bytes)",
        at,
        value: crate::mem::len_u64(buf.len()),
    })
}

/// Describes the owner at `owner` as `kind`, through `l`'s offsets for that kind;
/// `None` when `l` has none.
///
/// # Errors
/// A read error, or [`Error::Corrupt`] for a pointer on the way that is not a kernel
/// pointer (`inode.i_sb`, `cgroup.kn`, `kernfs_node.name`) or a name without an end.
pub fn describe_owner<K: KernelRead + ?Sized>(
    mem: &K,
    l: &StorageLayout,
    kind: OwnerKind,
    owner: Kva,
) -> Result<Option<OwnerDesc>> {
    let at = |off| field(owner, off);
    Ok(Some(match kind {
        OwnerKind::Task => {
            let Some(t) = l.task else { return Ok(None) };
            OwnerDesc::Task(TaskOwner {
                pid: i32::from_le_bytes(read_array(mem, at(t.pid)?)?),
                tgid: i32::from_le_bytes(read_array(mem, at(t.tgid)?)?),
                comm: read_array(mem, at(t.comm)?)?,
            })
        }
        OwnerKind::Inode => {
            let Some(i) = l.inode else { return Ok(None) };
            let sb_at = at(i.sb)?;
            let sb = pointer(
                sb_at,
                mem.read_kernel_u64(sb_at)?,
                "inode.i_sb (not a kernel pointer)",
            )?;
            OwnerDesc::Inode(InodeOwner {
                ino: mem.read_kernel_u64(at(i.ino)?)?,
                dev: mem.read_kernel_u32(field(sb, i.s_dev)?)?,
            })
        }
        OwnerKind::Sock => {
            let Some(s) = l.sock else { return Ok(None) };
            let family = u16::from_le_bytes(read_array(mem, at(s.family)?)?);
            let (mut local_addr, mut remote_addr) = ([0u8; 16], [0u8; 16]);
            match (family, s.v6_rcv_saddr, s.v6_daddr) {
                (AF_INET, _, _) => {
                    put(
                        &mut local_addr,
                        0,
                        &read_array::<4, _>(mem, at(s.rcv_saddr)?)?,
                    );
                    put(&mut remote_addr, 0, &read_array::<4, _>(mem, at(s.daddr)?)?);
                }
                (AF_INET6, Some(local), Some(remote)) => {
                    local_addr = read_array(mem, at(local)?)?;
                    remote_addr = read_array(mem, at(remote)?)?;
                }
                _ => {}
            }
            OwnerDesc::Sock(SockOwner {
                cookie: mem.read_kernel_u64(at(s.cookie)?)?,
                family,
                local_port: u16::from_le_bytes(read_array(mem, at(s.num)?)?),
                remote_port: u16::from_be_bytes(read_array(mem, at(s.dport)?)?),
                local_addr,
                remote_addr,
            })
        }
        OwnerKind::Cgroup => {
            let Some(c) = l.cgroup else { return Ok(None) };
            let kn_at = at(c.kn)?;
            let kn = pointer(
                kn_at,
                mem.read_kernel_u64(kn_at)?,
                "cgroup.kn (not a kernel pointer)",
            )?;
            let name_at = field(kn, c.kn_name)?;
            // Kernel strings need no alignment: only the top bit is checked.
            let raw = mem.read_kernel_u64(name_at)?;
            if raw >> 63 != 1 {
                return Err(Error::Corrupt {
                    what: "kernfs_node.name (not a kernel pointer)",
                    at: name_at,
                    value: raw,
                });
            }
            let named = read_name(mem, Kva(raw))?;
            let id = mem.read_kernel_u64(field(kn, c.kn_id)?)?;
            OwnerDesc::Cgroup(CgroupOwner::new(id, named.name()))
        }
    }))
}
