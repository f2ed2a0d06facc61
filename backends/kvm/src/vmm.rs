//! rust-vmm `vm-memory`: a VMM's `GuestMemoryMmap` (or any guest memory collection)
//! as [`PhysRead`](mapwalk_core::PhysRead) / [`PhysWrite`](mapwalk_core::PhysWrite).
//!
//! Reads and writes go through vm-memory itself, so a VMM that tracks dirty pages for
//! live migration sees mapwalk's writes in its bitmap. An aligned write of 1, 2, 4 or 8
//! bytes is vm-memory's `store` (one atomic store); other writes are `write_slice`.
//! Region edges are mapwalk's: an access starting in a hole, or running out of the
//! region it starts in, is a typed [`AccessError`](crate::AccessError) before
//! vm-memory is asked.
//!
//! Two versions are supported, each behind its feature: `vm-memory` (0.18, whose
//! region collection trait is `GuestMemoryBackend`; 0.17.2 re-exports 0.18's types and
//! is served by it too) as [`crate::vm_memory`], and `vm-memory-016` (0.16, the one
//! Firecracker pins, where the same trait is `GuestMemory`) as
//! [`crate::vm_memory_016`].

/// Writes the adaptor for one vm-memory crate (`$vm`), whose trait of region
/// collections is `$Collection`.
#[allow(unused_macros)] // without either vm-memory feature
macro_rules! adaptor {
    ($vm:ident, $Collection:ident, $version:literal) => {
        use std::sync::atomic::Ordering;

        use mapwalk_core::{Pa, PhysRange, PhysRead, PhysWrite};
        use $vm::{$Collection, Address, Bytes, GuestAddress, GuestMemoryRegion};

        use crate::error::AccessError;
        use crate::regions::{RegionTable, RegionsError};

        #[doc = concat!("A vm-memory ", $version, " guest memory collection (such as")]
        /// `GuestMemoryMmap`) seen by mapwalk. The collection's regions are read once,
        /// when this is made: make another after the VMM adds or removes a region.
        ///
        /// ```
        #[doc = concat!("use ", stringify!($vm), "::{GuestAddress, GuestMemoryMmap};")]
        #[doc = concat!("use mapwalk_kvm::", stringify!($vm), "::VmMemory;")]
        /// use mapwalk_core::{Pa, PhysReadExt, PhysWriteExt};
        ///
        /// let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        /// let view = VmMemory::new(&mem).unwrap();
        /// view.write_bytes(Pa(0x1000), &0xfeed_u64.to_le_bytes()).unwrap();
        /// assert_eq!(view.read_u64(Pa(0x1000)).unwrap(), 0xfeed);
        /// ```
        #[derive(Debug)]
        pub struct VmMemory<'a, M: ?Sized> {
            mem: &'a M,
            table: RegionTable,
        }

        impl<'a, M: $Collection + ?Sized> VmMemory<'a, M> {
            /// The guest memory `mem`, with its regions as they are now.
            ///
            /// # Errors
            /// [`RegionsError`] when the collection's regions are not a valid set.
            pub fn new(mem: &'a M) -> Result<Self, RegionsError> {
                let table =
                    RegionTable::new(mem.iter().map(|r| (r.start_addr().raw_value(), r.len())))?;
                Ok(Self { mem, table })
            }

            /// The collection.
            pub fn memory(&self) -> &'a M {
                self.mem
            }

            fn check(&self, gpa: u64, len: usize) -> Result<u64, AccessError> {
                let len = u64::try_from(len).unwrap_or(u64::MAX);
                self.table
                    .find(gpa, len)
                    .map(|_| len)
                    .map_err(|m| AccessError::from_miss(m, gpa, len))
            }
        }

        impl<M: $Collection + ?Sized> PhysRead for VmMemory<'_, M> {
            type Error = AccessError;

            fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), AccessError> {
                let len = self.check(pa.0, buf.len())?;
                if buf.is_empty() {
                    return Ok(());
                }
                self.mem
                    .read_slice(buf, GuestAddress(pa.0))
                    .map_err(|e| AccessError::VmMemory {
                        gpa: pa.0,
                        len,
                        what: e.to_string(),
                    })
            }

            fn ranges(&self) -> &[PhysRange] {
                self.table.ranges()
            }
        }

        impl<M: $Collection + ?Sized> PhysWrite for VmMemory<'_, M> {
            fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), AccessError> {
                let len = self.check(pa.0, data.len())?;
                let at = GuestAddress(pa.0);
                let aligned = pa.0.checked_rem(len).is_some_and(|r| r == 0);
                let done = match *data {
                    [] => return Ok(()),
                    [a] => self.mem.store(a, at, Ordering::Relaxed),
                    [a, b] if aligned => {
                        self.mem
                            .store(u16::from_le_bytes([a, b]), at, Ordering::Relaxed)
                    }
                    [a, b, c, d] if aligned => {
                        self.mem
                            .store(u32::from_le_bytes([a, b, c, d]), at, Ordering::Relaxed)
                    }
                    [a, b, c, d, e, f, g, h] if aligned => self.mem.store(
                        u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                        at,
                        Ordering::Relaxed,
                    ),
                    _ => self.mem.write_slice(data, at),
                };
                done.map_err(|e| AccessError::VmMemory {
                    gpa: pa.0,
                    len,
                    what: e.to_string(),
                })
            }
        }
    };
}

