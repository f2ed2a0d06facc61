//! Laying out RINGBUF and USER_RINGBUF maps: the `struct bpf_ringbuf` in vmalloc'd
//! memory with its data pages mapped twice, back to back, as the kernel maps them.

use super::Layouter;
use crate::bpf::RINGBUF_MAP_TYPES;
use crate::synth::guest::MapSpec;

/// The bytes a ring buffer's map struct needs beyond its `struct bpf_map` header, or
/// `None` for another type.
pub(super) fn ringbuf_map_size(b: &crate::layout::KernelLayout, spec: &MapSpec) -> Option<u64> {
    let l = b.ringbuf?;
    RINGBUF_MAP_TYPES
        .contains(&spec.map_type)
        .then(|| u64::from(l.rb) + 8)
}

impl Layouter<'_> {
    /// The ring of `spec` (whose map struct is at `base`), when it has one: its
    /// `struct bpf_ringbuf`, positions and bytes.
    pub(super) fn lay_ringbuf(&mut self, spec: &MapSpec, base: u64) {
        let (Some(l), Some(ring)) = (self.b.layout.ringbuf, &spec.ringbuf) else {
            return;
        };
        if !RINGBUF_MAP_TYPES.contains(&spec.map_type) {
            return;
        }
        let page = 1u64 << self.page_shift;
        let size = u64::from(spec.max_entries);
        assert!(
            size.is_power_of_two() && size % page == 0,
            "ring size {size:#x} is not a power of two of whole pages"
        );
        let data = u64::from(l.data);
        // The struct starts so that `data` lands on a page boundary.
        let lead = data.next_multiple_of(page) - data;
        let head_pages = (lead + data) / page;
        let start = self.vmalloc_next;
        for i in 0..head_pages {
            let pa = self.ram.alloc_page(self.page_shift);
            self.map_page(start + i * page, pa);
        }
        let data_va = start + head_pages * page;
        let data_pages = size / page;
        for i in 0..data_pages {
            let _gap = self.ram.alloc_page(self.page_shift);
            let pa = self.ram.alloc_page(self.page_shift);
            self.map_page(data_va + i * page, pa);
            self.map_page(data_va + size + i * page, pa);
        }
        self.vmalloc_next = data_va + 2 * size + page;
        let rb = start + lead;
        self.write_u64(base + u64::from(l.rb), rb);
        self.write_u64(rb + u64::from(l.mask), ring.mask.unwrap_or(size - 1));
        self.write_u64(rb + u64::from(l.consumer_pos), ring.consumer_pos);
        self.write_u64(rb + u64::from(l.producer_pos), ring.producer_pos);
        if let Some(off) = l.pending_pos {
            let pending = ring.pending_pos.unwrap_or(ring.producer_pos);
            self.write_u64(rb + u64::from(off), pending);
        }
        for (pos, bytes) in &ring.writes {
            assert!(bytes.len() as u64 <= size, "a write of more than the ring");
            // Through the second mapping when it wraps: the same pages.
            self.write(data_va + (pos & (size - 1)), bytes);
        }
    }
}
