//! LPM_TRIE maps: every prefix with its value.
//!
//! `struct lpm_trie` (which embeds `struct bpf_map`) points at the root
//! `struct lpm_trie_node`; each node has two children (`child[2]`), a `prefixlen`, a
//! `flags` word (`LPM_TREE_NODE_FLAG_IM`: an intermediate node, which holds no value)
//! and `data[]`: the key's `data_size` bytes, then, for a real node, the value. A key as
//! `bpf()` has it is `struct bpf_lpm_trie_key_u8`: the prefix length (4 bytes), then
//! the data.
//!
//! The walk is post-order, children before their parent and `child[0]` first: the
//! order of the kernel's `trie_get_next_key`, so memory and live dumps list the
//! prefixes alike. Along any path the prefix length grows strictly (the kernel's
//! invariant), so a path is at most `max_prefixlen + 1` nodes; a child that does not
//! grow it is corrupt, which also rules out cycles. Shared subtrees are bounded by
//! counting every node visited against `2 × max_entries` (a trie of `n` prefixes has
//! fewer than `n` intermediate nodes).

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::LpmLayout;

/// `LPM_TREE_NODE_FLAG_IM`: an intermediate node, holding no value.
pub const LPM_TREE_NODE_FLAG_IM: u32 = 1;

/// The longest path of a trie the walk follows: `max_prefixlen` is at most
/// `LPM_DATA_SIZE_MAX * 8` = 2,048 bits, and a path holds one node per length.
pub const LPM_MAX_DEPTH: usize = 2049;

/// Bytes of key data an LPM trie may have (`LPM_DATA_SIZE_MAX`).
pub const LPM_DATA_SIZE_MAX: u32 = 256;

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

/// A child pointer: NULL, or a kernel pointer, 8-byte aligned.
fn child_ptr(at: Kva, raw: u64) -> Result<Option<Kva>> {
    if raw == 0 {
        return Ok(None);
    }
    if raw & 7 != 0 || raw >> 63 == 0 {
        return Err(Error::Corrupt {
            what: "lpm_trie_node.child (not a kernel pointer)",
            at,
            value: raw,
        });
    }
    Ok(Some(Kva(raw)))
}

/// One node on the walk's path: its address, its prefix length, and which of its
/// children the walk has gone down (0, 1, or 2: both, so the node is next).
#[derive(Clone, Copy)]
struct Frame {
    node: Kva,
    prefixlen: u32,
    next_child: u8,
}

/// The nodes from the root to the one being walked, and the caps.
struct Path {
    frames: [Frame; LPM_MAX_DEPTH],
    depth: usize,
    visited: u64,
    node_limit: u64,
    max_prefixlen: u32,
}

impl Path {
    fn top(&mut self) -> Option<&mut Frame> {
        let d = self.depth.checked_sub(1)?;
        self.frames.get_mut(d)
    }

