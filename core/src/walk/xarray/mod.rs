//! The xarray (and IDR) walk.
//!
//! A Linux `struct xarray` is a radix tree of 64-way `struct xa_node`s. Its `xa_head` is
//! one of:
//! - `NULL`: the array is empty;
//! - an internal entry that is a node pointer (`(e & 3) == 2 && e > 4096`, node at
//!   `e - 2`): the root of the tree;
//! - anything else that is not an internal entry: the single entry at index 0.
//!
//! Each node's `shift` says which bits of the index its slots consume: slot `s` of a node
//! whose first index is `base` holds index `base + (s << shift)`. Leaves have shift 0;
//! each child's shift is its parent's minus [`XA_CHUNK_SHIFT`]. Slots hold user entries,
//! node pointers (in non-leaf nodes), `NULL`, or internal markers (`(e & 3) == 2 &&
//! e <= 4096`: sibling, retry and zero entries), which hold no entry of their own.
//!
//! [`XaWalk`] yields every entry in ascending index order; [`xa_load`] looks up one
//! index. Both read each node with one [`KernelRead::read_kernel`] call (its `shift` and
//! its 64 slots together when the layout puts them within [`NODE_SPAN_MAX`] bytes of
//! each other, as every kernel does), and both check each node against its place in the
//! tree:
//! - the root's shift is a multiple of [`XA_CHUNK_SHIFT`] below 64, else
//!   [`Error::Corrupt`];
//! - a child's shift is its parent's minus [`XA_CHUNK_SHIFT`], else [`Error::BadXaNode`];
//! - a node pointer in a leaf, or an entry whose index does not fit in 64 bits, is
//!   [`Error::Corrupt`];
//! - the nodes read count against [`Limits::xa_nodes`](crate::Limits::xa_nodes); the one
//!   past it is [`Error::LimitExceeded`]. This ends any walk over a tree whose nodes
//!   point at each other, whatever their shifts claim.
//!
//! Nothing is allocated: the walk keeps one frame per level (at most [`MAX_XA_DEPTH`](crate::limits::MAX_XA_DEPTH),
//! each holding a copy of its node's slots, about 6 KiB in all) inside [`XaWalk`].

#[cfg(test)]
mod churn_tests;
mod load;
#[cfg(test)]
mod tests;
mod walk;

use zerocopy::byteorder::little_endian::U64;
use zerocopy::IntoBytes;

use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::XarrayLayout;
use crate::limits::{XA_CHUNK_SHIFT, XA_CHUNK_SIZE};

pub use load::xa_load;
pub use walk::XaWalk;

/// The slot array of an `xa_node`, as the kernel stores it.
type Slots = [U64; XA_CHUNK_SIZE];

/// Bytes in a node's slot array.
const SLOTS_LEN: usize = size_of::<Slots>();

/// The largest piece read to fetch a node's `shift` and its slots in one call. A layout
/// that puts them further apart (no kernel does; `shift` is the first byte of an
/// `xa_node` and the slots start at byte 40) costs a second read per node.
pub const NODE_SPAN_MAX: usize = 640;

/// Internal entries up to this value are markers (sibling, retry, zero), not nodes.
const XA_MARKER_MAX: u64 = 4096;

/// `XA_RETRY_ENTRY` (`xa_mk_internal(256)`): a slot of a node the kernel is taking out
/// of the tree; its lockless readers start again from the root when they meet it.
const XA_RETRY_ENTRY: u64 = (256 << 2) | 2;

/// The largest shift of a valid node: the root of a tree covering all 64 index bits.
const XA_MAX_SHIFT: u8 = 60;

/// Whether `entry` is an internal entry (`xa_is_internal`).
#[inline]
const fn is_internal(entry: u64) -> bool {
    entry & 3 == 2
}

/// Whether `entry` points at a node (`xa_is_node`).
#[inline]
const fn is_node(entry: u64) -> bool {
    is_internal(entry) && entry > XA_MARKER_MAX
}

/// Whether `entry` is an entry of the array: neither `NULL` nor a marker. Node pointers
/// count as present; callers tell them apart with [`is_node`].
#[inline]
const fn is_present(entry: u64) -> bool {
    entry != 0 && !(is_internal(entry) && entry <= XA_MARKER_MAX)
}

