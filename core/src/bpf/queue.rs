//! QUEUE and STACK maps: every element, in the order pops would return them.
//!
//! `struct bpf_queue_stack` (which embeds `struct bpf_map`) holds a ring of
//! `size = max_entries + 1` slots of `value_size` bytes at `elements`; the elements are
//! the slots from `tail` up to `head - 1` (modulo `size`). A queue pops from `tail`
//! (oldest first), a stack from `head - 1` (newest first). `bpf()` can only peek at
//! the head, so memory is the only full view.

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;

fn field(base: Kva, off: u32) -> Result<Kva> {
    base.checked_add(u64::from(off)).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: u64::from(off),
    })
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Calls `f` with every element of QUEUE or STACK `map`, in pop order, read into
    /// `value` (the caller's buffer of `value_size` bytes). Returns how many elements
    /// `f` was given; `f`'s `Break` ends the walk.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::queue`]; [`Error::BufferSize`];
    /// [`Error::Corrupt`] when `size` is not `max_entries + 1` or `head` or `tail` is
    /// past it; a read error.
    pub fn for_each_queue_value(
        &self,
        map: &MapInfo,
        value: &mut [u8],
        mut f: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        if !matches!(map.map_type, MapType::QUEUE | MapType::STACK) {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "queue or stack walk",
            });
        }
        let l = self.layout.queue.ok_or(Error::LayoutMissing {
            what: "bpf_queue_stack",
        })?;
        if u64::from(map.value_size) != crate::mem::len_u64(value.len()) || value.is_empty() {
            return Err(Error::BufferSize {
                need: u64::from(map.value_size),
                have: crate::mem::len_u64(value.len()),
            });
        }
        let size_at = field(map.kva, l.size)?;
        let size = self.mem.read_kernel_u32(size_at)?;
        if Some(size) != map.max_entries.checked_add(1) {
            return Err(Error::Corrupt {
                what: "bpf_queue_stack.size (not max_entries + 1)",
                at: size_at,
                value: u64::from(size),
            });
        }
        let mut ends = [0u32; 2];
        for (end, off) in ends.iter_mut().zip([l.head, l.tail]) {
            let at = field(map.kva, off)?;
            *end = self.mem.read_kernel_u32(at)?;
            if *end >= size {
                return Err(Error::Corrupt {
                    what: "bpf_queue_stack.head or tail (past size)",
                    at,
                    value: u64::from(*end),
                });
            }
        }
        let [head, tail] = ends;
        // Both below size, so no overflow; the count is below size too.
        let count = head
            .wrapping_add(size)
            .wrapping_sub(tail)
            .checked_rem(size)
            .unwrap_or(0);
        let elements = field(map.kva, l.elements)?;
        let stride = u64::from(map.value_size);
        // Bounded by count < size = max_entries + 1.
        for n in 0..count {
            let slot = if map.map_type == MapType::QUEUE {
                tail.wrapping_add(n).checked_rem(size).unwrap_or(0)
            } else {
                head.wrapping_add(size)
                    .wrapping_sub(n.wrapping_add(1))
                    .checked_rem(size)
                    .unwrap_or(0)
            };
            let off = u64::from(slot).saturating_mul(stride);
            let at = elements.checked_add(off).ok_or(Error::AddrOverflow {
                addr: elements.0,
                len: off,
            })?;
            self.mem.read_kernel(at, value)?;
            if f(value).is_break() {
                return Ok(u64::from(n).saturating_add(1));
            }
        }
        Ok(u64::from(count))
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::synth::{GuestBuilder, MapSpec, SyntheticGuest};

    fn guest(head: u32, tail: u32) -> SyntheticGuest {
        let ring = |slot: u32| alloc::vec![slot as u8 + 1; 4];
        let mut b = GuestBuilder::x86_64(false);
        b.add_map(MapSpec::new(1, MapType::QUEUE, "q", 0, 4, 4).ring(head, tail, ring))
            .add_map(MapSpec::new(2, MapType::STACK, "s", 0, 4, 4).ring(head, tail, ring));
        b.build()
    }

    fn walk(g: &SyntheticGuest, id: u32) -> Result<Vec<u8>> {
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(id).unwrap().unwrap();
        let mut out = Vec::new();
        bpf.for_each_queue_value(&map, &mut [0; 4], |v| {
            out.push(v[0]);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    #[test]
    fn pop_order_wraps_around_the_ring() {
        // Five slots; elements in slots 3, 4, 0 (tail 3, head 1): slot n holds n + 1.
        let g = guest(1, 3);
        assert_eq!(walk(&g, 1).unwrap(), [4, 5, 1]);
        assert_eq!(walk(&g, 2).unwrap(), [1, 5, 4]);
        // Empty, and full (head one behind tail).
        assert_eq!(walk(&guest(2, 2), 1).unwrap(), []);
        assert_eq!(walk(&guest(1, 2), 1).unwrap(), [3, 4, 5, 1]);
        assert_eq!(walk(&guest(1, 2), 2).unwrap(), [1, 5, 4, 3]);
    }

    #[test]
    fn ends_past_the_ring_are_corrupt() {
        let g = guest(5, 0);
        assert!(matches!(
            walk(&g, 1),
            Err(Error::Corrupt {
                what: "bpf_queue_stack.head or tail (past size)",
                value: 5,
                ..
            })
        ));
        let mut g = guest(0, 0);
        let l = g.layout.queue.unwrap();
        let pa = g.pa_of(Kva(g.maps[1].kva.0 + u64::from(l.size)));
        g.ram.write_u32(pa, 9);
        assert!(matches!(walk(&g, 2), Err(Error::Corrupt { value: 9, .. })));
        let view = g.view();
        let bpf = Bpf::new(&view, &g.layout, g.map_idr);
        let map = bpf.map_by_id(1).unwrap().unwrap();
        assert!(matches!(
            bpf.for_each_queue_value(&map, &mut [0; 3], |_| ControlFlow::Continue(())),
            Err(Error::BufferSize { need: 4, have: 3 })
        ));
    }
}
