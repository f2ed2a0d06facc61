//! Xarrays (and so IDRs) laid into synthetic RAM the way the kernel lays them out.
//!
//! [`build_xarray`] turns a list of `(index, entry)` pairs into a tree of `xa_node`s and
//! returns the value for `xa_head`; [`build_xarray_with_nodes`] also says where each node
//! went, so that a test can corrupt it. Entries are stored verbatim, whatever they are:
//! a test can put retry or sibling markers, or node pointers of its own, into leaves.
//!
//! The tree is the one the kernel keeps: the root's shift is the smallest that covers the
//! largest index, every node on the path to an entry exists, and a single entry at index
//! 0 that is not an internal entry is stored in `xa_head` itself, with no node.
//!
//! Besides `shift` and `slots`, each node gets the kernel's `offset`, `count` and
//! `nr_values` (the three bytes after `shift`) and `parent` (the next 8-byte-aligned
//! word), when those lie outside the slots. `array` and the marks stay zero.

use alloc::vec::Vec;

use super::SynthRam;
use crate::addr::{Kva, Pa};
use crate::layout::XarrayLayout;
use crate::limits::{XA_CHUNK_SHIFT, XA_CHUNK_SIZE};

/// `sizeof(struct xa_node)` on 64-bit kernels: a 40-byte header, 64 slots and three
/// 64-bit mark words.
pub const XA_NODE_SIZE: u64 = 576;

/// Alignment of nodes (slab objects of `radix_tree_node_cachep` are 8-byte aligned).
pub const XA_NODE_ALIGN: u64 = 8;

/// The xarray layout of 64-bit kernels 4.20 to 6.x: `xarray.xa_head` at 8 (after the
/// 4-byte spinlock and `xa_flags`), `xa_node.shift` at 0, `xa_node.slots` at 40.
pub const KERNEL_XARRAY_LAYOUT: XarrayLayout = XarrayLayout {
    xa_head: 8,
    node_shift: 0,
    node_slots: 40,
};

/// Bytes of the slot array.
const SLOTS_BYTES: u64 = XA_CHUNK_SIZE as u64 * 8;

/// Bytes of the marks after the slots.
const MARKS_BYTES: u64 = 3 * 8;

/// The size of a node under `layout`: [`XA_NODE_SIZE`], or more when the layout puts
/// `shift` or the slots (and the marks after them) further out.
pub fn xa_node_size(layout: &XarrayLayout) -> u64 {
    let slots_end = u64::from(layout.node_slots) + SLOTS_BYTES + MARKS_BYTES;
    // `shift`, the three bytes after it, and `parent`.
    let header_end = (u64::from(layout.node_shift) + 4).next_multiple_of(8) + 8;
    slots_end
        .max(header_end)
        .next_multiple_of(8)
        .max(XA_NODE_SIZE)
}

/// The internal entry that points at the node at `kva` (`xa_mk_node`).
pub fn xa_node_entry(kva: Kva) -> u64 {
    assert!(kva.0 & 3 == 0, "node address {kva} is not 4-byte aligned");
    kva.0 | 2
}

/// One node laid out by [`build_xarray_with_nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthXaNode {
    /// Its physical address.
    pub pa: Pa,
    /// Its direct-map address.
    pub kva: Kva,
    /// Its shift.
    pub shift: u8,
    /// The index its slot 0 covers.
    pub index: u64,
    /// The node whose slot points at it (`None` for the root).
    pub parent: Option<Pa>,
    /// Which slot of the parent points at it.
    pub offset: u8,
}

impl SynthXaNode {
    /// The internal entry that points at this node: what its parent's slot (or
    /// `xa_head`) holds.
    pub fn entry(&self) -> u64 {
        xa_node_entry(self.kva)
    }

    /// The physical address of slot `slot`.
    pub fn slot_pa(&self, layout: &XarrayLayout, slot: usize) -> Pa {
        assert!(
            slot < XA_CHUNK_SIZE,
            "an xa_node has {XA_CHUNK_SIZE} slots, not {}",
            slot + 1
        );
        Pa(self.pa.0 + u64::from(layout.node_slots) + slot as u64 * 8)
    }

    /// The physical address of the `shift` byte.
    pub fn shift_pa(&self, layout: &XarrayLayout) -> Pa {
        Pa(self.pa.0 + u64::from(layout.node_shift))
    }
}

/// An xarray laid out by [`build_xarray_with_nodes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthXarray {
    /// The value for `xa_head`.
    pub head: u64,
    /// Every node, root first, then depth first in index order (the order a walk reads
    /// them in).
    pub nodes: Vec<SynthXaNode>,
}