/// The address of the node a node pointer designates (`xa_to_node`).
#[inline]
const fn node_of(entry: u64) -> Kva {
    // `entry & 3 == 2`, so this is `entry - 2`.
    Kva(entry & !3)
}

/// The index held by `slot` of a node whose first index is `base`, or `None` when it
/// does not fit in 64 bits (possible only in slots 16..64 of a shift-60 root).
#[inline]
fn slot_index(base: u64, shift: u8, slot: usize) -> Option<u64> {
    let step = 1u64.checked_shl(u32::from(shift))?;
    u64::try_from(slot)
        .ok()?
        .checked_mul(step)?
        .checked_add(base)
}

/// Checks a node's shift against its place: `expected` for a child, `None` for the root.
fn check_shift(node: Kva, shift: u8, expected: Option<u8>) -> Result<()> {
    match expected {
        Some(expected) if shift != expected => Err(Error::BadXaNode {
            node,
            shift,
            expected,
        }),
        Some(_) => Ok(()),
        None if shift <= XA_MAX_SHIFT && shift.checked_rem(XA_CHUNK_SHIFT) == Some(0) => Ok(()),
        None => Err(Error::Corrupt {
            what: "xarray root node shift (not a multiple of 6 below 64)",
            at: node,
            value: u64::from(shift),
        }),
    }
}

/// The shift a child of a node with `shift` must have, or the error for a node pointer
/// `entry` found in a leaf.
#[inline]
fn child_shift(node: Kva, shift: u8, entry: u64) -> Result<u8> {
    shift.checked_sub(XA_CHUNK_SHIFT).ok_or(Error::Corrupt {
        what: "xarray node pointer in a leaf node",
        at: node,
        value: entry,
    })
}

/// Counts one more node against the cap; `count` is the number read so far.
#[inline]
fn count_node(count: &mut u32, limit: u32, node: Kva) -> Result<()> {
    if *count >= limit {
        return Err(Error::LimitExceeded {
            what: "xarray nodes",
            limit: u64::from(limit),
            at: node.0,
        });
    }
    *count = count.saturating_add(1);
    Ok(())
}

/// Reads the node at `node`: fills `slots` and returns the raw `shift`.
fn read_node<K: KernelRead + ?Sized>(
    mem: &K,
    layout: &XarrayLayout,
    node: Kva,
    slots: &mut Slots,
) -> Result<u8> {
    let at = |off: u64| {
        node.checked_add(off).ok_or(Error::AddrOverflow {
            addr: node.0,
            len: off,
        })
    };
    let slots_off = u64::from(layout.node_slots);
    let shift_off = u64::from(layout.node_shift);
    let slots_len = crate::mem::len_u64(SLOTS_LEN);
    let lo = slots_off.min(shift_off);
    let hi = slots_off
        .saturating_add(slots_len)
        .max(shift_off.saturating_add(1));
    let mut buf = [0u8; NODE_SPAN_MAX];
    let span = usize::try_from(hi.saturating_sub(lo))
        .ok()
        .and_then(|n| buf.get_mut(..n));
    let Some(span) = span else {
        // `shift` is far from the slots: two reads.
        mem.read_kernel(at(slots_off)?, slots.as_mut_bytes())?;
        let mut shift = [0u8; 1];
        mem.read_kernel(at(shift_off)?, &mut shift)?;
        let [shift] = shift;
        return Ok(shift);
    };
    at(hi)?;
    mem.read_kernel(at(lo)?, span)?;
    // Both pieces lie inside `span` by the choice of `lo` and `hi`; the errors below
    // cannot happen.
    let inside = |off: u64| usize::try_from(off.saturating_sub(lo)).unwrap_or(usize::MAX);
    let bad_span = Error::BufferSize {
        need: hi.saturating_sub(lo),
        have: crate::mem::len_u64(NODE_SPAN_MAX),
    };
    let shift = span.get(inside(shift_off)).copied().ok_or(bad_span)?;
    let from = inside(slots_off);
    let src = span
        .get(from..from.saturating_add(SLOTS_LEN))
        .ok_or(bad_span)?;
    slots.as_mut_bytes().copy_from_slice(src);
    Ok(shift)
}

/// One entry of an xarray.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct XaEntry {
    /// Its index.
    pub index: u64,
    /// The raw entry: for an IDR of objects, the object's address.
    pub entry: u64,
}
