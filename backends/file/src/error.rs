//! Errors: of an access to guest memory ([`AccessError`]), and of opening or parsing a
//! file ([`Error`], [`LayoutError`], [`ElfError`]).

use std::fmt;
use std::io;
use std::path::PathBuf;

use mapwalk_core::{Access, Pa, PhysError, PhysErrorKind};

use crate::layout::LayoutRange;

/// Why an access to guest-physical memory failed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// No range of the layout (no segment of the core) holds these bytes.
    Unmapped,
    /// The access runs past the end of the 64-bit address space.
    AddressOverflow,
    /// The memory was opened read-only (every ELF core is).
    ReadOnly,
    /// An aligned write of 1, 2, 4 or 8 bytes that this memory cannot land as one store:
    /// the file offset is not aligned like the guest address, or the bytes span two
    /// ranges of the layout. Refused rather than torn (see [`mapwalk_core::PhysWrite`]).
    WouldTear,
    /// The bytes lie past the end of the mapping. Opening checks the layout against the
    /// file, so this means the backend itself is inconsistent.
    BeyondMapping,
}

impl Fault {
    /// The shared kind the core keeps.
    pub const fn kind(self) -> PhysErrorKind {
        match self {
            Self::Unmapped => PhysErrorKind::Unmapped,
            Self::AddressOverflow => PhysErrorKind::OutOfRange,
            Self::ReadOnly | Self::WouldTear => PhysErrorKind::Denied,
            Self::BeyondMapping => PhysErrorKind::Other,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unmapped => "not backed by the file (a hole in the layout)",
            Self::AddressOverflow => "past the end of the address space",
            Self::ReadOnly => "read-only: the file was not opened for writing",
            Self::WouldTear => {
                "not writable as one store (file offset not aligned like the address, or the bytes span two ranges)"
            }
            Self::BeyondMapping => "past the end of the file mapping",
        })
    }
}

/// A failed read or write of guest-physical memory in a file: the whole access, and the
/// piece of it that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccessError {
    /// Read or write.
    pub access: Access,
    /// The first address of the whole access.
    pub pa: Pa,
    /// The length of the whole access in bytes.
    pub len: u64,
    /// The first address of the piece that failed (an access that crosses ranges is
    /// split, and each piece succeeds or fails on its own).
    pub at: Pa,
    /// The length of that piece.
    pub span: u64,
    /// What was wrong with it.
    pub fault: Fault,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self.access {
            Access::Read => "read",
            Access::Write => "write",
        };
        write!(f, "{verb} of {} bytes at {} failed: ", self.len, self.pa)?;
        if (self.at, self.span) != (self.pa, self.len) {
            let end = self.at.0.saturating_add(self.span);
            write!(f, "{}..{end:#x} is ", self.at)?;
        }
        write!(f, "{}", self.fault)
    }
}

impl std::error::Error for AccessError {}

impl PhysError for AccessError {
    fn kind(&self) -> PhysErrorKind {
        self.fault.kind()
    }
}

/// A bad layout: a `GPA:OFFSET:LEN` list that does not parse, or ranges that cannot be.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A piece of the text form does not parse.
    #[error(
        "layout {piece:?}: {what} (expected GPA:OFFSET:LEN, numbers in hex with 0x or decimal)"
    )]
    Syntax {
        /// The offending piece.
        piece: String,
        /// What is wrong with it.
        what: &'static str,
    },
    /// No ranges at all.
    #[error("layout has no ranges")]
    Empty,
    /// A range of length zero.
    #[error("layout range {0} is empty")]
    ZeroLength(LayoutRange),
    /// A range whose guest or file end overflows 64 bits.
    #[error("layout range {0} overflows the 64-bit address space")]
    Overflow(LayoutRange),
    /// Two ranges claim the same guest-physical bytes.
    #[error("layout ranges {0} and {1} overlap in guest-physical addresses")]
    Overlap(LayoutRange, LayoutRange),
}

/// A file that is not a usable ELF core.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// The file does not start with the ELF magic (or is shorter than it).
    #[error("not an ELF file (no \\x7fELF magic in the first {len} bytes)")]
    NotElf {
        /// How many bytes there were to look at (at most 4).
        len: usize,
    },
    /// The file ends inside a structure.
    #[error("truncated: {what} needs bytes {offset:#x}..{end:#x} but the file has {file_len:#x}")]
    Truncated {
        /// The structure.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// Its end.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A header field with a value this crate does not handle.
    #[error("unsupported {what}: {value:#x}")]
    Unsupported {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// A structure that contradicts itself or the ELF format.
    #[error("malformed {what} at file offset {offset:#x}: {detail}")]
    Malformed {
        /// The structure.
        what: &'static str,
        /// Its file offset.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// A segment whose file bytes run past the end of the file.
    #[error("segment {index} ({kind}) holds file bytes {offset:#x}..{end:#x}, past the end of the {file_len:#x}-byte file")]
    SegmentPastEof {
        /// Index of the program header.
        index: usize,
        /// `PT_LOAD` or `PT_NOTE`.
        kind: &'static str,
        /// `p_offset`.
        offset: u64,
        /// `p_offset + p_filesz`.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// Two `PT_LOAD` segments that claim some of the same physical bytes without one
    /// containing the other.
    #[error("PT_LOAD segments {a} ({a_start:#x}..{a_end:#x}) and {b} ({b_start:#x}..{b_end:#x}) overlap in physical addresses")]
    Overlap {
        /// Index of the first program header.
        a: usize,
        /// Its first physical address.
        a_start: u64,
        /// Its end.
        a_end: u64,
        /// Index of the second program header.
        b: usize,
        /// Its first physical address.
        b_start: u64,
        /// Its end.
        b_end: u64,
    },
}

/// An error of opening a RAM file or an ELF core.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system refused (open, stat, mmap).
    #[error("{path}: {op}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// What the system said.
        source: io::Error,
    },
    /// The file is empty.
    #[error("{path}: the file is empty", path = .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is shorter than the layout says.
    #[error("{path}: the file has {have:#x} bytes but layout range {range} needs {need:#x}", path = .path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Bytes the layout needs.
        need: u64,
        /// Bytes the file has.
        have: u64,
        /// The first range that does not fit.
        range: LayoutRange,
    },
    /// The file is larger than this machine's address space can map.
    #[error("{path}: {len:#x} bytes do not fit in this machine's address space", path = .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A bad layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// A file that is not a usable ELF core.
    #[error("{}: {source}", shown(.path))]
    Elf {
        /// The file (empty for a core parsed from memory).
        path: PathBuf,
        /// What is wrong with it.
        source: ElfError,
    },
}

/// A path for a message; a core parsed from memory has none.
fn shown(path: &std::path::Path) -> String {
    if path.as_os_str().is_empty() {
        "ELF core in memory".to_owned()
    } else {
        path.display().to_string()
    }
}

impl Error {
    /// The shared kind: [`PhysErrorKind::Io`] when the operating system failed,
    /// [`PhysErrorKind::Other`] for a file that is not what it should be.
    pub fn kind(&self) -> PhysErrorKind {
        match self {
            Self::Io { .. } => PhysErrorKind::Io,
            _ => PhysErrorKind::Other,
        }
    }
}

impl PhysError for Error {
    fn kind(&self) -> PhysErrorKind {
        Error::kind(self)
    }
}
