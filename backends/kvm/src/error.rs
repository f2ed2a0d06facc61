//! What went wrong with one access to guest memory, and where.

use std::fmt;
use std::io;

use mapwalk_core::{PhysError, PhysErrorKind};

use crate::regions::Miss;

/// Why an access was refused or failed. Every variant names the guest-physical range
/// asked for.
#[non_exhaustive]
#[derive(Debug)]
pub enum AccessError {
    /// The access starts in no region (a hole between memory slots, or past the top).
    Hole {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// The access starts in a region and runs past its end.
    CrossesRegion {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
        /// One past the last byte of the region it starts in.
        region_end: u64,
    },
    /// The access's end overflows 64 bits.
    Overflow {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// A write to memory that was opened, or can only be, read.
    ReadOnly {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
    },
    /// The operating system failed to move the bytes (reading another process).
    Io {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
        /// What the system said.
        source: io::Error,
    },
    /// The operating system moved fewer bytes than asked (another process's mapping
    /// ended or went away): nothing of the access is used.
    Short {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
        /// Bytes moved.
        done: u64,
    },
    /// rust-vmm `vm-memory` refused the access.
    VmMemory {
        /// Its guest-physical start.
        gpa: u64,
        /// Its length.
        len: u64,
        /// vm-memory's words.
        what: String,
    },
}

impl AccessError {
    /// The error for a [`Miss`] of the region table.
    pub(crate) fn from_miss(miss: Miss, gpa: u64, len: u64) -> Self {
        match miss {
            Miss::Hole => Self::Hole { gpa, len },
            Miss::CrossesEnd { region_end } => Self::CrossesRegion {
                gpa,
                len,
                region_end,
            },
            Miss::Overflow => Self::Overflow { gpa, len },
        }
    }
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hole { gpa, len } => write!(
                f,
                "{len:#x} bytes at guest-physical {gpa:#x}: no memory region holds {gpa:#x}"
            ),
            Self::CrossesRegion {
                gpa,
                len,
                region_end,
            } => write!(
                f,
                "{len:#x} bytes at guest-physical {gpa:#x} run past the end of their memory \
                 region at {region_end:#x}"
            ),
            Self::Overflow { gpa, len } => write!(
                f,
                "{len:#x} bytes at guest-physical {gpa:#x} overflow the address space"
            ),
            Self::ReadOnly { gpa, len } => write!(
                f,
                "{len:#x} bytes at guest-physical {gpa:#x}: the memory is read-only"
            ),
            Self::Io { gpa, len, source } => {
                write!(f, "{len:#x} bytes at guest-physical {gpa:#x}: {source}")
            }
            Self::Short { gpa, len, done } => write!(
                f,
                "{len:#x} bytes at guest-physical {gpa:#x}: only {done:#x} could be read"
            ),
            Self::VmMemory { gpa, len, what } => write!(
                f,
                "{len:#x} bytes at guest-physical {gpa:#x}: vm-memory: {what}"
            ),
        }
    }
}

impl std::error::Error for AccessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl PhysError for AccessError {
    fn kind(&self) -> PhysErrorKind {
        match self {
            Self::Hole { .. } => PhysErrorKind::Unmapped,
            Self::CrossesRegion { .. } | Self::Overflow { .. } => PhysErrorKind::OutOfRange,
            Self::ReadOnly { .. } => PhysErrorKind::Denied,
            Self::Io { .. } | Self::Short { .. } => PhysErrorKind::Io,
            Self::VmMemory { .. } => PhysErrorKind::Other,
        }
    }
}
