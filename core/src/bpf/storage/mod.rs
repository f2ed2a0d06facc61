//! Local-storage maps (TASK_STORAGE, INODE_STORAGE, SK_STORAGE, CGRP_STORAGE): every
//! element with its owner.
//!
//! `struct bpf_local_storage_map` (which embeds `struct bpf_map`) holds
//! `1 << bucket_log` buckets, each an `hlist_head` of the map's elements
//! (`struct bpf_local_storage_elem`, linked by `map_node`, chains ending at NULL). An
//! element's value is `sdata.data` (`value_size` bytes); its `local_storage` points at
//! the owner's `struct bpf_local_storage`, whose `owner` is the task, inode, socket or
//! cgroup. `bpf()` looks an element up by a file descriptor of its owner and cannot
//! list them, so memory is the only full view.
//!
//! The walk follows each chain as the kernel's RCU readers (`bpf_sk_storage`'s
//! iterator, `bpf_local_storage_map_free`) do:
//! - an element whose `map_node.pprev` is NULL was unlinked from the map
//!   (`hlist_del_init_rcu`) while it was read, and one whose `local_storage`, or
//!   whose storage's `owner`, is NULL is being freed (`bpf_selem_unlink_storage`
//!   clears `owner` when the owner's last element goes): such elements are skipped,
//!   and the chain is followed on through their `next`;
//! - every other element's back link (`map_node.pprev`) must be the link the walk
//!   followed to it. When it is not, the bucket changed under the walk (a running
//!   guest) and is read again from its head, up to
//!   [`Limits::bucket_reads`](crate::Limits::bucket_reads) times, skipping the
//!   elements already handed over ([`STORAGE_REREAD_SEEN`]); the same disagreement on
//!   two reads in a row is the memory as it is: [`Error::Corrupt`]. A cycle always
//!   meets such a back link; every element visited (re-reads included) also counts
//!   against [`Limits::storage_elems`](crate::Limits::storage_elems);
//! - an element whose `sdata.smap` is another map is corrupt; NULL is skipped as
//!   being freed.
//!
//! Buckets come in index order and each chain from its head, so two reads of a still
//! guest list the elements alike.
//!
//! # The owner record
//!
//! Local storage has no key of its own (`bpf()` looks it up by a file descriptor of
//! the owner), so [`Bpf::for_each_entry`](crate::Bpf::for_each_entry) hands over each
//! element's owner as its key: a record of [`OwnerKind::record_len`] bytes, the same
//! length for every element of one map, little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | kind: 1 task, 2 inode, 3 socket, 4 cgroup |
//! | 1 | 1 when the fields from byte 16 on are known, 0 when only the address is |
//! | 2..8 | zero |
//! | 8..16 | the owner's kernel address (`bpf_local_storage.owner`) |
//! | task, 16..40 | `pid` (i32), `tgid` (i32), `comm` (16 bytes, NUL-padded) |
//! | inode, 16..32 | `i_ino` (u64), `i_sb->s_dev` (u32, the kernel's `dev_t`: major << 20 \| minor), zero |
//! | socket, 16..64 | `skc_cookie` (u64), `skc_family` (u16), local port (u16), remote port (u16), zero (u16), local address (16 bytes), remote address (16 bytes) |
//! | cgroup, 16..288 | `kn->id` (u64), name length (u8), zero (7 bytes), `kn->name` (255 bytes, NUL-padded), zero |
//!
//! Ports are in host order; addresses as the socket holds them (network order): an
//! IPv4 address in the first 4 bytes, an IPv6 one in all 16. The owner's address makes
//! two owners that read alike (two unbound sockets, say) two keys.

mod owner;
#[cfg(test)]
mod tests;

use core::ops::ControlFlow;

pub use owner::{
    describe_owner, CgroupOwner, InodeOwner, OwnerDesc, OwnerKind, SockOwner, StorageOwner,
    TaskOwner, AF_INET, AF_INET6,
};

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::StorageLayout;
use crate::limits::{STORAGE_MAX_BUCKET_LOG, STORAGE_MAX_VALUE_SIZE, STORAGE_REREAD_SEEN};
use crate::mem::len_u64;

