//! ARENA maps (Linux 6.9+): every page the arena has, at its user address.
//!
//! `struct bpf_arena` (which embeds `struct bpf_map`) holds the user range
//! `user_vm_start .. user_vm_end` (`max_entries` pages; `user_vm_start` is 0 until the
//! arena is first mapped, unless it was created with a fixed `map_extra`) and
//! `kern_vm`, a `struct vm_struct` of 4 GiB plus a 64 KiB guard. The kernel maps the
//! page of user address `uaddr` at `kern_vm->addr + GUARD_SZ / 2 + (u32)uaddr`
//! (`bpf_arena_get_kern_vm_start`, `arena_alloc_pages`, `arena_vm_fault`): the lower
//! 32 bits of the user address index the kernel range.
//!
//! The walk translates that kernel range through the kernel's page tables and hands
//! only the pages that are present; a page the arena has not got is skipped, never read
//! as zeros. An absent upper-level entry skips everything it would map at once (a
//! 4 KiB-granule lower bound of its span, safe for every granule), so an empty 4 GiB
//! arena costs a handful of translations. Two caps bound a walk:
//! [`Limits::arena_pages`](crate::Limits::arena_pages) (translations) and
//! [`Limits::arena_bytes`](crate::Limits::arena_bytes) (bytes handed over).

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::ARENA_MAX_PAGES;

/// Bytes of one arena page, and of the value each page is handed with.
pub const ARENA_PAGE_SIZE: usize = 4096;

/// `ARENA_PAGE_SIZE` as a `u64`.
const PAGE: u64 = 4096;

/// `GUARD_SZ` of kernel/bpf/arena.c: the guard around the kernel range (the reach of a
/// 16-bit instruction offset); the range proper starts half of it into `kern_vm`.
pub const ARENA_GUARD_SZ: u64 = 1 << 16;

/// Version of the arena form `dump --json` prints (docs/arena.md).
pub const ARENA_FORM_VERSION: u32 = 1;

/// Where an arena lies: what its `struct bpf_arena` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arena {
    /// The user address of page 0 (`user_vm_start`; 0 for an arena never mapped and
    /// made without a fixed address: its pages are then keyed by their offset).
    pub user_vm_start: u64,
    /// `user_vm_end`.
    pub user_vm_end: u64,
    /// The kernel address the lower 32 bits of a user address are added to
    /// (`kern_vm->addr + GUARD_SZ / 2`).
    pub kern_vm_start: Kva,
    /// Pages (`max_entries`).
    pub pages: u32,
}

