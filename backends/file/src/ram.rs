//! Flat RAM images: a QEMU `memory-backend-file`, a raw dump of physical memory.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use mapwalk_core::{Pa, PhysRange, PhysRead, PhysWrite};

use crate::error::{AccessError, Error};
use crate::layout::Layout;
use crate::sys::Backing;

/// Guest RAM in a file, memory-mapped: [`PhysRead`], and [`PhysWrite`] when opened
/// writable.
///
/// The mapping is shared: with a running QEMU's `memory-backend-file,share=on` the guest
/// sees writes at once, and reads see what the guest wrote (pause the guest for a
/// consistent picture). No Rust reference to the mapping is ever formed; reads copy out,
/// and an aligned write of 1, 2, 4 or 8 bytes is one store, so the guest never sees a
/// torn value.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mapwalk_core::{Pa, PhysReadExt, PhysWriteExt};
/// use mapwalk_file::RamFile;
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("ram");
/// std::fs::write(&path, vec![0u8; 0x2000])?;
/// let ram = RamFile::options().writable(true).open(&path)?;
/// ram.write_u64(Pa(0x1008), 0x1122_3344_5566_7788)?;
/// assert_eq!(ram.read_u32(Pa(0x100c))?, 0x1122_3344);
/// # Ok(()) }
/// ```
///
/// # Hazards
/// - Should another process truncate the file while it is mapped, touching the lost pages
///   kills this process with `SIGBUS`: nothing a library can catch. QEMU never resizes
///   its RAM file; do not point this at files that shrink.
/// - The mapping is as large as the file (or [`Layout::file_end`]): address space, not
///   memory, but a 32-bit host cannot map a large guest ([`Error::TooLarge`]).
#[derive(Debug)]
pub struct RamFile {
    path: PathBuf,
    backing: Backing,
    layout: Layout,
    file_len: u64,
}

/// How to open a [`RamFile`]: read-only and with the identity layout unless told.
#[derive(Debug, Clone, Default)]
pub struct RamFileOptions {
    writable: bool,
    layout: Option<Layout>,
}

impl RamFileOptions {
    /// Maps the file for writing too (it is opened read-write), so that [`PhysWrite`]
    /// works. Default: read-only, where writes fail with
    /// [`Fault::ReadOnly`](crate::Fault::ReadOnly).
    #[must_use]
    pub fn writable(mut self, writable: bool) -> Self {
        self.writable = writable;
        self
    }

    /// Where guest-physical ranges lie in the file. Default: the whole file from
    /// guest-physical address 0.
    #[must_use]
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }

    /// Opens and maps `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened, sized or mapped, [`Error::Empty`] for
    /// an empty file without a layout, [`Error::TooShort`] when the file ends before the
    /// layout does, [`Error::TooLarge`] when it cannot be mapped on this host.
    pub fn open(self, path: impl AsRef<Path>) -> Result<RamFile, Error> {
        let path = path.as_ref().to_path_buf();
        let io = |op| {
            let path = path.clone();
            move |source| Error::Io { path, op, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(self.writable)
            .open(&path)
            .map_err(io("open"))?;
        let file_len = file.metadata().map_err(io("stat"))?.len();
        let layout = match self.layout {
            Some(layout) => layout,
            None if file_len == 0 => return Err(Error::Empty { path }),
            None => Layout::identity(file_len)?,
        };
        if let Some(range) = layout
            .ranges()
            .iter()
            .find(|r| r.offset.saturating_add(r.len) > file_len)
        {
            return Err(Error::TooShort {
                path,
                need: range.offset.saturating_add(range.len),
                have: file_len,
                range: *range,
            });
        }
        let map_len = layout.file_end();
        let Ok(map_len_usize) = usize::try_from(map_len) else {
            return Err(Error::TooLarge { path, len: map_len });
        };
        let backing = Backing::map(&file, map_len_usize, self.writable).map_err(io("mmap"))?;
        Ok(RamFile {
            path,
            backing,
            layout,
            file_len,
        })
    }
}

impl RamFile {
    /// Options to open a RAM file with: writable, a layout.
    pub fn options() -> RamFileOptions {
        RamFileOptions::default()
    }

    /// Opens `path` read-only, with guest-physical address = file offset.
    ///
    /// # Errors
    /// As [`RamFileOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::options().open(path)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Whether it was opened for writing.
    pub fn is_writable(&self) -> bool {
        self.backing.region().is_writable()
    }

    /// Lets go of the pages this process has touched (`madvise(MADV_DONTNEED)` over the
    /// shared mapping): its resident memory falls back, the file keeps every byte, and
    /// the next read maps what it needs again. Useful after a search that touched many
    /// pages (the VMCOREINFO page probe maps some 20 MB of a guest's RAM through the
    /// kernel's fault-around).
    ///
    /// # Errors
    /// The `madvise` error.
    pub fn release_resident(&self) -> std::io::Result<()> {
        self.backing.release_resident()
    }
}

impl PhysRead for RamFile {
    type Error = AccessError;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.layout.map().read(self.backing.region(), pa, buf)
    }

    /// The layout's guest-physical ranges, sorted.
    fn ranges(&self) -> &[PhysRange] {
        self.layout.phys_ranges()
    }
}