    /// Checks `node` (a child of a node of prefix length `parent`) and puts it on the
    /// path.
    fn enter<K: KernelRead + ?Sized>(
        &mut self,
        mem: &K,
        l: &LpmLayout,
        node: Kva,
        parent: Option<u32>,
    ) -> Result<()> {
        self.visited = self.visited.saturating_add(1);
        if self.visited > self.node_limit {
            return Err(Error::LimitExceeded {
                what: "LPM trie nodes (twice max_entries)",
                limit: self.node_limit,
                at: self.visited,
            });
        }
        let plen_at = field(node, l.node_prefixlen)?;
        let prefixlen = mem.read_kernel_u32(plen_at)?;
        if prefixlen > self.max_prefixlen || parent.is_some_and(|p| prefixlen <= p) {
            return Err(Error::Corrupt {
                what: "lpm_trie_node.prefixlen (not longer than its parent's, or above \
                       max_prefixlen)",
                at: plen_at,
                value: u64::from(prefixlen),
            });
        }
        let depth = self.depth;
        let slot = self.frames.get_mut(depth).ok_or(Error::LimitExceeded {
            what: "LPM trie depth",
            limit: crate::mem::len_u64(LPM_MAX_DEPTH),
            at: crate::mem::len_u64(depth),
        })?;
        *slot = Frame {
            node,
            prefixlen,
            next_child: 0,
        };
        self.depth = depth.saturating_add(1);
        Ok(())
    }
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Calls `f` with every prefix of LPM_TRIE `map` and its value, in the order of
    /// the kernel's `BPF_MAP_GET_NEXT_KEY` (post-order). `key` is the caller's buffer
    /// of `key_size` bytes (prefix length, then the data), `value` of `value_size`.
    /// Returns how many prefixes `f` was given; `f`'s `Break` ends the walk.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::lpm`]; [`Error::BufferSize`]; [`Error::Corrupt`]
    /// for a node whose prefix length does not grow along its path or exceeds
    /// `max_prefixlen`, a bad pointer or sizes that disagree with the map;
    /// [`Error::LimitExceeded`] for more nodes than the map can hold; a read error.
    pub fn for_each_lpm_entry(
        &self,
        map: &MapInfo,
        key: &mut [u8],
        value: &mut [u8],
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        if map.map_type != MapType::LPM_TRIE {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "LPM trie walk",
            });
        }
        let l: LpmLayout = self
            .layout
            .lpm
            .ok_or(Error::LayoutMissing { what: "lpm_trie" })?;
        for (need, have) in [(map.key_size, key.len()), (map.value_size, value.len())] {
            if u64::from(need) != crate::mem::len_u64(have) {
                return Err(Error::BufferSize {
                    need: u64::from(need),
                    have: crate::mem::len_u64(have),
                });
            }
        }
        let data_size_at = field(map.kva, l.data_size)?;
        let data_size = self.mem.read_kernel_u64(data_size_at)?;
        let max_at = field(map.kva, l.max_prefixlen)?;
        let max_prefixlen = self.mem.read_kernel_u64(max_at)?;
        if data_size > u64::from(LPM_DATA_SIZE_MAX)
            || Some(data_size) != u64::from(map.key_size).checked_sub(4)
            || max_prefixlen != data_size.saturating_mul(8)
        {
            return Err(Error::Corrupt {
                what: "lpm_trie.data_size or max_prefixlen (disagree with key_size)",
                at: data_size_at,
                value: data_size,
            });
        }
        // Checked against LPM_DATA_SIZE_MAX above.
        let data_size = u32::try_from(data_size).unwrap_or(0);
        let max_prefixlen = u32::try_from(max_prefixlen).unwrap_or(0);
        let value_at = l.node_data.saturating_add(data_size);
        let node_limit = u64::from(map.max_entries).saturating_mul(2);

        let root_at = field(map.kva, l.root)?;
        let Some(root) = child_ptr(root_at, self.mem.read_kernel_u64(root_at)?)? else {
            return Ok(0);
        };
        let mut walk = Path {
            frames: [Frame {
                node: Kva::NULL,
                prefixlen: 0,
                next_child: 0,
            }; LPM_MAX_DEPTH],
            depth: 0,
            visited: 0,
            node_limit,
            max_prefixlen,
        };
        let mut count = 0u64;
        walk.enter(self.mem, &l, root, None)?;
        // Each pass goes down one child or finishes one node: bounded by the node cap.
        while let Some(top) = walk.top() {
            let frame = *top;
            if frame.next_child < 2 {
                top.next_child = frame.next_child.saturating_add(1);
                let off = u64::from(frame.next_child).saturating_mul(8);
                let at = field(frame.node, l.node_child)?.checked_add(off).ok_or(
                    Error::AddrOverflow {
                        addr: frame.node.0,
                        len: off,
                    },
                )?;
                if let Some(child) = child_ptr(at, self.mem.read_kernel_u64(at)?)? {
                    walk.enter(self.mem, &l, child, Some(frame.prefixlen))?;
                }
                continue;
            }
            walk.depth = walk.depth.saturating_sub(1);
            let flags = self.mem.read_kernel_u32(field(frame.node, l.node_flags)?)?;
            if flags & LPM_TREE_NODE_FLAG_IM != 0 {
                continue;
            }
            let key_size = crate::mem::len_u64(key.len());
            let (key_len, key_data) = key.split_at_mut_checked(4).ok_or(Error::BufferSize {
                need: 4,
                have: key_size,
            })?;
            key_len.copy_from_slice(&frame.prefixlen.to_le_bytes());
            self.mem
                .read_kernel(field(frame.node, l.node_data)?, key_data)?;
            self.mem.read_kernel(field(frame.node, value_at)?, value)?;
            count = count.saturating_add(1);
            if f(key, value).is_break() {
                return Ok(count);
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
#[path = "lpm_tests.rs"]
mod tests;
