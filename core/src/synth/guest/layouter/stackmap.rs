//! Laying out STACK_TRACE maps: `n_buckets`, the bucket pointers and each bucket.

use super::Layouter;
use crate::bpf::MapType;
use crate::synth::guest::MapSpec;

/// The bytes a STACK_TRACE map struct needs (header and bucket pointers), or `None`
/// for another type or without the layout group.
pub(super) fn stack_map_size(b: &crate::layout::KernelLayout, spec: &MapSpec) -> Option<u64> {
    let l = b
        .stackmap
        .filter(|_| spec.map_type == MapType::STACK_TRACE)?;
    let n = u64::from(spec.max_entries.next_power_of_two());
    Some(u64::from(l.buckets) + 8 * n)
}

impl Layouter<'_> {
    /// Writes `n_buckets` and every stored stack of a STACK_TRACE `spec` at `base`.
    pub(super) fn lay_stack_map(&mut self, spec: &MapSpec, base: u64) {
        let Some(l) = self.b.layout.stackmap else {
            return;
        };
        if spec.map_type != MapType::STACK_TRACE {
            return;
        }
        self.write_u32(
            base + u64::from(l.n_buckets),
            spec.max_entries.next_power_of_two(),
        );
        for (id, nr, data) in &spec.stacks {
            let bucket = self.kmalloc(u64::from(l.bucket_data) + data.len() as u64).0;
            self.write_u32(bucket + u64::from(l.bucket_nr), *nr);
            self.write(bucket + u64::from(l.bucket_data), data);
            self.write_u64(base + u64::from(l.buckets) + 8 * u64::from(*id), bucket);
        }
    }
}