impl PhysWrite for RamFile {
    fn write_phys(&self, pa: Pa, data: &[u8]) -> Result<(), Self::Error> {
        self.layout.map().write(self.backing.region(), pa, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Fault;
    use crate::testutil::pattern;
    use mapwalk_core::{PhysError, PhysErrorKind, PhysReadExt, PhysWriteExt};
    use std::sync::atomic::{AtomicBool, Ordering};

    fn temp_file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ram");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps files")]
    fn identity_image_reads_and_writes() {
        let bytes = pattern(0x3000, 0);
        let (_dir, path) = temp_file(&bytes);
        let ram = RamFile::options().writable(true).open(&path).unwrap();
        assert!(ram.is_writable());
        assert_eq!(ram.file_len(), 0x3000);
        assert_eq!(ram.path(), path);
        assert_eq!(
            ram.ranges(),
            [PhysRange {
                start: Pa(0),
                len: 0x3000
            }]
        );
        assert_eq!(
            ram.read_u32(Pa(0x1004)).unwrap(),
            u32::from_le_bytes([4, 5, 6, 7])
        );
        ram.write_u64(Pa(0x2ff8), 0x1122_3344_5566_7788).unwrap();
        ram.write_bytes(Pa(0x5), &[0xaa; 3]).unwrap();
        // A second, read-only mapping of the same file sees the writes at once ...
        let other = RamFile::open(&path).unwrap();
        assert!(!other.is_writable());
        assert_eq!(other.read_u64(Pa(0x2ff8)).unwrap(), 0x1122_3344_5566_7788);
        // ... and so does the file.
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk[5..8], [0xaa; 3]);
        assert_eq!(on_disk[0x2ff8..], 0x1122_3344_5566_7788u64.to_le_bytes());
        // Letting go of the touched pages loses nothing, written bytes included.
        ram.release_resident().unwrap();
        other.release_resident().unwrap();
        assert_eq!(ram.read_u64(Pa(0x2ff8)).unwrap(), 0x1122_3344_5566_7788);
        assert_eq!(
            other.read_u32(Pa(0x1004)).unwrap(),
            u32::from_le_bytes([4, 5, 6, 7])
        );
        let mut b = [0; 3];
        other.read_phys(Pa(0x5), &mut b).unwrap();
        assert_eq!(b, [0xaa; 3]);
        // Past the end: a hole.
        let e = ram.read_u64(Pa(0x2ffc)).unwrap_err();
        assert!(e.to_string().contains("0x2ffc"), "{e}");
        let e = ram.read_phys(Pa(0x2ffc), &mut [0; 8]).unwrap_err();
        assert_eq!((e.at, e.span, e.fault), (Pa(0x3000), 4, Fault::Unmapped));
        // The read-only mapping refuses writes.
        let e = other.write_phys(Pa(0), &[1]).unwrap_err();
        assert_eq!(e.fault, Fault::ReadOnly);
        assert_eq!(e.kind(), PhysErrorKind::Denied);
        assert!(e.to_string().contains("read-only"), "{e}");
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps files")]
    fn layout_with_ram_above_4_gib() {
        // A q35-style split, scaled down: 0x2000 bytes low, 0x1000 bytes at 4 GiB.
        let bytes = pattern(0x3000, 0);
        let (_dir, path) = temp_file(&bytes);
        let layout: Layout = "0x1_0000_0000:0x2000:0x1000,0:0:0x2000".parse().unwrap();
        let ram = RamFile::options()
            .layout(layout.clone())
            .writable(true)
            .open(&path)
            .unwrap();
        assert_eq!(ram.layout(), &layout);
        assert_eq!(
            ram.ranges(),
            [
                PhysRange {
                    start: Pa(0),
                    len: 0x2000
                },
                PhysRange {
                    start: Pa(0x1_0000_0000),
                    len: 0x1000
                }
            ]
        );
        assert_eq!(ram.read_u8(Pa(0x1_0000_0001)).unwrap(), bytes[0x2001]);
        assert_eq!(ram.read_u8(Pa(0x1fff)).unwrap(), bytes[0x1fff]);
        let e = ram.read_phys(Pa(0x1ffc), &mut [0; 8]).unwrap_err();
        assert_eq!((e.at, e.span, e.fault), (Pa(0x2000), 4, Fault::Unmapped));
        ram.write_u32(Pa(0x1_0000_0ffc), 0xfeed_f00d).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap()[0x2ffc..],
            0xfeed_f00du32.to_le_bytes()
        );
        // A file longer than the layout is fine; only the layout's bytes are mapped.
        let small: Layout = "0:0:0x1000".parse().unwrap();
        let ram = RamFile::options().layout(small).open(&path).unwrap();
        assert!(ram.read_u8(Pa(0x1000)).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "maps files")]
    fn opening_errors_say_what_and_where() {
        let (dir, path) = temp_file(&[0u8; 0x1000]);
        let layout: Layout = "0:0:0x800,0x1_0000_0000:0x800:0x1000".parse().unwrap();
        let e = RamFile::options().layout(layout).open(&path).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooShort {
                    need: 0x1800,
                    have: 0x1000,
                    ..
                }
            ),
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&path.display().to_string())
                && msg.contains("0x100000000:0x800:0x1000")
                && msg.contains("0x1000 bytes"),
            "{msg}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(RamFile::open(&empty), Err(Error::Empty { .. })));
        let e = RamFile::open(dir.path().join("nope")).unwrap_err();
        assert!(matches!(e, Error::Io { op: "open", .. }));
        assert_eq!(PhysError::kind(&e), PhysErrorKind::Io);
        assert!(e.to_string().contains("nope"), "{e}");
    }

    /// A writer stores 8-byte values whose bytes are all equal while a reader on another
    /// mapping checks that it never sees a mix of two values.
    #[test]
    #[cfg_attr(miri, ignore = "maps files")]
    fn aligned_stores_are_never_torn() {
        let (_dir, path) = temp_file(&[0u8; 0x1000]);
        let writer = RamFile::options().writable(true).open(&path).unwrap();
        let reader = RamFile::open(&path).unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut v = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    v = v.wrapping_add(1);
                    for pa in (0..0x1000).step_by(8) {
                        writer
                            .write_u64(Pa(pa), u64::from_ne_bytes([v; 8]))
                            .unwrap();
                    }
                }
            });
            for _ in 0..200 {
                for pa in (0..0x1000).step_by(8) {
                    let b = reader.read_u64(Pa(pa)).unwrap().to_ne_bytes();
                    assert!(b.iter().all(|&x| x == b[0]), "torn value {b:x?} at {pa:#x}");
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}