impl Arena {
    /// The kernel address of the page at `uaddr`.
    pub fn kernel_addr(&self, uaddr: u64) -> Option<Kva> {
        self.kern_vm_start.checked_add(uaddr & 0xffff_ffff)
    }
}

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Reads where ARENA `map` lies.
    ///
    /// # Errors
    /// [`Error::WrongMapType`]; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::arena`] (kernels before 6.9 have no
    /// `struct bpf_arena`); [`Error::Corrupt`] for `max_entries` above
    /// [`ARENA_MAX_PAGES`], a null `kern_vm`, or a user range (when set) that is not
    /// `max_entries` pages; a read error.
    pub fn arena(&self, map: &MapInfo) -> Result<Arena> {
        if map.map_type != MapType::ARENA {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "arena walk",
            });
        }
        let l = self
            .layout
            .arena
            .ok_or(Error::LayoutMissing { what: "bpf_arena" })?;
        if map.max_entries > ARENA_MAX_PAGES {
            return Err(Error::Corrupt {
                what: "arena max_entries (above 4 GiB of pages)",
                at: map.kva,
                value: u64::from(map.max_entries),
            });
        }
        let start = self.mem.read_kernel_u64(field(map.kva, l.user_vm_start)?)?;
        let end_at = field(map.kva, l.user_vm_end)?;
        let end = self.mem.read_kernel_u64(end_at)?;
        let len = u64::from(map.max_entries).saturating_mul(PAGE);
        if start != 0 && end.checked_sub(start) != Some(len) {
            return Err(Error::Corrupt {
                what: "bpf_arena.user_vm_end (not max_entries pages past user_vm_start)",
                at: end_at,
                value: end,
            });
        }
        let vm_at = field(map.kva, l.kern_vm)?;
        let vm = Kva(self.mem.read_kernel_u64(vm_at)?);
        if vm.0 == 0 {
            return Err(Error::Corrupt {
                what: "bpf_arena.kern_vm (null)",
                at: vm_at,
                value: 0,
            });
        }
        let addr = self.mem.read_kernel_u64(field(vm, l.vm_addr)?)?;
        let kern_vm_start =
            Kva(addr)
                .checked_add(ARENA_GUARD_SZ / 2)
                .ok_or(Error::AddrOverflow {
                    addr,
                    len: ARENA_GUARD_SZ / 2,
                })?;
        Ok(Arena {
            user_vm_start: start,
            user_vm_end: end,
            kern_vm_start,
            pages: map.max_entries,
        })
    }

    /// Calls `f` with the user address and bytes of every page ARENA `map` has, in
    /// address order, read into `page` (the caller's [`ARENA_PAGE_SIZE`] bytes). Pages
    /// the arena has not got are skipped. Returns how many pages `f` was given; `f`'s
    /// `Break` ends the walk.
    ///
    /// # Errors
    /// As [`arena`](Self::arena); [`Error::BufferSize`]; [`Error::LimitExceeded`]
    /// naming `Limits::arena_pages` or `Limits::arena_bytes` when the walk would cross
    /// it; a translation error other than an absent entry, or a read error.
    pub fn for_each_arena_page(
        &self,
        map: &MapInfo,
        page: &mut [u8],
        mut f: impl FnMut(u64, &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        let arena = self.arena(map)?;
        if page.len() != ARENA_PAGE_SIZE {
            return Err(Error::BufferSize {
                need: PAGE,
                have: crate::mem::len_u64(page.len()),
            });
        }
        let limits = self.mem.limits();
        let (probe_cap, byte_cap) = (limits.arena_pages, limits.arena_bytes);
        let mut probes = 0u32;
        let mut handed = 0u64;
        let mut index = 0u32;
        // Each iteration advances `index` by at least one, up to `pages` <=
        // ARENA_MAX_PAGES; `probes` caps it as well.
        while index < arena.pages {
            if probes >= probe_cap {
                return Err(Error::LimitExceeded {
                    what: "arena pages visited (Limits::arena_pages)",
                    limit: u64::from(probe_cap),
                    at: u64::from(probes).saturating_add(1),
                });
            }
            probes = probes.saturating_add(1);
            let uaddr = arena
                .user_vm_start
                .wrapping_add(u64::from(index).saturating_mul(PAGE));
            let low = uaddr & 0xffff_ffff;
            let kva = arena.kernel_addr(uaddr).ok_or(Error::AddrOverflow {
                addr: arena.kern_vm_start.0,
                len: low,
            })?;
            match self.mem.kva_to_pa(kva) {
                Ok(_) => {
                    let next = handed.saturating_add(PAGE);
                    if next > byte_cap {
                        return Err(Error::LimitExceeded {
                            what: "arena bytes handed over (Limits::arena_bytes)",
                            limit: byte_cap,
                            at: next,
                        });
                    }
                    self.mem.read_kernel(kva, page)?;
                    handed = next;
                    index = index.saturating_add(1);
                    if f(uaddr, page).is_break() {
                        break;
                    }
                }
                Err(Error::NotMapped { level, .. }) => {
                    // The absent entry maps at least 4 KiB << (9 × level) bytes
                    // around `kva` (more with a larger granule): skip to its end, but
                    // not past the wrap of the lower 32 bits (where the kernel range
                    // starts again) nor past the arena.
                    let shift = 12u32.saturating_add(9u32.saturating_mul(u32::from(level.min(4))));
                    let span = 1u64 << shift.min(48);
                    let to_end = span.saturating_sub(kva.0 & span.wrapping_sub(1));
                    let to_wrap = (1u64 << 32).saturating_sub(low);
                    let skip = (to_end.min(to_wrap) / PAGE).max(1);
                    let skip = u32::try_from(skip).unwrap_or(u32::MAX);
                    index = index.saturating_add(skip);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(handed / PAGE)
    }
}

#[cfg(test)]
#[path = "arena_tests.rs"]
mod tests;
