//! The one place with `unsafe` in this crate: regions a VMM vouches for, a mapping of a
//! RAM file, and reads of another process's memory.
//!
//! The copies themselves are `mapwalk_file::RawRegion`'s (volatile single loads and
//! stores for aligned scalars, raw copies otherwise, never a reference into guest
//! memory); this module only makes regions and says why they are valid.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::ptr::NonNull;

use mapwalk_file::RawRegion;
use memmap2::{MmapOptions, MmapRaw};

use crate::ram::{GuestRam, HostRegion};
use crate::regions::{RegionTable, RegionsError};

impl GuestRam {
    /// Guest RAM over a VMM's own mappings of its memory slots.
    ///
    /// # Safety
    /// For as long as the returned value (or anything made from it) lives, each
    /// region's `host .. host + len` must stay mapped, readable, and writable too where
    /// `writable` is set, and no Rust reference (`&`/`&mut` to those bytes, such as a
    /// `&[u8]` over guest RAM) may exist: the guest and the VMM's other threads change the
    /// bytes, and this type copies them with raw accesses only. (rust-vmm's
    /// `GuestMemoryMmap` keeps to this; use `vm_memory::VmMemory` (feature `vm-memory`) for it, which also
    /// keeps its dirty bitmap right.)
    ///
    /// # Errors
    /// [`RegionsError`] for an empty, overlapping, overflowing region, a null host
    /// address, or more than [`crate::MAX_REGIONS`] regions.
    pub unsafe fn from_raw(regions: &[HostRegion]) -> Result<Self, RegionsError> {
        let table = RegionTable::new(regions.iter().map(|r| (r.gpa, r.len)))?;
        let mut raw = Vec::with_capacity(regions.len());
        for r in regions {
            let ptr = NonNull::new(r.host).ok_or(RegionsError::NullHost { gpa: r.gpa })?;
            // `RegionTable::new` checked that every length fits in `isize`.
            let len = usize::try_from(r.len).map_err(|_| RegionsError::Overflow {
                gpa: r.gpa,
                len: r.len,
            })?;
            // SAFETY: - the caller keeps `ptr .. ptr + len` mapped and readable (writable
            //           when `r.writable`) for as long as the returned value lives, which
            //           is as long as this `'static` region is used: it never leaves the
            //           `GuestRam` (its field is private)
            //         - the caller forms no reference to those bytes
            //         - `len <= isize::MAX` (checked by the region table)
            raw.push(unsafe { RawRegion::from_raw_parts(ptr, len, r.writable) });
        }
        Ok(Self {
            table,
            regions: raw,
            _mapping: None,
        })
    }
}

// SAFETY: a `GuestRam` only copies bytes in and out of its regions with raw accesses
// (`RawRegion`), never forming references, so using it from several threads at once is
// what the memory is for (a guest's vCPUs write it concurrently anyway). Its mapping, if
// it owns one, is a `MmapRaw`, which is itself `Send + Sync`.
unsafe impl Send for GuestRam {}
// SAFETY: as for `Send`: every method takes `&self` and performs only raw copies.
unsafe impl Sync for GuestRam {}

/// A shared mapping of a RAM file that a [`GuestRam`] owns.
#[derive(Debug)]
pub(crate) struct Mapping {
    map: MmapRaw,
    writable: bool,
}

impl Mapping {
    /// Maps the first `len` bytes of `file`, shared (the guest's writes show).
    pub(crate) fn map(file: &File, len: u64, writable: bool) -> io::Result<Self> {
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        let map = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        Ok(Self { map, writable })
    }

    /// The whole mapping as a region.
    pub(crate) fn region(&self) -> RawRegion<'static> {
        let ptr = NonNull::new(self.map.as_mut_ptr()).unwrap_or(NonNull::dangling());
        // SAFETY: - `MmapRaw` keeps `len` bytes mapped, readable (and writable when
        //           mapped so) until it drops; the `'static` region never outlives it:
        //           it is stored only in the `GuestRam` that owns this mapping
        //         - `MmapRaw` hands out pointers, never references, and nothing here
        //           makes one
        //         - a mapping is never longer than `isize::MAX` bytes
        //         - an empty mapping has a dangling pointer and length 0: never accessed
        unsafe { RawRegion::from_raw_parts(ptr, self.map.len(), self.writable) }
    }
}

