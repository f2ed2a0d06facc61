//! [`XaWalk`]: every entry of an xarray in index order.

use core::fmt;
use core::iter::FusedIterator;

use zerocopy::byteorder::little_endian::U64;

use super::{
    check_shift, child_shift, count_node, is_node, is_present, node_of, read_node, slot_index,
    Slots, XaEntry,
};
use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::XarrayLayout;
use crate::limits::{MAX_XA_DEPTH, XA_CHUNK_SIZE};

/// One level of the walk: a node and how far its slots have been looked at.
#[derive(Clone, Copy)]
struct Frame {
    /// The node.
    node: Kva,
    /// Its validated shift.
    shift: u8,
    /// The index of slot 0.
    base: u64,
    /// The next slot to look at (64 when all have been).
    next: usize,
    /// A copy of its slots.
    slots: Slots,
}

impl Frame {
    const EMPTY: Self = Self {
        node: Kva(0),
        shift: 0,
        base: 0,
        next: 0,
        slots: [U64::ZERO; XA_CHUNK_SIZE],
    };

    /// The next slot holding an entry or a node pointer, and its value.
    #[inline]
    fn next_present(&mut self) -> Option<(usize, u64)> {
        while let Some(slot) = self.slots.get(self.next) {
            let at = self.next;
            self.next = at.saturating_add(1);
            let entry = slot.get();
            if is_present(entry) {
                return Some((at, entry));
            }
        }
        None
    }
}

/// An in-order walk over an xarray: yields every entry, in ascending index order.
///
/// Each node is read once, with one [`KernelRead::read_kernel`] call, and checked against
/// its place in the tree as the [module documentation](crate::walk::xarray) describes. The walk does not
/// allocate.
///
/// **Fused:** after the first error (which is yielded once, after every entry found
/// before it), and after the last entry, the walk yields `None` forever. A caller can
/// print the entries it got and then the error.
///
/// The tree is read while the walk runs: walk a paused guest, or expect a changing tree
/// to give a mix of old and new entries, or an error.
///
/// ```
/// use mapwalk_core::arch::{x86_64::X86Paging, Paging};
/// use mapwalk_core::kernel::{KernelAddrs, KernelView};
/// use mapwalk_core::layout::XarrayLayout;
/// use mapwalk_core::walk::xarray::{XaEntry, XaWalk};
/// use mapwalk_core::{Pa, Ram};
///
/// const DIRECT_MAP: u64 = 0xffff_8880_0000_0000;
/// // Kernel 6.x: `xa_head` at 8 in `struct xarray`; `shift` at 0, `slots` at 40 in `xa_node`.
/// let layout = XarrayLayout { xa_head: 8, node_shift: 0, node_slots: 40 };
/// // One leaf node (shift 0) at physical 0x1000 holding indices 7 and 42.
/// let mut bytes = vec![0u8; 0x2000];
/// let mut slot = |i: usize, entry: u64| {
///     let at = 0x1000 + 40 + 8 * i;
///     bytes[at..at + 8].copy_from_slice(&entry.to_le_bytes());
/// };
/// slot(42, DIRECT_MAP + 0x1a40);
/// slot(7, DIRECT_MAP + 0x1800);
/// let view = KernelView::new(
///     Ram::new(Pa(0), bytes),
///     Paging::X86_64(X86Paging::new(0, false)),
///     KernelAddrs::x86_64(DIRECT_MAP, 0x2000, 0),
/// );
/// // `xa_head` is the node pointer: the node's address plus 2.
/// let head = (DIRECT_MAP + 0x1000) | 2;
/// let entries: Vec<XaEntry> = XaWalk::new(&view, layout, head).collect::<Result<_, _>>()?;
/// assert_eq!(
///     entries,
///     [XaEntry { index: 7, entry: DIRECT_MAP + 0x1800 }, XaEntry { index: 42, entry: DIRECT_MAP + 0x1a40 }]
/// );
/// # Ok::<(), mapwalk_core::Error>(())
/// ```
pub struct XaWalk<'a, K: ?Sized> {
    mem: &'a K,
    layout: XarrayLayout,
    /// The `xa_head` value, until the first call looks at it.
    head: Option<u64>,
    /// `stack[..depth]` are the nodes from the root down to the current one.
    stack: [Frame; MAX_XA_DEPTH],
    depth: usize,
    /// Nodes read so far.
    nodes: u32,
    /// Set after the last entry or the first error.
    done: bool,
}