impl SynthXarray {
    /// The root node, if the array has nodes.
    pub fn root(&self) -> Option<&SynthXaNode> {
        self.nodes.first()
    }

    /// The node with `shift` whose slot 0 covers `index`.
    pub fn node(&self, shift: u8, index: u64) -> Option<&SynthXaNode> {
        self.nodes
            .iter()
            .find(|n| n.shift == shift && n.index == index)
    }
}

/// Lays out an xarray holding `entries` (`(index, entry)` pairs, in any order) and
/// returns the value for `xa_head`. Nodes are allocated from `ram` and addressed through
/// the direct map at `direct_map_base`.
///
/// # Panics
/// On a repeated index, or when `ram` is full.
pub fn build_xarray(
    ram: &mut SynthRam,
    layout: &XarrayLayout,
    direct_map_base: u64,
    entries: &[(u64, u64)],
) -> u64 {
    build_xarray_with_nodes(ram, layout, direct_map_base, entries).head
}

/// [`build_xarray`], also returning where each node went. Entries of 0 (`NULL`) are left
/// out, as storing `NULL` erases.
///
/// # Panics
/// On a repeated index, or when `ram` is full.
pub fn build_xarray_with_nodes(
    ram: &mut SynthRam,
    layout: &XarrayLayout,
    direct_map_base: u64,
    entries: &[(u64, u64)],
) -> SynthXarray {
    let mut sorted: Vec<(u64, u64)> = entries
        .iter()
        .copied()
        .filter(|&(_, entry)| entry != 0)
        .collect();
    sorted.sort_unstable_by_key(|&(index, _)| index);
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        panic!("index {} given twice", w[0].0);
    }
    let mut nodes = Vec::new();
    let head = match sorted[..] {
        [] => 0,
        [(0, entry)] if entry & 3 != 2 => entry,
        [.., (max, _)] => {
            let mut shift = 0u8;
            while shift < 60 && max >> (shift + XA_CHUNK_SHIFT) != 0 {
                shift += XA_CHUNK_SHIFT;
            }
            let mut b = Builder {
                ram,
                layout,
                direct_map_base,
                nodes: &mut nodes,
            };
            let root = b.node(&sorted, shift, 0, None, 0);
            xa_node_entry(root)
        }
    };
    SynthXarray { head, nodes }
}

/// Allocates one empty node with `shift`, for trees built by hand. Returns its physical
/// address; its direct-map address is `direct_map_base + pa`.
///
/// # Panics
/// When `ram` is full.
pub fn alloc_xa_node(ram: &mut SynthRam, layout: &XarrayLayout, shift: u8) -> Pa {
    let pa = ram.alloc(xa_node_size(layout), XA_NODE_ALIGN);
    ram.write_u8(Pa(pa.0 + u64::from(layout.node_shift)), shift);
    pa
}

struct Builder<'a> {
    ram: &'a mut SynthRam,
    layout: &'a XarrayLayout,
    direct_map_base: u64,
    nodes: &'a mut Vec<SynthXaNode>,
}

