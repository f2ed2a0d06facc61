//! ELF cores: QEMU `dump-guest-memory` output (`paging: false`) and kdump's
//! `/proc/vmcore`.

mod parse;

use std::fs::File;
use std::path::{Path, PathBuf};

use mapwalk_core::{Pa, PhysRange, PhysRead};

use crate::cpu::Vcpu;
use crate::error::{AccessError, ElfError, Error};
use crate::layout::PieceMap;
use crate::sys::Backing;
use parse::parse;

/// The most program headers a core may have (QEMU writes one per guest RAM block, kdump
/// one per memory range; 2^20 is far beyond either).
pub const MAX_PROGRAM_HEADERS: u64 = 1 << 20;

/// The most bytes of notes a core may have (QEMU writes under a KiB per vCPU).
pub const MAX_NOTE_BYTES: u64 = 64 << 20;

/// `PN_XNUM`: `e_phnum` says the count is in section header 0's `sh_info`.
const PN_XNUM: u16 = 0xffff;
/// `e_type` of a core file.
const ET_CORE: u16 = 4;
/// `NT_PRSTATUS`.
const NT_PRSTATUS: u32 = 1;

/// A `PT_LOAD` segment: guest-physical memory stored in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Index of its program header.
    pub index: usize,
    /// `p_paddr`: its first guest-physical address.
    pub paddr: Pa,
    /// `p_vaddr` (0 in QEMU cores made with `paging: false`; in a kdump core the kernel
    /// virtual address, where there is one).
    pub vaddr: u64,
    /// `p_offset`: where its bytes start in the file.
    pub offset: u64,
    /// `p_filesz`: how many bytes the file holds.
    pub file_size: u64,
    /// `p_memsz`: how many bytes of memory it describes. The ELF format says the bytes
    /// past `p_filesz` are zero, and reads return zeros there.
    pub mem_size: u64,
}

impl Segment {
    /// Its guest-physical range (`p_paddr`, `p_memsz`).
    pub fn phys_range(&self) -> PhysRange {
        PhysRange {
            start: self.paddr,
            len: self.mem_size,
        }
    }
}

/// An ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its name without the terminating NUL (`"CORE"`, `"QEMU"`, `"VMCOREINFO"`).
    pub name: String,
    /// `n_type`.
    pub n_type: u32,
    /// Its descriptor.
    pub desc: Vec<u8>,
}

/// An ELF core file, memory-mapped: guest-physical memory by `PT_LOAD` segment (by
/// `p_paddr`), plus what its notes say (VMCOREINFO, per-vCPU registers).
///
/// Reads are served from the segments, sorted and found by binary search; a read that
/// crosses segments is split, and a gap between segments is
/// [`Fault::Unmapped`](crate::Fault::Unmapped). Bytes past a segment's `p_filesz` up to
/// its `p_memsz` read as zero, because the ELF format defines them so (kdump writes such
/// tails). A core is read-only: it implements [`PhysRead`] only.
///
/// A segment that lies wholly inside another is kept as an alias and not read from:
/// kdump cores describe the kernel image twice, once by its virtual address and once
/// inside the RAM segment that holds it. Any other overlap is an error.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use mapwalk_core::{Pa, PhysReadExt};
/// use mapwalk_file::ElfCore;
///
/// let core = ElfCore::open("/tmp/guest.core")?; // QMP dump-guest-memory, paging=false
/// for cpu in core.vcpus() {
///     println!("vCPU {}: CR3={:x?} CR4={:x?}", cpu.index, cpu.cr3(), cpu.cr4());
/// }
/// let word = core.read_u64(Pa(0x1000))?;
/// # let _ = word; Ok(()) }
/// ```
///
/// # Hazards
/// As for [`RamFile`](crate::RamFile): a file truncated while mapped kills the process
/// with `SIGBUS` when the lost pages are touched.
#[derive(Debug)]
pub struct ElfCore {
    path: PathBuf,
    backing: Backing,
    info: CoreInfo,
}

/// Everything parsed from the headers and notes.
#[derive(Debug)]
struct CoreInfo {
    file_len: u64,
    class64: bool,
    machine: u16,
    segments: Vec<Segment>,
    aliases: Vec<Segment>,
    map: PieceMap,
    notes: Vec<Note>,
    vcpus: Vec<Vcpu>,
}

