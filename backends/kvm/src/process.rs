//! A running VMM's guest RAM read from outside: the RAM is anonymous memory of the VMM
//! process (QEMU's default, Firecracker, cloud-hypervisor), read with
//! `process_vm_readv`, given where each guest-physical region lies in the VMM's address
//! space.

use mapwalk_core::mem::{ReadManyError, ReadOp};
use mapwalk_core::{Pa, PhysRange, PhysRead};

use crate::error::AccessError;
use crate::regions::{RegionTable, RegionsError};

/// The most pieces one `process_vm_readv` call moves (Linux's `UIO_MAXIOV`).
pub const MAX_IOV: usize = 1024;

/// One guest-physical region of a VMM process: `len` bytes from `gpa`, at `hva` in the
/// VMM's address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRegion {
    /// The guest-physical start.
    pub gpa: u64,
    /// Where the VMM maps it.
    pub hva: u64,
    /// The length in bytes.
    pub len: u64,
}

/// Guest RAM inside another process (a running VMM), read through
/// `process_vm_readv`: [`PhysRead`] for mapwalk's walkers. Read-only: the system call
/// cannot promise the single store an aligned scalar write needs.
///
/// Reading another process needs the right to ptrace it (the same user, or
/// `CAP_SYS_PTRACE`). A read the process does not fully back (its mapping ended, or
/// went away) is an error, never a partial answer. [`PhysRead::read_phys_many`] moves
/// up to [`MAX_IOV`] pieces per system call.
#[derive(Debug, Clone)]
pub struct ProcessRam {
    pid: i32,
    table: RegionTable,
    /// The host address of each region, in the order given.
    hvas: Vec<u64>,
}

impl ProcessRam {
    /// The guest RAM of process `pid`, laid out as `regions` say.
    ///
    /// # Errors
    /// [`RegionsError`] for an invalid set of regions (or a region whose host range
    /// overflows).
    pub fn new(pid: i32, regions: &[ProcessRegion]) -> Result<Self, RegionsError> {
        let table = RegionTable::new(regions.iter().map(|r| (r.gpa, r.len)))?;
        for r in regions {
            if r.hva.checked_add(r.len).is_none() {
                return Err(RegionsError::Overflow {
                    gpa: r.gpa,
                    len: r.len,
                });
            }
        }
        Ok(Self {
            pid,
            table,
            hvas: regions.iter().map(|r| r.hva).collect(),
        })
    }

    /// The process read.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The host address of `gpa .. gpa + len`, which lies in one region.
    fn hva(&self, gpa: u64, len: usize) -> Result<u64, AccessError> {
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let (i, off) = self
            .table
            .find(gpa, len64)
            .map_err(|m| AccessError::from_miss(m, gpa, len64))?;
        self.hvas
            .get(i)
            .and_then(|base| base.checked_add(off))
            .ok_or(AccessError::Overflow { gpa, len: len64 })
    }
}