/// The local-storage map types [`Bpf::for_each_storage_elem`] walks.
pub const STORAGE_MAP_TYPES: [MapType; 4] = [
    MapType::TASK_STORAGE,
    MapType::INODE_STORAGE,
    MapType::SK_STORAGE,
    MapType::CGRP_STORAGE,
];

/// What one walk of a local-storage map met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageWalkStats {
    /// Elements handed over.
    pub elems: u64,
    /// Elements skipped because they were being unlinked or freed (NULL back link,
    /// `local_storage`, `owner` or `smap`): none in a still guest's memory, in
    /// practice.
    pub skipped: u64,
    /// Buckets read again because they changed under the walk.
    pub rereads: u64,
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

const fn is_kernel_ptr(v: u64) -> bool {
    v >> 63 == 1 && v & 7 == 0
}

/// A sign that a bucket changed under the walk: the element, its back link, and the
/// link the walk followed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    elem: u64,
    pprev: u64,
    from: u64,
}

/// The walk's state over one map.
struct Walk<'m, K: ?Sized> {
    mem: &'m K,
    l: StorageLayout,
    map: Kva,
    kind: OwnerKind,
    visited: u64,
    cap: u64,
    reads_cap: u32,
}

/// How one read of a bucket ended.
enum Read {
    /// The chain's end: the bucket is done.
    Done,
    /// The callback asked to stop.
    Stopped,
    /// The bucket changed: read it again.
    Again(Change),
}

impl<K: KernelRead + ?Sized> Walk<'_, K> {
    fn visit(&mut self) -> Result<()> {
        self.visited = self.visited.saturating_add(1);
        if self.visited > self.cap {
            return Err(Error::LimitExceeded {
                what: "local-storage elements visited in one walk",
                limit: self.cap,
                at: self.visited,
            });
        }
        Ok(())
    }

    /// One read of the bucket whose head is at `head`: hands over the elements not in
    /// `seen` and adds them to it; with `dry`, only follows the chain (to tell a bucket
    /// that changed from one that is corrupt).
    #[allow(clippy::too_many_arguments)]
    fn read_bucket(
        &mut self,
        head: Kva,
        dry: bool,
        seen: &mut heapless::Vec<u64, STORAGE_REREAD_SEEN>,
        seen_full: &mut bool,
        value: &mut [u8],
        stats: &mut StorageWalkStats,
        f: &mut impl FnMut(&StorageOwner, &[u8]) -> ControlFlow<()>,
    ) -> Result<Read> {
        let l = self.l;
        let mut link = head;
        let mut next = self.mem.read_kernel_u64(head)?;
        loop {
            if next == 0 {
                return Ok(Read::Done);
            }
            if !is_kernel_ptr(next) {
                // A pointer no element has: the link was rewritten meanwhile, or is
                // corrupt (told apart by reading again).
                return Ok(Read::Again(Change {
                    elem: next,
                    pprev: 0,
                    from: link.0,
                }));
            }
            self.visit()?;
            let elem = Kva(next)
                .checked_sub(u64::from(l.elem_map_node))
                .ok_or(Error::Corrupt {
                    what: "bpf_local_storage_elem.map_node (below its offset)",
                    at: link,
                    value: next,
                })?;
            let next_at = field(elem, l.elem_next)?;
            let following = self.mem.read_kernel_u64(next_at)?;
            let pprev = self.mem.read_kernel_u64(field(elem, l.elem_pprev)?)?;
            if pprev == 0 {
                // Unlinked while read (`hlist_del_init_rcu`): readers go on through it.
                stats.skipped = stats.skipped.saturating_add(1);
                (link, next) = (next_at, following);
                continue;
            }
            if pprev != link.0 {
                return Ok(Read::Again(Change {
                    elem: elem.0,
                    pprev,
                    from: link.0,
                }));
            }
            if !dry
                && self
                    .element(elem, seen, seen_full, value, stats, f)?
                    .is_break()
            {
                return Ok(Read::Stopped);
            }
            (link, next) = (next_at, following);
        }
    }

    /// The linked element at `elem`: skipped when it is being freed or was handed over
    /// already, else described and handed to `f`.
    fn element(
        &mut self,
        elem: Kva,
        seen: &mut heapless::Vec<u64, STORAGE_REREAD_SEEN>,
        seen_full: &mut bool,
        value: &mut [u8],
        stats: &mut StorageWalkStats,
        f: &mut impl FnMut(&StorageOwner, &[u8]) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>> {
        let l = self.l;
        let smap_at = field(elem, l.elem_smap)?;
        let smap = self.mem.read_kernel_u64(smap_at)?;
        let storage = self
            .mem
            .read_kernel_u64(field(elem, l.elem_local_storage)?)?;
        if smap == 0 || storage == 0 {
            stats.skipped = stats.skipped.saturating_add(1);
            return Ok(ControlFlow::Continue(()));
        }
        if smap != self.map.0 {
            return Err(Error::Corrupt {
                what: "bpf_local_storage_elem.sdata.smap (another map)",
                at: smap_at,
                value: smap,
            });
        }
        if !is_kernel_ptr(storage) {
            return Err(Error::Corrupt {
                what: "bpf_local_storage_elem.local_storage (not a kernel pointer)",
                at: elem,
                value: storage,
            });
        }
        let owner_at = field(Kva(storage), l.storage_owner)?;
        let owner = self.mem.read_kernel_u64(owner_at)?;
        if owner == 0 {
            stats.skipped = stats.skipped.saturating_add(1);
            return Ok(ControlFlow::Continue(()));
        }
        if !is_kernel_ptr(owner) {
            return Err(Error::Corrupt {
                what: "bpf_local_storage.owner (not a kernel pointer)",
                at: owner_at,
                value: owner,
            });
        }
        if seen.contains(&elem.0) {
            return Ok(ControlFlow::Continue(()));
        }
        let desc = describe_owner(self.mem, &l, self.kind, Kva(owner))?;
        self.mem.read_kernel(field(elem, l.elem_data)?, value)?;
        if seen.push(elem.0).is_err() {
            *seen_full = true;
        }
        stats.elems = stats.elems.saturating_add(1);
        let owner = StorageOwner {
            kind: self.kind,
            kva: Kva(owner),
            desc,
        };
        Ok(f(&owner, value))
    }
}

