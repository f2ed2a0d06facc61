//! [`xa_load`]: one index of an xarray.

use zerocopy::byteorder::little_endian::U64;

use super::{check_shift, child_shift, count_node, is_node, is_present, node_of, read_node};
use crate::error::Result;
use crate::kernel::KernelRead;
use crate::layout::XarrayLayout;
use crate::limits::{XA_CHUNK_SHIFT, XA_CHUNK_SIZE};

/// The entry at `index` of the xarray whose `xa_head` holds `head`, or `None` when the
/// slot is empty or holds a marker.
///
/// Descends by the index bits, reading one node per level (at most [`MAX_XA_DEPTH`](crate::limits::MAX_XA_DEPTH)),
/// with the same checks and node cap as [`XaWalk`](super::XaWalk). For single-index entries (all an
/// IDR stores) it returns `Some(e)` exactly when the walk yields `(index, e)`. An entry
/// that stands in a node above the last level covers a range of indices, as the kernel's
/// multi-index entries do: `xa_load` returns it for every index of the range, while the
/// walk yields it once, at the range's first index. Like the walk, it does not follow
/// sibling entries to the head of a multi-index entry.
///
/// # Errors
/// A read error, or bad tree data on the path to `index` as the
/// [module documentation](crate::walk::xarray) lists.
pub fn xa_load<K: KernelRead + ?Sized>(
    mem: &K,
    layout: &XarrayLayout,
    head: u64,
    index: u64,
) -> Result<Option<u64>> {
    if !is_node(head) {
        return Ok((index == 0 && is_present(head)).then_some(head));
    }
    let limit = mem.limits().xa_nodes;
    let mut nodes = 0u32;
    let mut slots = [U64::ZERO; XA_CHUNK_SIZE];
    let mut entry = head;
    let mut expected = None;
    // Each level's shift is checked to be six below its parent's and a leaf may hold no
    // node pointer, so the loop reads at most `MAX_XA_DEPTH` nodes (and obeys the cap).
    loop {
        let node = node_of(entry);
        count_node(&mut nodes, limit, node)?;
        let shift = read_node(mem, layout, node, &mut slots)?;
        check_shift(node, shift, expected)?;
        if expected.is_none() {
            // Indices past what the root covers are absent.
            let above =
                index.checked_shr(u32::from(shift).saturating_add(u32::from(XA_CHUNK_SHIFT)));
            if above.is_some_and(|bits| bits != 0) {
                return Ok(None);
            }
        }
        let slot = index.checked_shr(u32::from(shift)).unwrap_or(0)
            & crate::addr::low_mask(u32::from(XA_CHUNK_SHIFT));
        let found = usize::try_from(slot)
            .ok()
            .and_then(|s| slots.get(s))
            .map_or(0, |s| s.get());
        if !is_node(found) {
            return Ok(is_present(found).then_some(found));
        }
        expected = Some(child_shift(node, shift, found)?);
        entry = found;
    }
}