impl<K: ?Sized> fmt::Debug for XaWalk<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self
            .depth
            .checked_sub(1)
            .and_then(|d| self.stack.get(d))
            .map(|frame| frame.node);
        f.debug_struct("XaWalk")
            .field("layout", &self.layout)
            .field("head", &self.head)
            .field("depth", &self.depth)
            .field("current_node", &current)
            .field("nodes_visited", &self.nodes)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<'a, K: KernelRead + ?Sized> XaWalk<'a, K> {
    /// A walk over the xarray whose `xa_head` holds `head`. Nothing is read until the
    /// first call to [`next`](Iterator::next).
    pub fn new(mem: &'a K, layout: XarrayLayout, head: u64) -> Self {
        Self {
            mem,
            layout,
            head: Some(head),
            stack: [Frame::EMPTY; MAX_XA_DEPTH],
            depth: 0,
            nodes: 0,
            done: false,
        }
    }

    /// A walk over the `struct xarray` at `xarray`: reads its `xa_head`.
    ///
    /// # Errors
    /// [`Error::AddrOverflow`], or the error reading `xa_head`.
    pub fn from_xarray(mem: &'a K, layout: XarrayLayout, xarray: Kva) -> Result<Self> {
        let off = u64::from(layout.xa_head);
        let at = xarray.checked_add(off).ok_or(Error::AddrOverflow {
            addr: xarray.0,
            len: off,
        })?;
        let head = mem.read_kernel_u64(at)?;
        Ok(Self::new(mem, layout, head))
    }

    /// How many nodes the walk has read so far.
    pub fn nodes_visited(&self) -> u32 {
        self.nodes
    }

    /// The next entry, `Ok(None)` at the end, or the error that ended the walk.
    ///
    /// The same as [`Iterator::next`] with the `Option` outside; also fused: after the
    /// end or an error, returns `Ok(None)` forever.
    ///
    /// # Errors
    /// A read error, or bad tree data as the [module documentation](crate::walk::xarray) lists.
    pub fn try_next(&mut self) -> Result<Option<XaEntry>> {
        if self.done {
            return Ok(None);
        }
        let next = self.step();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
            self.depth = 0;
        }
        next
    }

    fn step(&mut self) -> Result<Option<XaEntry>> {
        if let Some(head) = self.head.take() {
            if is_node(head) {
                self.push(head, 0, None)?;
            } else if is_present(head) {
                return Ok(Some(XaEntry {
                    index: 0,
                    entry: head,
                }));
            } else {
                return Ok(None);
            }
        }
        // Each pass looks at one more slot, leaves a node, or reads a node that counts
        // against `Limits::xa_nodes`: the loop ends.
        loop {
            let Some(top) = self
                .depth
                .checked_sub(1)
                .and_then(|d| self.stack.get_mut(d))
            else {
                return Ok(None);
            };
            let Some((slot, entry)) = top.next_present() else {
                self.depth = self.depth.saturating_sub(1);
                continue;
            };
            let (node, shift) = (top.node, top.shift);
            let index = slot_index(top.base, shift, slot).ok_or(Error::Corrupt {
                what: "xarray slot beyond the 64-bit index space (slot number)",
                at: node,
                value: crate::mem::len_u64(slot),
            })?;
            if !is_node(entry) {
                return Ok(Some(XaEntry { index, entry }));
            }
            let expected = child_shift(node, shift, entry)?;
            self.push(entry, index, Some(expected))?;
        }
    }

    /// Reads the node `entry` points at into a new frame whose slot 0 holds index `base`.
    fn push(&mut self, entry: u64, base: u64, expected: Option<u8>) -> Result<()> {
        let node = node_of(entry);
        count_node(&mut self.nodes, self.mem.limits().xa_nodes, node)?;
        // Shifts fall by six per level from at most 60, so a valid tree fits the stack.
        let frame = self.stack.get_mut(self.depth).ok_or(Error::LimitExceeded {
            what: "xarray depth",
            limit: crate::mem::len_u64(MAX_XA_DEPTH),
            at: node.0,
        })?;
        let shift = read_node(self.mem, &self.layout, node, &mut frame.slots)?;
        check_shift(node, shift, expected)?;
        frame.node = node;
        frame.shift = shift;
        frame.base = base;
        frame.next = 0;
        self.depth = self.depth.saturating_add(1);
        Ok(())
    }
}

impl<K: KernelRead + ?Sized> Iterator for XaWalk<'_, K> {
    type Item = Result<XaEntry>;

    /// The next entry, or the error that ended the walk; `None` forever after either the
    /// end or an error.
    fn next(&mut self) -> Option<Self::Item> {
        self.try_next().transpose()
    }
}

impl<K: KernelRead + ?Sized> FusedIterator for XaWalk<'_, K> {}
