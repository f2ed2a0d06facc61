//! [`XaWalk`]: every entry of an xarray in index order.

use core::fmt;
use core::iter::FusedIterator;

use zerocopy::byteorder::little_endian::U64;

use super::{
    check_shift, child_shift, count_node, is_node, is_present, node_of, read_node, slot_index,
    Slots, XaEntry, XA_RETRY_ENTRY,
};
use crate::addr::Kva;
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::layout::XarrayLayout;
use crate::limits::{MAX_XA_DEPTH, XA_CHUNK_SIZE, XA_WALK_RESTARTS};

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

    /// The next slot holding an entry, a node pointer or (when `retry`) a retry entry,
    /// and its value.
    #[inline]
    fn next_present(&mut self, retry: bool) -> Option<(usize, u64)> {
        while let Some(slot) = self.slots.get(self.next) {
            let at = self.next;
            self.next = at.saturating_add(1);
            let entry = slot.get();
            if is_present(entry) || (retry && entry == XA_RETRY_ENTRY) {
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
/// **A running guest.** The tree is read while the walk runs. A walk made with
/// [`from_xarray`](Self::from_xarray) knows where the tree's head is and does what the
/// kernel's lockless readers (`xas_find` under RCU) do when the tree changes under them:
/// on a retry entry (a node being taken out of the tree), or on a node that is no
/// longer one (freed and reused: its shift or contents are wrong, or it cannot be
/// read), it starts again from the root, past the last index it yielded, at most
/// [`XA_WALK_RESTARTS`] times per walk (then [`Error::Unstable`]). The same sign met
/// on two reads in a row is the memory as it is: a retry entry is then a hole, a bad
/// node an error. Entries are yielded in ascending index order, each index once; an
/// entry added or removed during the walk may or may not be yielded. A walk made
/// with [`new`](Self::new) cannot start again: walk a paused guest.
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
    /// Where `xa_head` is, when known: the walk can start again from the root.
    source: Option<Kva>,
    /// The next index the walk may yield (after a restart, past the last one yielded).
    min_index: u64,
    /// Whether anything was yielded (so that `min_index` is past it).
    yielded: bool,
    /// Whether the last index yielded was `u64::MAX`: nothing can follow it.
    past_max: bool,
    /// Restarts so far.
    restarts: u32,
    /// The last sign of change: the node (or slot holder) and what was wrong there.
    last_trouble: Option<(Kva, u64)>,
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
            source: None,
            min_index: 0,
            yielded: false,
            past_max: false,
            restarts: 0,
            last_trouble: None,
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
        let mut walk = Self::new(mem, layout, head);
        walk.source = Some(at);
        Ok(walk)
    }

    /// How many times the walk started again from the root because the tree changed
    /// under it.
    pub fn restarts(&self) -> u32 {
        self.restarts
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
        match next {
            Ok(Some(e)) => {
                self.yielded = true;
                self.past_max = e.index == u64::MAX;
                self.min_index = e.index.saturating_add(1);
            }
            _ => {
                self.done = true;
                self.depth = 0;
            }
        }
        next
    }

    fn step(&mut self) -> Result<Option<XaEntry>> {
        if let Some(head) = self.head.take() {
            if is_node(head) {
                if let Err(e) = self.push(head, 0, None) {
                    self.trouble(node_of(head), e)?;
                    return self.step_again();
                }
            } else if is_present(head) && self.min_index == 0 {
                return Ok(Some(XaEntry {
                    index: 0,
                    entry: head,
                }));
            } else {
                return Ok(None);
            }
        }
        // Each pass looks at one more slot, leaves a node, reads a node that counts
        // against `Limits::xa_nodes`, or starts again (at most XA_WALK_RESTARTS times):
        // the loop ends.
        let retry = self.source.is_some();
        loop {
            let Some(top) = self
                .depth
                .checked_sub(1)
                .and_then(|d| self.stack.get_mut(d))
            else {
                return Ok(None);
            };
            let Some((slot, entry)) = top.next_present(retry) else {
                self.depth = self.depth.saturating_sub(1);
                continue;
            };
            let (node, shift) = (top.node, top.shift);
            let index = slot_index(top.base, shift, slot).ok_or(Error::Corrupt {
                what: "xarray slot beyond the 64-bit index space (slot number)",
                at: node,
                value: crate::mem::len_u64(slot),
            })?;
            // The last index this slot covers.
            let last = 1u64
                .checked_shl(u32::from(shift))
                .map_or(u64::MAX, |n| index.saturating_add(n.saturating_sub(1)));
            if self.yielded && last < self.min_index {
                // Yielded before the walk started again.
                continue;
            }
            if entry == XA_RETRY_ENTRY {
                let at = node.checked_add(crate::mem::len_u64(slot)).unwrap_or(node);
                if self.last_trouble == Some((at, XA_RETRY_ENTRY)) {
                    // The same on two reads in a row: the memory as it is; a hole.
                    continue;
                }
                self.last_trouble = Some((at, XA_RETRY_ENTRY));
                self.restart(index)?;
                return self.step_again();
            }
            if !is_node(entry) {
                if self.yielded && index < self.min_index {
                    continue;
                }
                return Ok(Some(XaEntry { index, entry }));
            }
            let pushed = child_shift(node, shift, entry)
                .and_then(|expected| self.push(entry, index, Some(expected)));
            if let Err(e) = pushed {
                self.trouble(node_of(entry), e)?;
                return self.step_again();
            }
        }
    }

    /// A node that could not be taken into the walk: the tree changed under the walk
    /// (start again) unless the same happened on the read before (the error).
    fn trouble(&mut self, node: Kva, e: Error) -> Result<()> {
        let sign = (node, 0);
        if self.source.is_none() || self.last_trouble == Some(sign) {
            return Err(e);
        }
        self.last_trouble = Some(sign);
        let at = self.min_index;
        self.restart(at)
    }

    /// Starts again from the root, past what was yielded.
    fn restart(&mut self, at: u64) -> Result<()> {
        let Some(source) = self.source else {
            return Ok(());
        };
        if self.restarts >= XA_WALK_RESTARTS {
            return Err(Error::Unstable {
                what: "xarray at index",
                at,
                reads: self.restarts.saturating_add(1),
            });
        }
        self.restarts = self.restarts.saturating_add(1);
        self.depth = 0;
        self.head = if self.past_max {
            None
        } else {
            Some(self.mem.read_kernel_u64(source)?)
        };
        Ok(())
    }

    /// The step after a restart (the loop in [`step`](Self::step) is left first, so
    /// that the head is looked at again). Bounded by [`XA_WALK_RESTARTS`].
    fn step_again(&mut self) -> Result<Option<XaEntry>> {
        self.step()
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