impl Builder<'_> {
    /// Lays out the node with `shift` whose slot 0 is index `base`, holding `entries`
    /// (sorted, all inside the node's range). Returns its direct-map address.
    fn node(
        &mut self,
        entries: &[(u64, u64)],
        shift: u8,
        base: u64,
        parent: Option<Pa>,
        offset: u8,
    ) -> Kva {
        let layout = *self.layout;
        let pa = alloc_xa_node(self.ram, &layout, shift);
        let kva = Kva(self.direct_map_base + pa.0);
        let me = SynthXaNode {
            pa,
            kva,
            shift,
            index: base,
            parent,
            offset,
        };
        self.nodes.push(me);
        let (mut count, mut nr_values) = (0u8, 0u8);
        let mut rest = entries;
        while let Some(&(first, _)) = rest.first() {
            let slot = (first - base) >> shift;
            assert!(
                slot < XA_CHUNK_SIZE as u64,
                "index {first:#x} outside the node at {base:#x}"
            );
            let slot_base = base + (slot << shift);
            let n = rest
                .iter()
                .take_while(|&&(index, _)| (index - slot_base) >> shift == 0)
                .count();
            let (group, tail) = rest.split_at(n);
            let value = if shift == 0 {
                group[0].1
            } else {
                let child = self.node(
                    group,
                    shift - XA_CHUNK_SHIFT,
                    slot_base,
                    Some(pa),
                    slot as u8,
                );
                xa_node_entry(child)
            };
            self.ram
                .write_u64(me.slot_pa(&layout, slot as usize), value);
            count += 1;
            nr_values += u8::from(value & 1 == 1);
            rest = tail;
        }
        let header = u64::from(layout.node_shift);
        self.header(pa, header + 1, &[offset, count, nr_values]);
        let parent_kva = parent.map_or(0, |p| self.direct_map_base + p.0);
        self.header(
            pa,
            (header + 4).next_multiple_of(8),
            &parent_kva.to_le_bytes(),
        );
        kva
    }

    /// Writes a header field at `off` in the node at `pa`, unless it would overlap the
    /// slots.
    fn header(&mut self, pa: Pa, off: u64, bytes: &[u8]) {
        let slots = u64::from(self.layout.node_slots);
        let end = off + bytes.len() as u64;
        if end <= slots || off >= slots + SLOTS_BYTES {
            self.ram.write(Pa(pa.0 + off), bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DMB: u64 = 0xffff_8880_0000_0000;

    #[test]
    fn node_sizes() {
        assert_eq!(xa_node_size(&KERNEL_XARRAY_LAYOUT), XA_NODE_SIZE);
        let odd = XarrayLayout {
            xa_head: 0,
            node_shift: 1000,
            node_slots: 8,
        };
        assert_eq!(xa_node_size(&odd), 1016);
        let late = XarrayLayout {
            xa_head: 0,
            node_shift: 0,
            node_slots: 100,
        };
        assert_eq!(xa_node_size(&late), 640);
    }

    #[test]
    fn kernel_header_fields() {
        let l = KERNEL_XARRAY_LAYOUT;
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        let xa = build_xarray_with_nodes(
            &mut ram,
            &l,
            DMB,
            &[(70, 9), (3, 0x1000), (5, 7), (64, 0x2000)],
        );
        let [root, a, b] = xa.nodes[..] else {
            panic!("{:?}", xa.nodes)
        };
        assert_eq!(xa.head, root.kva.0 | 2);
        assert_eq!(
            (root.shift, a.shift, a.index, b.shift, b.index),
            (6, 0, 0, 0, 64)
        );
        assert_eq!(
            (a.parent, a.offset, b.parent, b.offset),
            (Some(root.pa), 0, Some(root.pa), 1)
        );
        // shift, offset, count, nr_values; parent.
        assert_eq!(ram.slice(root.pa, 4), [6, 0, 2, 0]);
        assert_eq!(ram.read_u64(Pa(root.pa.0 + 8)), 0);
        assert_eq!(ram.slice(b.pa, 4), [0, 1, 2, 1]);
        assert_eq!(ram.read_u64(Pa(b.pa.0 + 8)), root.kva.0);
        assert_eq!(ram.read_u64(root.slot_pa(&l, 1)), b.entry());
        assert_eq!(ram.read_u64(a.slot_pa(&l, 5)), 7);
        assert_eq!(ram.read_u64(b.slot_pa(&l, 6)), 9);
        assert_eq!(ram.slice(a.pa, 4), [0, 0, 2, 1]);
        assert_eq!(xa.node(0, 64), Some(&b));
        assert!(b.pa.0 >= a.pa.0 + XA_NODE_SIZE);
    }

    #[test]
    fn heads() {
        let l = KERNEL_XARRAY_LAYOUT;
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        assert_eq!(build_xarray(&mut ram, &l, DMB, &[]), 0);
        assert_eq!(build_xarray(&mut ram, &l, DMB, &[(0, 0)]), 0);
        assert_eq!(build_xarray(&mut ram, &l, DMB, &[(0, 0x1000)]), 0x1000);
        // An internal entry at index 0 needs a node, as does any other index.
        let xa = build_xarray_with_nodes(&mut ram, &l, DMB, &[(0, 0x402)]);
        assert_eq!((xa.nodes.len(), xa.nodes[0].shift), (1, 0));
        let xa = build_xarray_with_nodes(&mut ram, &l, DMB, &[(1 << 12, 0x1000)]);
        assert_eq!(
            xa.nodes.iter().map(|n| n.shift).collect::<Vec<_>>(),
            [12, 6, 0]
        );
        assert_eq!(xa.root().unwrap().entry(), xa.head);
    }

    #[test]
    #[should_panic(expected = "index 3 given twice")]
    fn repeated_index() {
        let mut ram = SynthRam::new(Pa(0), 1 << 20);
        build_xarray(&mut ram, &KERNEL_XARRAY_LAYOUT, DMB, &[(3, 8), (3, 16)]);
    }
}
