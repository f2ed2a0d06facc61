//! Guest RAM that this process maps: a VMM's memory slots, or a RAM file mapped here.

use std::fs::File;
use std::io;

use mapwalk_core::{Pa, PhysRange, PhysRead, PhysWrite};
use mapwalk_file::{Layout, RawRegion, RegionError};

use crate::error::AccessError;
use crate::regions::{RegionTable, RegionsError};

/// One of a VMM's guest RAM regions as it registered it with KVM (a
/// `kvm_userspace_memory_region`): `len` bytes of guest-physical memory from `gpa`,
/// mapped in this process at `host`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRegion {
    /// The guest-physical start (`guest_phys_addr`).
    pub gpa: u64,
    /// The length in bytes (`memory_size`).
    pub len: u64,
    /// Where the region is mapped in this process (`userspace_addr`).
    pub host: *mut u8,
    /// Whether mapwalk may write to it.
    pub writable: bool,
}

/// Why [`GuestRam::map_file`] could not map a RAM file.
#[non_exhaustive]
#[derive(Debug)]
pub enum MapError {
    /// The regions are not a valid set.
    Regions(RegionsError),
    /// The file is shorter than the regions need.
    TooShort {
        /// Bytes the regions need.
        need: u64,
        /// Bytes the file has.
        have: u64,
    },
    /// The operating system refused (stat, mmap).
    Io {
        /// What was being done.
        op: &'static str,
        /// What it said.
        source: io::Error,
    },
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Regions(e) => write!(f, "{e}"),
            Self::TooShort { need, have } => write!(
                f,
                "the RAM file has {have:#x} bytes but its regions need {need:#x}"
            ),
            Self::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Regions(e) => Some(e),
            Self::Io { source, .. } => Some(source),
            Self::TooShort { .. } => None,
        }
    }
}

impl From<RegionsError> for MapError {
    fn from(e: RegionsError) -> Self {
        Self::Regions(e)
    }
}

/// Guest RAM in this process's address space, region by region: [`PhysRead`] and
/// [`PhysWrite`] for mapwalk's walkers.
///
/// Every access lies wholly inside one region or is refused with an
/// [`AccessError`] that says where ([`Hole`](AccessError::Hole),
/// [`CrossesRegion`](AccessError::CrossesRegion)): never zeros, never a partial copy.
/// The bytes are only ever copied, never borrowed (a running guest changes them); an
/// aligned access of 1, 2, 4 or 8 bytes is one load or store.
///
/// Made from a VMM's own mappings with [`GuestRam::from_raw`] (unsafe: the VMM
/// vouches for them), or from a RAM file or memfd with [`GuestRam::map_file`].
#[derive(Debug)]
pub struct GuestRam {
    pub(crate) table: RegionTable,
    /// The regions, in the order they were given (the table's numbering).
    pub(crate) regions: Vec<RawRegion<'static>>,
    /// A mapping this value made and owns (for [`GuestRam::map_file`]).
    pub(crate) _mapping: Option<crate::sys::Mapping>,
}

impl GuestRam {
    /// Maps `file` (a RAM file or a memfd: QEMU's `memory-backend-file` or
    /// `memory-backend-memfd` with `share=on`, or a RAM image) and serves the
    /// guest-physical ranges of `layout` from it. Read-only unless `writable`.
    ///
    /// # Errors
    /// [`MapError`]: a file shorter than the layout, or a failed mapping.
    pub fn map_file(file: &File, layout: &Layout, writable: bool) -> Result<Self, MapError> {
        let have = file
            .metadata()
            .map_err(|source| MapError::Io {
                op: "stat the RAM file",
                source,
            })?
            .len();
        let need = layout.file_end();
        if have < need {
            return Err(MapError::TooShort { need, have });
        }
        let mapping =
            crate::sys::Mapping::map(file, need, writable).map_err(|source| MapError::Io {
                op: "map the RAM file",
                source,
            })?;
        let whole = mapping.region();
        let table = RegionTable::new(layout.ranges().iter().map(|r| (r.gpa.0, r.len)))?;
        let mut regions = Vec::with_capacity(layout.ranges().len());
        for r in layout.ranges() {
            // The layout's ranges lie inside `need` bytes, and `need` was mapped.
            let sub = usize::try_from(r.offset)
                .ok()
                .zip(usize::try_from(r.len).ok())
                .and_then(|(off, len)| whole.sub(off, len))
                .ok_or(MapError::TooShort { need, have })?;
            regions.push(sub);
        }
        Ok(Self {
            table,
            regions,
            _mapping: Some(mapping),
        })
    }