/// The error of a bucket that disagrees with itself the same way on two reads.
fn corrupt(change: Change) -> Error {
    Error::Corrupt {
        what: if change.pprev == 0 {
            "local-storage chain pointer (not a kernel pointer)"
        } else {
            "bpf_local_storage_elem.map_node.pprev (does not point back)"
        },
        at: Kva(change.from),
        value: change.elem,
    }
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Calls `f` with every element of local-storage `map` (TASK_STORAGE,
    /// INODE_STORAGE, SK_STORAGE or CGRP_STORAGE): its owner, described through the
    /// layout's offsets for its kind, and its value, read into `value` (the caller's
    /// buffer of `value_size` bytes). Buckets in index order, each chain from its head;
    /// `f`'s `Break` ends the walk. See the [module docs](self) for elements being
    /// freed and buckets that change under the walk.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::storage`]; [`Error::BufferSize`];
    /// [`Error::LimitExceeded`] for a `bucket_log` above [`STORAGE_MAX_BUCKET_LOG`], a
    /// `value_size` above [`STORAGE_MAX_VALUE_SIZE`] or more elements visited than
    /// [`Limits::storage_elems`](crate::Limits::storage_elems); [`Error::Corrupt`] for a
    /// bucket array, element or owner pointer that cannot be the kernel's;
    /// [`Error::Unstable`] for a bucket still changing after
    /// [`Limits::bucket_reads`](crate::Limits::bucket_reads) reads; a read error. The
    /// elements handed over before an error stay valid.
    pub fn for_each_storage_elem(
        &self,
        map: &MapInfo,
        value: &mut [u8],
        mut f: impl FnMut(&StorageOwner, &[u8]) -> ControlFlow<()>,
    ) -> Result<StorageWalkStats> {
        let mut stats = StorageWalkStats::default();
        self.storage_walk(map, value, &mut stats, &mut f)?;
        Ok(stats)
    }

    /// [`for_each_storage_elem`](Self::for_each_storage_elem), its figures in `stats`
    /// whether or not it fails.
    pub(crate) fn storage_walk(
        &self,
        map: &MapInfo,
        value: &mut [u8],
        stats: &mut StorageWalkStats,
        f: &mut impl FnMut(&StorageOwner, &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let kind = OwnerKind::of(map.map_type).ok_or(Error::WrongMapType {
            id: map.id,
            map_type: map.map_type,
            op: "local-storage walk",
        })?;
        let l = self.layout.storage.ok_or(Error::LayoutMissing {
            what: "bpf_local_storage_map",
        })?;
        if map.value_size > STORAGE_MAX_VALUE_SIZE {
            return Err(Error::LimitExceeded {
                what: "local-storage value_size",
                limit: u64::from(STORAGE_MAX_VALUE_SIZE),
                at: u64::from(map.value_size),
            });
        }
        if u64::from(map.value_size) != len_u64(value.len()) {
            return Err(Error::BufferSize {
                need: u64::from(map.value_size),
                have: len_u64(value.len()),
            });
        }
        let log_at = field(map.kva, l.bucket_log)?;
        let log = self.mem.read_kernel_u32(log_at)?;
        if log > STORAGE_MAX_BUCKET_LOG {
            return Err(Error::LimitExceeded {
                what: "local-storage bucket_log",
                limit: u64::from(STORAGE_MAX_BUCKET_LOG),
                at: u64::from(log),
            });
        }
        let buckets_at = field(map.kva, l.buckets)?;
        let buckets = self.mem.read_kernel_u64(buckets_at)?;
        if !is_kernel_ptr(buckets) {
            return Err(Error::Corrupt {
                what: "bpf_local_storage_map.buckets (not a kernel pointer)",
                at: buckets_at,
                value: buckets,
            });
        }
        let limits = self.mem.limits();
        let mut walk = Walk {
            mem: self.mem,
            l,
            map: map.kva,
            kind,
            visited: 0,
            cap: u64::from(limits.storage_elems),
            reads_cap: limits.bucket_reads.max(1),
        };
        // At most 2^13 buckets (checked above).
        for b in 0..(1u32 << log) {
            let off = u64::from(b)
                .checked_mul(u64::from(l.bucket_size))
                .and_then(|o| o.checked_add(u64::from(l.bucket_first)))
                .ok_or(Error::AddrOverflow {
                    addr: buckets,
                    len: u64::from(b),
                })?;
            let head = Kva(buckets).checked_add(off).ok_or(Error::AddrOverflow {
                addr: buckets,
                len: off,
            })?;
            let mut seen = heapless::Vec::new();
            let mut seen_full = false;
            let mut last: Option<Change> = None;
            let mut reads = 0u32;
            loop {
                reads = reads.saturating_add(1);
                let read =
                    walk.read_bucket(head, false, &mut seen, &mut seen_full, value, stats, f)?;
                match read {
                    Read::Done => break,
                    Read::Stopped => return Ok(()),
                    Read::Again(change) => {
                        let unstable = Error::Unstable {
                            what: "local-storage bucket",
                            at: u64::from(b),
                            reads,
                        };
                        if last == Some(change) {
                            return Err(corrupt(change));
                        }
                        if reads >= walk.reads_cap {
                            return Err(unstable);
                        }
                        if seen_full {
                            // Too many handed over to skip them on another read: one
                            // more read, handing nothing over, tells the two apart.
                            let again = walk.read_bucket(
                                head,
                                true,
                                &mut seen,
                                &mut seen_full,
                                value,
                                stats,
                                f,
                            )?;
                            return Err(match again {
                                Read::Again(c) if c == change => corrupt(change),
                                _ => unstable,
                            });
                        }
                        last = Some(change);
                        stats.rereads = stats.rereads.saturating_add(1);
                    }
                }
            }
        }
        Ok(())
    }
}