impl PhysRead for ProcessRam {
    type Error = AccessError;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), AccessError> {
        let hva = self.hva(pa.0, buf.len())?;
        let len = buf.len();
        if len == 0 {
            return Ok(());
        }
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        match crate::sys::process_read(self.pid, &mut [(hva, buf)]) {
            Ok(n) if n == len => Ok(()),
            Ok(n) => Err(AccessError::Short {
                gpa: pa.0,
                len: len64,
                done: u64::try_from(n).unwrap_or(u64::MAX),
            }),
            Err(source) => Err(AccessError::Io {
                gpa: pa.0,
                len: len64,
                source,
            }),
        }
    }

    fn ranges(&self) -> &[PhysRange] {
        self.table.ranges()
    }

    fn read_phys_many(&self, ops: &mut [ReadOp<'_>]) -> Result<(), ReadManyError<AccessError>> {
        let mut first = 0usize;
        for chunk in ops.chunks_mut(MAX_IOV) {
            let mut pieces = Vec::with_capacity(chunk.len());
            let mut want = 0usize;
            for (i, op) in chunk.iter_mut().enumerate() {
                let hva = self
                    .hva(op.pa.0, op.buf.len())
                    .map_err(|error| ReadManyError {
                        index: first.saturating_add(i),
                        error,
                    })?;
                want = want.saturating_add(op.buf.len());
                pieces.push((hva, &mut *op.buf));
            }
            let moved = crate::sys::process_read(self.pid, &mut pieces);
            drop(pieces);
            if moved.as_ref().ok() != Some(&want) {
                // Which piece fell short: read them one by one for a precise error.
                for (i, op) in chunk.iter_mut().enumerate() {
                    self.read_phys(op.pa, op.buf)
                        .map_err(|error| ReadManyError {
                            index: first.saturating_add(i),
                            error,
                        })?;
                }
            }
            first = first.saturating_add(chunk.len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapwalk_core::PhysReadExt;

    fn own_pid() -> i32 {
        i32::try_from(std::process::id()).unwrap()
    }

    #[test]
    fn reads_a_process_as_guest_memory() {
        // This process stands in for a VMM: two "regions" of its own heap.
        let low: Vec<u8> = (0..=255).cycle().take(0x2000).collect();
        let high = vec![0xa5u8; 0x1000];
        let ram = ProcessRam::new(
            own_pid(),
            &[
                ProcessRegion {
                    gpa: 0,
                    hva: low.as_ptr() as u64,
                    len: 0x2000,
                },
                ProcessRegion {
                    gpa: 0x4000,
                    hva: high.as_ptr() as u64,
                    len: 0x1000,
                },
            ],
        )
        .unwrap();
        assert_eq!(ram.read_u32(Pa(0x104)).unwrap(), 0x0706_0504);
        assert_eq!(ram.read_u8(Pa(0x4fff)).unwrap(), 0xa5);
        // One system call for many pieces, each landing in its own buffer.
        let (mut a, mut b, mut c) = ([0u8; 3], [0u8; 2], [0u8; 4]);
        let mut ops = [
            ReadOp {
                pa: Pa(0x1fe),
                buf: &mut a,
            },
            ReadOp {
                pa: Pa(0x4000),
                buf: &mut b,
            },
            ReadOp {
                pa: Pa(0x10),
                buf: &mut c,
            },
        ];
        ram.read_phys_many(&mut ops).unwrap();
        assert_eq!(
            (a, b, c),
            ([0xfe, 0xff, 0x00], [0xa5, 0xa5], [16, 17, 18, 19])
        );
        // A hole, by index.
        let mut d = [0u8; 1];
        let mut ops = [
            ReadOp {
                pa: Pa(0),
                buf: &mut a,
            },
            ReadOp {
                pa: Pa(0x3000),
                buf: &mut d,
            },
        ];
        let e = ram.read_phys_many(&mut ops).unwrap_err();
        assert_eq!(e.index, 1);
        assert!(matches!(
            e.error,
            AccessError::Hole {
                gpa: 0x3000,
                len: 1
            }
        ));
        assert_eq!(ram.pid(), own_pid());
    }

    #[test]
    fn a_region_the_process_does_not_back_is_an_error_not_zeros() {
        // A host address in the unmapped first page of the address space.
        let ram = ProcessRam::new(
            own_pid(),
            &[ProcessRegion {
                gpa: 0,
                hva: 0x10,
                len: 0x1000,
            }],
        )
        .unwrap();
        let mut buf = [0xeeu8; 8];
        let e = ram.read_phys(Pa(0), &mut buf).unwrap_err();
        assert!(matches!(e, AccessError::Io { gpa: 0, len: 8, .. }), "{e:?}");
        assert!(ProcessRam::new(
            own_pid(),
            &[ProcessRegion {
                gpa: 0,
                hva: u64::MAX - 0x10,
                len: 0x1000
            }]
        )
        .is_err());
    }
}