    /// Whether any region may be written.
    pub fn is_writable(&self) -> bool {
        self.regions.iter().any(RawRegion::is_writable)
    }

    /// The region holding all of `gpa .. gpa + len`, and the offset in it.
    fn locate(&self, gpa: u64, len: usize) -> Result<(RawRegion<'static>, usize), AccessError> {
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        let (i, off) = self
            .table
            .find(gpa, len64)
            .map_err(|m| AccessError::from_miss(m, gpa, len64))?;
        let region = self.regions.get(i).copied();
        match (region, usize::try_from(off)) {
            (Some(r), Ok(off)) => Ok((r, off)),
            _ => Err(AccessError::Hole { gpa, len: len64 }),
        }
    }
}

impl PhysRead for GuestRam {
    type Error = AccessError;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), AccessError> {
        let (region, off) = self.locate(pa.0, buf.len())?;
        region
            .read(off, buf)
            .map_err(|e| region_error(e, pa.0, buf.len()))
    }

    fn ranges(&self) -> &[PhysRange] {
        self.table.ranges()
    }
}

impl PhysWrite for GuestRam {
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), AccessError> {
        let (region, off) = self.locate(pa.0, data.len())?;
        region
            .write(off, data)
            .map_err(|e| region_error(e, pa.0, data.len()))
    }
}

fn region_error(e: RegionError, gpa: u64, len: usize) -> AccessError {
    let len = u64::try_from(len).unwrap_or(u64::MAX);
    match e {
        RegionError::ReadOnly => AccessError::ReadOnly { gpa, len },
        // The table checked the bounds; a region shorter than its table entry would be
        // a bug here, reported as the access not fitting.
        RegionError::OutOfBounds => AccessError::CrossesRegion {
            gpa,
            len,
            region_end: gpa,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapwalk_core::{PhysReadExt, PhysWriteExt};
    use mapwalk_file::LayoutRange;
    use std::io::Write;

    /// A RAM file laid out as QEMU lays a q35 machine's RAM, scaled down: guest
    /// 0..0x3000 at file offset 0, guest 0x10000..0x12000 at file offset 0x3000.
    fn q35_file() -> (tempfile::NamedTempFile, Layout) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let bytes: Vec<u8> = (0..0x5000u32).map(|i| (i / 0x100) as u8).collect();
        f.write_all(&bytes).unwrap();
        let layout = Layout::new([
            LayoutRange {
                gpa: Pa(0),
                offset: 0,
                len: 0x3000,
            },
            LayoutRange {
                gpa: Pa(0x10000),
                offset: 0x3000,
                len: 0x2000,
            },
        ])
        .unwrap();
        (f, layout)
    }

    #[test]
    fn a_ram_file_read_through_its_layout() {
        let (f, layout) = q35_file();
        let ram = GuestRam::map_file(f.as_file(), &layout, false).unwrap();
        assert_eq!(ram.read_u8(Pa(0x2ff)).unwrap(), 0x02);
        // Guest 0x10000 is file offset 0x3000.
        assert_eq!(ram.read_u8(Pa(0x10000)).unwrap(), 0x30);
        assert_eq!(ram.read_u16(Pa(0x11ffe)).unwrap(), 0x4f4f);
        assert_eq!(ram.ranges().len(), 2);
        assert!(!ram.is_writable());
        assert!(matches!(
            ram.write_bytes(Pa(0), &[1]),
            Err(mapwalk_core::Error::Phys { .. })
        ));
        let mut buf = [0u8; 2];
        assert!(matches!(
            ram.read_phys(Pa(0x2fff), &mut buf),
            Err(AccessError::CrossesRegion {
                region_end: 0x3000,
                ..
            })
        ));
        assert!(matches!(
            ram.read_phys(Pa(0x5000), &mut buf),
            Err(AccessError::Hole { .. })
        ));
    }

    #[test]
    fn writes_land_in_the_file() {
        let (f, layout) = q35_file();
        {
            let ram = GuestRam::map_file(f.as_file(), &layout, true).unwrap();
            ram.write_bytes(Pa(0x10008), &0x0102_0304_0506_0708_u64.to_le_bytes())
                .unwrap();
        }
        let back = std::fs::read(f.path()).unwrap();
        assert_eq!(&back[0x3008..0x3010], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn a_file_shorter_than_its_layout_is_refused() {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(0x1000).unwrap();
        let layout = Layout::identity(0x2000).unwrap();
        assert!(matches!(
            GuestRam::map_file(f.as_file(), &layout, false),
            Err(MapError::TooShort {
                need: 0x2000,
                have: 0x1000
            })
        ));
    }
}