/// Copies pieces of another process's memory (address, buffer) into the buffers: one `process_vm_readv` call with one
/// local and several remote pieces. Returns the bytes moved.
pub(crate) fn process_read(pid: i32, pieces: &mut [(u64, &mut [u8])]) -> io::Result<usize> {
    let mut local = Vec::with_capacity(pieces.len());
    let mut remote = Vec::with_capacity(pieces.len());
    for (addr, buf) in pieces.iter_mut() {
        local.push(libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        });
        remote.push(libc::iovec {
            iov_base: std::ptr::without_provenance_mut(
                usize::try_from(*addr).unwrap_or(usize::MAX),
            ),
            iov_len: buf.len(),
        });
    }
    let count = libc::c_ulong::try_from(local.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many pieces"))?;
    // SAFETY: - `local` describes caller-owned buffers (`&mut [u8]`), each valid for
    //           writes of its length for the duration of the call, and not aliased
    //         - the remote addresses are only read by the kernel, in the other process,
    //           which checks them (an unmapped one is EFAULT or a short count)
    //         - both arrays hold `count` initialized `iovec`s
    let n =
        unsafe { libc::process_vm_readv(pid, local.as_ptr(), count, remote.as_ptr(), count, 0) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    //! The unsafe constructor over memory the test owns: no system call, so these run
    //! under Miri too (`backends/kvm/miri.sh`).
    use super::*;
    use crate::AccessError;
    use mapwalk_core::{Pa, PhysRead, PhysReadExt, PhysWrite, PhysWriteExt};

    /// Two regions over two heap buffers, with a hole between them, as a VMM's slots.
    fn two_slots(low: &mut [u64], high: &mut [u64]) -> GuestRam {
        let regions = [
            HostRegion {
                gpa: 0x10_0000,
                len: u64::try_from(high.len() * 8).unwrap(),
                host: high.as_mut_ptr().cast(),
                writable: true,
            },
            HostRegion {
                gpa: 0,
                len: u64::try_from(low.len() * 8).unwrap(),
                host: low.as_mut_ptr().cast(),
                writable: false,
            },
        ];
        // SAFETY: the buffers outlive the returned value in every test below (they are
        // dropped after it), nothing references them while it lives, and their lengths
        // are small.
        unsafe { GuestRam::from_raw(&regions) }.unwrap()
    }

    #[test]
    fn reads_and_writes_each_slot_and_refuses_the_hole() {
        let mut low = vec![0u64; 512];
        let mut high = vec![0u64; 512];
        low[1] = 0x1122_3344_5566_7788;
        let ram = two_slots(&mut low, &mut high);
        assert_eq!(ram.read_u64(Pa(8)).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(ram.read_u8(Pa(9)).unwrap(), 0x77);
        ram.write_bytes(Pa(0x10_0010), &0xdead_beef_u32.to_le_bytes())
            .unwrap();
        assert_eq!(ram.read_u32(Pa(0x10_0010)).unwrap(), 0xdead_beef);
        // An unaligned, longer write lands whole.
        ram.write_phys(Pa(0x10_0021), b"mapwalk").unwrap();
        let mut back = [0u8; 7];
        ram.read_phys(Pa(0x10_0021), &mut back).unwrap();
        assert_eq!(&back, b"mapwalk");

        let mut buf = [0u8; 8];
        assert!(matches!(
            ram.read_phys(Pa(0x8000), &mut buf),
            Err(AccessError::Hole {
                gpa: 0x8000,
                len: 8
            })
        ));
        assert!(matches!(
            ram.read_phys(Pa(0xffc), &mut buf),
            Err(AccessError::CrossesRegion {
                region_end: 0x1000,
                ..
            })
        ));
        // The low slot was given read-only.
        assert!(matches!(
            ram.write_phys(Pa(0), &[1]),
            Err(AccessError::ReadOnly { gpa: 0, len: 1 })
        ));
        assert!(ram.is_writable());
        drop(ram);
        assert_eq!(high[2], 0xdead_beef);
        assert_eq!(low[0], 0);
    }

    #[test]
    fn null_and_overlapping_slots_are_refused() {
        let null = [HostRegion {
            gpa: 0,
            len: 0x1000,
            host: std::ptr::null_mut(),
            writable: false,
        }];
        // SAFETY: refused before any pointer is used.
        let r = unsafe { GuestRam::from_raw(&null) };
        assert!(matches!(r, Err(RegionsError::NullHost { gpa: 0 })));
        let mut buf = vec![0u8; 0x2000];
        let p = buf.as_mut_ptr();
        let overlap = [
            HostRegion {
                gpa: 0,
                len: 0x1000,
                host: p,
                writable: false,
            },
            HostRegion {
                gpa: 0x800,
                len: 0x1000,
                host: p,
                writable: false,
            },
        ];
        // SAFETY: refused before any pointer is used.
        let r = unsafe { GuestRam::from_raw(&overlap) };
        assert!(matches!(
            r,
            Err(RegionsError::Overlap {
                first: 0,
                second: 0x800
            })
        ));
    }
}