/// vm-memory 0.18 (feature `vm-memory`).
#[cfg(feature = "vm-memory")]
pub mod vm_memory {
    adaptor!(vm_memory, GuestMemoryBackend, "0.18");

    #[cfg(test)]
    mod tests {
        use super::*;
        use mapwalk_core::{PhysError, PhysErrorKind, PhysReadExt};
        use vm_memory::GuestMemoryMmap;

        const MIB: u64 = 1 << 20;

        fn q35_like() -> GuestMemoryMmap<()> {
            // RAM below a hole and above it, as a q35 machine lays out, scaled down.
            GuestMemoryMmap::from_ranges(&[
                (GuestAddress(0), (2 * MIB) as usize),
                (GuestAddress(4 * MIB), MIB as usize),
            ])
            .unwrap()
        }

        #[test]
        fn reads_what_vm_memory_wrote_and_writes_what_it_reads() {
            let mem = q35_like();
            mem.write_slice(b"mapwalk!", GuestAddress(4 * MIB + 0x10))
                .unwrap();
            let view = VmMemory::new(&mem).unwrap();
            let mut buf = [0u8; 8];
            view.read_phys(Pa(4 * MIB + 0x10), &mut buf).unwrap();
            assert_eq!(&buf, b"mapwalk!");
            for (at, data) in [
                (0x100u64, &[0xaau8][..]),
                (0x102, &[1, 2]),
                (0x104, &[1, 2, 3, 4]),
                (0x108, &[1, 2, 3, 4, 5, 6, 7, 8]),
                (0x111, &[9, 9, 9]),
                (0x201, &[1, 2, 3, 4, 5, 6, 7, 8]),
            ] {
                view.write_phys(Pa(at), data).unwrap();
                let mut back = vec![0u8; data.len()];
                mem.read_slice(&mut back, GuestAddress(at)).unwrap();
                assert_eq!(back, data, "at {at:#x}");
            }
            assert_eq!(view.read_u64(Pa(0x108)).unwrap(), 0x0807_0605_0403_0201);
            assert_eq!(
                view.ranges(),
                &[
                    PhysRange {
                        start: Pa(0),
                        len: 2 * MIB
                    },
                    PhysRange {
                        start: Pa(4 * MIB),
                        len: MIB
                    }
                ]
            );
        }

        #[test]
        fn holes_and_region_edges_are_typed_errors_and_touch_nothing() {
            let mem = q35_like();
            let view = VmMemory::new(&mem).unwrap();
            let mut buf = [0u8; 8];
            let e = view.read_phys(Pa(3 * MIB), &mut buf).unwrap_err();
            assert!(matches!(e, AccessError::Hole { gpa, len: 8 } if gpa == 3 * MIB));
            assert_eq!(e.kind(), PhysErrorKind::Unmapped);
            let e = view.read_phys(Pa(2 * MIB - 4), &mut buf).unwrap_err();
            assert!(matches!(
                e,
                AccessError::CrossesRegion { region_end, .. } if region_end == 2 * MIB
            ));
            // A write across the edge writes nothing, not even its first half.
            let e = view.write_phys(Pa(2 * MIB - 4), &[0xff; 8]).unwrap_err();
            assert_eq!(e.kind(), PhysErrorKind::OutOfRange);
            let mut tail = [0u8; 4];
            mem.read_slice(&mut tail, GuestAddress(2 * MIB - 4))
                .unwrap();
            assert_eq!(tail, [0; 4]);
            assert!(view.write_phys(Pa(5 * MIB), &[1]).is_err());
        }

        #[test]
        fn vm_memory_017_collections_are_018_ones() {
            // 0.17.2 re-exports 0.18's types, so a VMM on 0.17 uses this module.
            let mem = vm_memory_017::GuestMemoryMmap::<()>::from_ranges(&[(
                vm_memory_017::GuestAddress(0),
                0x4000,
            )])
            .unwrap();
            let view = VmMemory::new(&mem).unwrap();
            view.write_phys(Pa(0x10), &[7; 4]).unwrap();
            assert_eq!(view.read_u32(Pa(0x10)).unwrap(), 0x0707_0707);
        }
    }
}

/// vm-memory 0.16 (feature `vm-memory-016`).
#[cfg(feature = "vm-memory-016")]
pub mod vm_memory_016 {
    adaptor!(vm_memory_016, GuestMemory, "0.16");

    #[cfg(test)]
    mod tests {
        use super::*;
        use mapwalk_core::PhysReadExt;
        use vm_memory_016::GuestMemoryMmap;

        #[test]
        fn reads_and_writes_through_vm_memory_016() {
            let mem: GuestMemoryMmap<()> =
                GuestMemoryMmap::from_ranges(&[(GuestAddress(0x1000), 0x4000)]).unwrap();
            let view = VmMemory::new(&mem).unwrap();
            view.write_phys(Pa(0x2000), &0x1122_3344_5566_7788u64.to_le_bytes())
                .unwrap();
            let mut raw = [0u8; 8];
            mem.read_slice(&mut raw, GuestAddress(0x2000)).unwrap();
            assert_eq!(u64::from_le_bytes(raw), 0x1122_3344_5566_7788);
            assert_eq!(view.read_u64(Pa(0x2000)).unwrap(), 0x1122_3344_5566_7788);
            assert!(view.read_u8(Pa(0)).is_err());
            assert!(view.read_u64(Pa(0x4ffc)).is_err());
        }
    }
}
