//! Maps whose slots hold kernel objects rather than data: PROG_ARRAY (programs),
//! ARRAY_OF_MAPS and HASH_OF_MAPS (inner maps). Each populated slot is read as the id of
//! the object it holds, which is what `BPF_MAP_LOOKUP_ELEM` returns for these types
//! (and what `bpftool map dump` prints); empty slots are skipped, as the kernel's lookup
//! skips them.
//!
//! - PROG_ARRAY and ARRAY_OF_MAPS are `struct bpf_array`s whose `ptrs[]` (at the offset
//!   of `value`) hold `struct bpf_prog *` or `struct bpf_map *`, NULL when empty.
//! - HASH_OF_MAPS is a `struct bpf_htab` whose elements hold a `struct bpf_map *` where
//!   a value would be (8 bytes at `key + round_up(key_size, 8)`; the map's `value_size`
//!   is 4, rounded up to 8 in the element).

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{read_prog_id, Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::MAX_ARRAY_ENTRIES;

/// The map types whose slots [`Bpf::for_each_fd_slot`] reads as object ids.
pub const FD_MAP_TYPES: [MapType; 3] = [
    MapType::PROG_ARRAY,
    MapType::ARRAY_OF_MAPS,
    MapType::HASH_OF_MAPS,
];

/// Slot pointers read in one piece.
const SLOT_BATCH: usize = 64;

/// A slot pointer that must point into the kernel's upper half, 8-byte aligned.
pub(crate) fn object_ptr(what: &'static str, at: Kva, value: u64) -> Result<Kva> {
    if value & 7 != 0 || value >> 63 == 0 {
        return Err(Error::Corrupt { what, at, value });
    }
    Ok(Kva(value))
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// The id of the object a slot of `map` points at: a program's (`aux->id`) for a
    /// PROG_ARRAY, an inner map's (`bpf_map.id`) otherwise.
    fn object_id(&self, map: &MapInfo, slot: Kva, ptr: u64) -> Result<u32> {
        if map.map_type == MapType::PROG_ARRAY {
            let prog = object_ptr("PROG_ARRAY slot (not a kernel pointer)", slot, ptr)?;
            let l = self
                .layout
                .prog
                .ok_or(Error::LayoutMissing { what: "bpf_prog" })?;
            read_prog_id(self.mem, &l, prog)
        } else {
            let inner = object_ptr("map-in-map slot (not a kernel pointer)", slot, ptr)?;
            let at = inner.checked_add(u64::from(self.layout.bpf_map.id)).ok_or(
                Error::AddrOverflow {
                    addr: inner.0,
                    len: u64::from(self.layout.bpf_map.id),
                },
            )?;
            self.mem.read_kernel_u32(at)
        }
    }

    /// Calls `f` with the key and the object id of every populated slot of `map`, a
    /// PROG_ARRAY, ARRAY_OF_MAPS or HASH_OF_MAPS. The arrays' `ptrs[]` hold
    /// `struct bpf_prog *` or `struct bpf_map *` (NULL when empty); a HASH_OF_MAPS
    /// element holds a `struct bpf_map *` where an 8-byte value would be. The id is what
    /// `BPF_MAP_LOOKUP_ELEM` returns for these types; empty slots are skipped. `key`
    /// is the caller's buffer of `key_size` bytes (4 for the arrays). Returns how many
    /// slots `f` was given; `f`'s `Break` ends the walk.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::BufferSize`] for a key buffer
    /// of the wrong size; [`Error::LayoutMissing`], [`Error::Corrupt`] (a slot that is
    /// not a kernel pointer, an array bigger than the kernel allows) or a read error.
    pub fn for_each_fd_slot(
        &self,
        map: &MapInfo,
        key: &mut [u8],
        mut f: impl FnMut(&[u8], u32) -> ControlFlow<()>,
    ) -> Result<u64> {
        if crate::mem::len_u64(key.len()) != u64::from(map.key_size) {
            return Err(Error::BufferSize {
                need: u64::from(map.key_size),
                have: crate::mem::len_u64(key.len()),
            });
        }
        let mut count = 0u64;
        match map.map_type {
            MapType::PROG_ARRAY | MapType::ARRAY_OF_MAPS => {
                let (_, ptrs) = self.array_geometry(map)?;
                if map.max_entries > MAX_ARRAY_ENTRIES {
                    return Err(Error::Corrupt {
                        what: "bpf_map.max_entries (above the kernel's array limit)",
                        at: map.kva,
                        value: u64::from(map.max_entries),
                    });
                }
                let mut batch = [[0u8; 8]; SLOT_BATCH];
                let mut index = 0u32;
                // Bounded by max_entries, checked against MAX_ARRAY_ENTRIES.
                while index < map.max_entries {
                    let n = usize::try_from(map.max_entries.saturating_sub(index))
                        .unwrap_or(SLOT_BATCH)
                        .min(SLOT_BATCH);
                    let first = ptrs.checked_add(u64::from(index).saturating_mul(8)).ok_or(
                        Error::AddrOverflow {
                            addr: ptrs.0,
                            len: u64::from(index).saturating_mul(8),
                        },
                    )?;
                    let bytes = batch
                        .as_flattened_mut()
                        .get_mut(..n.saturating_mul(8))
                        .unwrap_or_default();
                    self.mem.read_kernel(first, bytes)?;
                    for (i, raw) in bytes.chunks_exact(8).enumerate() {
                        let slot_index = index.saturating_add(u32::try_from(i).unwrap_or(0));
                        let ptr = u64::from_le_bytes(<[u8; 8]>::try_from(raw).unwrap_or_default());
                        if ptr == 0 {
                            continue;
                        }
                        let slot = first.checked_add(crate::mem::len_u64(i).saturating_mul(8));
                        let id = self.object_id(map, slot.unwrap_or(first), ptr)?;
                        key.copy_from_slice(&slot_index.to_le_bytes());
                        count = count.saturating_add(1);
                        if f(key, id).is_break() {
                            return Ok(count);
                        }
                    }
                    index = index.saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
                }
            }
            MapType::HASH_OF_MAPS => {
                // The element holds a pointer where an 8-byte value would be.
                let as_hash = MapInfo {
                    map_type: MapType::HASH,
                    value_size: 8,
                    ..*map
                };
                let h = self.htab(&as_hash)?;
                let mut walk = h.walk(self.mem);
                let mut value = [0u8; 8];
                // Bounded by the walk's own caps (buckets, chains, max_entries + extra).
                while let Some(item) = walk.next_into(key, &mut value) {
                    let entry = item?;
                    let id = self.object_id(map, entry.elem, u64::from_le_bytes(value))?;
                    count = count.saturating_add(1);
                    if f(key, id).is_break() {
                        return Ok(count);
                    }
                }
            }
            map_type => {
                return Err(Error::WrongMapType {
                    id: map.id,
                    map_type,
                    op: "reading object slots",
                })
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
#[path = "fdmaps_tests.rs"]
mod tests;