impl ElfCore {
    /// Opens and maps the core at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened or mapped, [`Error::Elf`] when it is
    /// not a well-formed ELF core (empty, not ELF, truncated, a segment past the end of
    /// the file, overlapping segments, bad notes), [`Error::TooLarge`] when it cannot be
    /// mapped on this host.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        let io = |op| {
            let path = path.clone();
            move |source| Error::Io { path, op, source }
        };
        let file = File::open(&path).map_err(io("open"))?;
        let file_len = file.metadata().map_err(io("stat"))?.len();
        let elf = |source| Error::Elf {
            path: path.clone(),
            source,
        };
        if file_len == 0 {
            return Err(elf(ElfError::NotElf { len: 0 }));
        }
        let Ok(len) = usize::try_from(file_len) else {
            return Err(Error::TooLarge {
                path,
                len: file_len,
            });
        };
        let backing = Backing::map(&file, len, false).map_err(io("mmap"))?;
        let info = parse(backing.region()).map_err(elf)?;
        Ok(Self {
            path,
            backing,
            info,
        })
    }

    /// Parses a core held in memory (its [`path`](Self::path) is empty).
    ///
    /// # Errors
    /// [`Error::Elf`] as for [`open`](Self::open).
    pub fn from_bytes(bytes: impl Into<Box<[u8]>>) -> Result<Self, Error> {
        let backing = Backing::Owned(bytes.into());
        let info = parse(backing.region()).map_err(|source| Error::Elf {
            path: PathBuf::new(),
            source,
        })?;
        Ok(Self {
            path: PathBuf::new(),
            backing,
            info,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length.
    pub fn file_len(&self) -> u64 {
        self.info.file_len
    }

    /// Whether the core is `ELFCLASS64`.
    pub fn is_64bit(&self) -> bool {
        self.info.class64
    }

    /// `e_machine` (62 for x86_64, 183 for aarch64).
    pub fn machine(&self) -> u16 {
        self.info.machine
    }

    /// The `PT_LOAD` segments reads are served from, sorted by physical address and
    /// disjoint.
    pub fn segments(&self) -> &[Segment] {
        &self.info.segments
    }

    /// `PT_LOAD` segments that lie wholly inside another one and are not read from.
    pub fn aliases(&self) -> &[Segment] {
        &self.info.aliases
    }

    /// All notes, in file order.
    pub fn notes(&self) -> &[Note] {
        &self.info.notes
    }

    /// The descriptor of the first `VMCOREINFO` note: the kernel's `KEY=VALUE` text,
    /// as raw bytes (the `mapwalk` library parses it). QEMU writes the note only with
    /// `-device vmcoreinfo` and a guest that has told QEMU where its note is (the
    /// `qemu_fw_cfg` driver); without it, the text can still be searched for in RAM.
    pub fn vmcoreinfo_note(&self) -> Option<&[u8]> {
        self.info
            .notes
            .iter()
            .find(|n| n.name == "VMCOREINFO")
            .map(|n| n.desc.as_slice())
    }

    /// What the notes say about each vCPU: `NT_PRSTATUS`, and for x86 QEMU cores the
    /// CPU-state note with CR3 and CR4.
    pub fn vcpus(&self) -> &[Vcpu] {
        &self.info.vcpus
    }
}

impl PhysRead for ElfCore {
    type Error = AccessError;

    fn read_phys(&self, pa: Pa, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.info.map.read(self.backing.region(), pa, buf)
    }

    /// The segments' physical ranges (`p_paddr`, `p_memsz`), sorted.
    fn ranges(&self) -> &[PhysRange] {
        self.info.map.ranges()
    }
}

#[cfg(test)]
mod tests {
    use mapwalk_core::PhysReadExt;

    use super::*;
    use crate::cpu::tests::{prstatus_desc, qemu_note_desc};
    use crate::error::Fault;
    use crate::testutil::{pattern, CoreBuilder, Load};

    const VMCOREINFO: &[u8] = b"OSRELEASE=6.1.0-56-cloud-amd64\nPAGESIZE=4096\nSYMBOL(init_top_pgt)=ffffffff82a10000\nNUMBER(pgtable_l5_enabled)=0\n";

    /// A QEMU-like core: notes for two vCPUs and VMCOREINFO; RAM at 0..0x3000 in two
    /// adjacent segments written out of order, 0x10000..0x11000 with only 0x800 bytes in
    /// the file, and a "ROM" at 0xfffc0000. The data starts at an odd file offset.
    pub(super) fn qemu_like() -> CoreBuilder {
        CoreBuilder {
            loads: vec![
                Load::new(0x2000, pattern(0x1000, 0x20)),
                Load::new(0, pattern(0x2000, 0)),
                Load {
                    memsz: 0x1000,
                    ..Load::new(0x10000, pattern(0x800, 0x40))
                },
                Load::new(0xfffc_0000, pattern(0x100, 0x80)),
            ],
            notes: vec![
                ("CORE".into(), 1, prstatus_desc(1)),
                ("CORE".into(), 1, prstatus_desc(2)),
                (
                    "QEMU".into(),
                    0,
                    qemu_note_desc(0x2a10000, 0x750eb0, Some(7)),
                ),
                (
                    "QEMU".into(),
                    0,
                    qemu_note_desc(0x55a8000, 0x750ea0, Some(8)),
                ),
                ("VMCOREINFO".into(), 0, VMCOREINFO.to_vec()),
            ],
            data_pad: 3,
            ..CoreBuilder::default()
        }
    }

    #[test]
    fn errors_of_in_memory_cores_say_so() {
        let e = ElfCore::from_bytes(vec![1u8; 3]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ELF core in memory: not an ELF file (no \\x7fELF magic in the first 3 bytes)"
        );
    }

    #[test]
    fn parses_a_qemu_like_core() {
        let core = ElfCore::from_bytes(qemu_like().build().bytes).unwrap();
        assert!(core.is_64bit());
        assert_eq!(core.machine(), 62);
        let starts: Vec<u64> = core.segments().iter().map(|s| s.paddr.0).collect();
        assert_eq!(starts, [0, 0x2000, 0x10000, 0xfffc_0000]);
        assert_eq!(core.segments()[0].index, 2); // program header 0 is the PT_NOTE
        assert_eq!(
            core.ranges()
                .iter()
                .map(|r| (r.start.0, r.len))
                .collect::<Vec<_>>(),
            [
                (0, 0x2000),
                (0x2000, 0x1000),
                (0x10000, 0x1000),
                (0xfffc_0000, 0x100)
            ]
        );
        assert!(core.aliases().is_empty());
        assert_eq!(core.notes().len(), 5);
        assert_eq!(core.notes()[4].name, "VMCOREINFO");
        let info = core.vmcoreinfo_note().unwrap();
        assert_eq!(info, core.notes()[4].desc);
        assert!(info.starts_with(b"OSRELEASE=6.1.0-56-cloud-amd64\n"));
        let cpus = core.vcpus();
        assert_eq!(cpus.len(), 2);
        assert_eq!(
            (cpus[0].cr3(), cpus[0].cr4()),
            (Some(0x2a10000), Some(0x750eb0))
        );
        assert_eq!(
            (cpus[1].cr3(), cpus[1].cr4()),
            (Some(0x55a8000), Some(0x750ea0))
        );
        assert_eq!(cpus[1].prstatus.as_ref().unwrap().pid, 2);
        assert_eq!(cpus[1].qemu.unwrap().kernel_gs_base, Some(8));
    }

    #[test]
    fn reads_by_physical_address() {
        let core = ElfCore::from_bytes(qemu_like().build().bytes).unwrap();
        let low = pattern(0x2000, 0);
        let mid = pattern(0x1000, 0x20);
        let mut buf = [0u8; 16];
        core.read_phys(Pa(0x100), &mut buf).unwrap();
        assert_eq!(buf[..], low[0x100..0x110]);
        // Across two adjacent segments.
        core.read_phys(Pa(0x1ff8), &mut buf).unwrap();
        assert_eq!(buf[..8], low[0x1ff8..]);
        assert_eq!(buf[8..], mid[..8]);
        // File bytes, then zero fill (p_filesz < p_memsz).
        core.read_phys(Pa(0x107f8), &mut buf).unwrap();
        assert_eq!(buf[..8], pattern(0x800, 0x40)[0x7f8..]);
        assert_eq!(buf[8..], [0; 8]);
        assert_eq!(core.read_u64(Pa(0x10ff8)).unwrap(), 0);
        // Holes.
        let e = core.read_phys(Pa(0x2ff8), &mut buf).unwrap_err();
        assert_eq!((e.at, e.span, e.fault), (Pa(0x3000), 8, Fault::Unmapped));
        let e = core.read_phys(Pa(0x11000), &mut buf).unwrap_err();
        assert_eq!(e.fault, Fault::Unmapped);
        assert_eq!(
            core.read_u32(Pa(0xfffc_00fc)).unwrap(),
            u32::from_le_bytes([0x7c, 0x7d, 0x7e, 0x7f]) // 0x80 + 0xfc.., wrapped
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "opens files")]
    fn opens_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("core");
        std::fs::write(&path, qemu_like().build().bytes).unwrap();
        let core = ElfCore::open(&path).unwrap();
        assert_eq!(core.path(), path);
        assert_eq!(
            core.read_u64(Pa(0x08)).unwrap(),
            u64::from_le_bytes(core::array::from_fn(|i| 8 + i as u8))
        );
        assert_eq!(core.file_len(), std::fs::metadata(&path).unwrap().len());
        // Errors name the file.
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let e = ElfCore::open(&empty).unwrap_err();
        assert!(
            e.to_string().contains("empty") && e.to_string().contains("not an ELF file"),
            "{e}"
        );
        let e = ElfCore::open(dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, Error::Io { op: "open", .. }), "{e}");
        assert_eq!(e.kind(), mapwalk_core::PhysErrorKind::Io);
    }
}
