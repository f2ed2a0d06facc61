//! STACK_TRACE maps: every stored stack, as a lookup returns it.
//!
//! `struct bpf_stack_map` (which embeds `struct bpf_map`) holds `n_buckets`
//! (`roundup_pow_of_two(max_entries)`) and the inline array `buckets[]` of
//! `struct stack_map_bucket *`; a bucket holds `nr` frames at `data`. The kernel's
//! `bpf_stackmap_copy` gives user space, for key `id` (a u32), the `nr` frames (u64
//! instruction pointers, or 32-byte `struct bpf_stack_build_id` records for a
//! `BPF_F_STACK_BUILD_ID` map) and zero padding up to `value_size`. Empty buckets
//! (a NULL pointer) are absent keys.

use core::ops::ControlFlow;

use crate::addr::Kva;
use crate::bpf::{Bpf, MapFlags, MapInfo, MapType};
use crate::error::{Error, Result};
use crate::kernel::KernelRead;
use crate::limits::{MAX_STACK_BUCKETS, STACK_BUILD_ID_FRAME};
use crate::mem::len_u64;

fn field(base: Kva, off: u64) -> Result<Kva> {
    base.checked_add(off).ok_or(Error::AddrOverflow {
        addr: base.0,
        len: off,
    })
}

/// The size of one frame of a STACK_TRACE map with these `map_flags`: 8 (a u64
/// address), or [`STACK_BUILD_ID_FRAME`] with `BPF_F_STACK_BUILD_ID`.
#[must_use]
pub fn stack_frame_size(map_flags: MapFlags) -> u32 {
    if map_flags.contains(MapFlags::STACK_BUILD_ID) {
        STACK_BUILD_ID_FRAME
    } else {
        8
    }
}

impl<K: KernelRead + ?Sized> Bpf<'_, K> {
    /// Calls `f` with every stored stack of STACK_TRACE `map`, in bucket (key) order:
    /// the bucket id, the number of frames, and the value as a lookup returns it, read
    /// into `value` (the caller's buffer of `value_size` bytes: the frames, then zeros).
    /// Returns how many stacks `f` was given; `f`'s `Break` ends the walk.
    ///
    /// # Errors
    /// [`Error::WrongMapType`] for another type; [`Error::LayoutMissing`] without
    /// [`crate::layout::KernelLayout::stackmap`]; [`Error::BufferSize`];
    /// [`Error::Corrupt`] when `n_buckets` is not `roundup_pow_of_two(max_entries)`
    /// or a bucket's `nr` frames do not fit `value_size`; [`Error::LimitExceeded`] for
    /// more than [`MAX_STACK_BUCKETS`] buckets; a read error.
    pub fn for_each_stack(
        &self,
        map: &MapInfo,
        value: &mut [u8],
        mut f: impl FnMut(u32, u32, &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        if map.map_type != MapType::STACK_TRACE {
            return Err(Error::WrongMapType {
                id: map.id,
                map_type: map.map_type,
                op: "stack trace walk",
            });
        }
        let l = self.layout.stackmap.ok_or(Error::LayoutMissing {
            what: "bpf_stack_map",
        })?;
        if u64::from(map.value_size) != len_u64(value.len()) {
            return Err(Error::BufferSize {
                need: u64::from(map.value_size),
                have: len_u64(value.len()),
            });
        }
        let n_at = field(map.kva, u64::from(l.n_buckets))?;
        let n_buckets = self.mem.read_kernel_u32(n_at)?;
        if n_buckets > MAX_STACK_BUCKETS {
            return Err(Error::LimitExceeded {
                what: "stack trace map buckets",
                limit: u64::from(MAX_STACK_BUCKETS),
                at: u64::from(n_buckets),
            });
        }
        if Some(n_buckets) != map.max_entries.checked_next_power_of_two() {
            return Err(Error::Corrupt {
                what: "bpf_stack_map.n_buckets (not max_entries rounded up to a power of two)",
                at: n_at,
                value: u64::from(n_buckets),
            });
        }
        let frame = u64::from(stack_frame_size(map.map_flags));
        let buckets = field(map.kva, u64::from(l.buckets))?;
        let mut count = 0u64;
        // Bounded by n_buckets <= MAX_STACK_BUCKETS.
        for id in 0..n_buckets {
            let slot = field(buckets, u64::from(id).saturating_mul(8))?;
            let bucket = self.mem.read_kernel_u64(slot)?;
            if bucket == 0 {
                continue;
            }
            let bucket = Kva(bucket);
            let nr_at = field(bucket, u64::from(l.bucket_nr))?;
            let nr = self.mem.read_kernel_u32(nr_at)?;
            // At most 2^32 × 32 bytes: no overflow in u64.
            let len = u64::from(nr).saturating_mul(frame);
            let Some(data) = usize::try_from(len)
                .ok()
                .filter(|&n| n <= value.len())
                .and_then(|n| value.get_mut(..n))
            else {
                return Err(Error::Corrupt {
                    what: "stack_map_bucket.nr (frames past value_size)",
                    at: nr_at,
                    value: u64::from(nr),
                });
            };
            let data_len = data.len();
            self.mem
                .read_kernel(field(bucket, u64::from(l.bucket_data))?, data)?;
            if let Some(pad) = value.get_mut(data_len..) {
                pad.fill(0);
            }
            count = count.saturating_add(1);
            if f(id, nr, value).is_break() {
                break;
            }
        }
        Ok(count)
    }
}
