//! The core's error type and the shared kind that backend errors map to.

use core::fmt;

use crate::addr::{Kva, Pa};
use crate::bpf::MapType;

/// What went wrong in a memory backend, as far as the core needs to know.
///
/// Every backend error maps to one of these through [`PhysError::kind`]; the core keeps
/// the kind and the address, not the backend's own error value.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhysErrorKind {
    /// The address is not backed by any memory region.
    Unmapped,
    /// The access runs past the end of a region or of the address space.
    OutOfRange,
    /// The backend failed to move the bytes (a file read, a remote call).
    Io,
    /// The backend refused the access (read-only memory, missing privilege).
    Denied,
    /// Anything else.
    Other,
}

impl fmt::Display for PhysErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unmapped => "not backed by memory",
            Self::OutOfRange => "out of range",
            Self::Io => "I/O error",
            Self::Denied => "access denied",
            Self::Other => "backend error",
        })
    }
}

/// An error of a memory backend.
pub trait PhysError: fmt::Debug + fmt::Display {
    /// The shared kind of this error.
    fn kind(&self) -> PhysErrorKind;
}

impl PhysError for PhysErrorKind {
    fn kind(&self) -> PhysErrorKind {
        *self
    }
}

/// Whether an access was a read or a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A read.
    Read,
    /// A write.
    Write,
}

/// An error of the core: what was wrong, and where.
///
/// Every variant carries the address or value involved so that a message about hostile
/// or corrupt guest memory can be acted on.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The memory backend failed.
    Phys {
        /// Read or write.
        access: Access,
        /// The first physical address of the access.
        pa: Pa,
        /// The length of the access in bytes.
        len: u64,
        /// What the backend said.
        kind: PhysErrorKind,
    },
    /// An address computation overflowed the 64-bit address space.
    AddrOverflow {
        /// The base address.
        addr: u64,
        /// What was added to it.
        len: u64,
    },
    /// A virtual address is not mapped by the page tables.
    NotMapped {
        /// The address.
        va: Kva,
        /// The level whose entry was not present (root level first, counting down to 0
        /// for the last level).
        level: u8,
    },
    /// A page-table entry has an encoding the architecture reserves.
    BadPte {
        /// The address being translated.
        va: Kva,
        /// The level of the entry.
        level: u8,
        /// The raw entry.
        raw: u64,
    },
    /// The paging configuration (CR3, TTBR1, TCR) is not one the walker accepts.
    BadPaging {
        /// What is wrong with it.
        what: &'static str,
        /// The offending raw value.
        value: u64,
    },
    /// A virtual address outside the range the kernel's page tables translate.
    NotKernelAddress {
        /// The address.
        va: Kva,
    },
    /// A walk over guest data crossed one of the caps in [`crate::Limits`] or
    /// [`crate::limits`].
    LimitExceeded {
        /// Which cap.
        what: &'static str,
        /// The cap's value.
        limit: u64,
        /// Where the walk was when it crossed the cap.
        at: u64,
    },
    /// Guest data that cannot be what the kernel would have written.
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Its address.
        at: Kva,
        /// The offending value.
        value: u64,
    },
    /// An xarray node whose header contradicts its place in the tree.
    BadXaNode {
        /// The node.
        node: Kva,
        /// The shift it claims.
        shift: u8,
        /// The shift its place in the tree requires.
        expected: u8,
    },
    /// An operation a map of this type does not support.
    WrongMapType {
        /// The map's id.
        id: u32,
        /// Its type.
        map_type: MapType,
        /// The operation.
        op: &'static str,
    },
    /// A map of a type the operation does not handle at all (an entry walk of a
    /// ring buffer, say).
    UnsupportedMapType {
        /// The map's id.
        id: u32,
        /// Its type.
        map_type: MapType,
    },
    /// A per-CPU map, and no `__per_cpu_offset` to find its values with.
    PerCpuOffsetsMissing {
        /// The map's id.
        id: u32,
    },
    /// A key past the end of an array map.
    KeyOutOfRange {
        /// The key.
        key: u32,
        /// The map's `max_entries`.
        max_entries: u32,
    },
    /// An access outside a map value (offset plus length past `value_size`).
    OutOfBounds {
        /// Offset inside the value.
        offset: u64,
        /// Length of the access.
        len: u64,
        /// The value's size.
        size: u64,
    },
    /// A caller buffer of the wrong size.
    BufferSize {
        /// Bytes needed.
        need: u64,
        /// Bytes given.
        have: u64,
    },
    /// A kernel layout group that this operation needs is absent.
    LayoutMissing {
        /// The group, such as `"bpf_array"`.
        what: &'static str,
    },
    /// Guest data that fits more than one reading, with nothing to choose between them:
    /// the caller must choose (for instance, force a per-CPU pointer placement).
    Ambiguous {
        /// What could not be decided.
        what: &'static str,
        /// The object it is about.
        at: Kva,
    },
    /// Guest data that changed under every one of a bounded number of reads: the guest
    /// is running and kept changing it (nothing says it is corrupt). Pausing the guest
    /// gives an exact read.
    Unstable {
        /// What kept changing, such as `"hash bucket"`.
        what: &'static str,
        /// Which one (a bucket index, a map id).
        at: u64,
        /// The reads made.
        reads: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Phys {
                access,
                pa,
                len,
                kind,
            } => {
                let verb = match access {
                    Access::Read => "read",
                    Access::Write => "write",
                };
                write!(f, "physical {verb} of {len} bytes at {pa} failed: {kind}")
            }
            Self::AddrOverflow { addr, len } => {
                write!(
                    f,
                    "address {addr:#x} + {len:#x} overflows the address space"
                )
            }
            Self::NotMapped { va, level } => {
                write!(
                    f,
                    "virtual address {va} is not mapped (no entry at level {level})"
                )
            }
            Self::BadPte { va, level, raw } => write!(
                f,
                "reserved page-table entry {raw:#018x} at level {level} translating {va}"
            ),
            Self::BadPaging { what, value } => write!(f, "bad paging state: {what} ({value:#x})"),
            Self::NotKernelAddress { va } => {
                write!(
                    f,
                    "{va} is not a kernel address these page tables translate"
                )
            }
            Self::LimitExceeded { what, limit, at } => {
                write!(f, "{what} exceeds the limit of {limit} (at {at:#x})")
            }
            Self::Corrupt { what, at, value } => {
                write!(f, "corrupt {what} at {at}: {value:#x}")
            }
            Self::BadXaNode {
                node,
                shift,
                expected,
            } => write!(
                f,
                "xarray node at {node} has shift {shift} where {expected} is required"
            ),
            Self::WrongMapType { id, map_type, op } => {
                write!(f, "map {id} of type {map_type} does not support {op}")
            }
            Self::UnsupportedMapType { id, map_type } => {
                write!(
                    f,
                    "map {id} is of type {map_type}, whose entries cannot be read from \
                     memory; those of these types can:"
                )?;
                for t in crate::bpf::WALKABLE_MAP_TYPES {
                    write!(f, " {t}")?;
                }
                Ok(())
            }
            Self::PerCpuOffsetsMissing { id } => write!(
                f,
                "map {id} is per-CPU: its values need the CPUs' __per_cpu_offset"
            ),
            Self::KeyOutOfRange { key, max_entries } => {
                write!(
                    f,
                    "key {key} is past the end of an array of {max_entries} entries"
                )
            }
            Self::OutOfBounds { offset, len, size } => write!(
                f,
                "{len} bytes at offset {offset} do not fit in a value of {size} bytes"
            ),
            Self::BufferSize { need, have } => {
                write!(f, "buffer of {have} bytes where {need} are needed")
            }
            Self::LayoutMissing { what } => {
                write!(f, "the kernel layout has no `{what}` offsets")
            }
            Self::Ambiguous { what, at } => {
                write!(f, "cannot decide {what} of the object at {at}")
            }
            Self::Unstable { what, at, reads } => write!(
                f,
                "{what} {at} changed under each of {reads} reads (the guest is running: \
                 pause it for an exact read)"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// The core's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::bpf::{MapType, WALKABLE_MAP_TYPES};
    use std::string::ToString;

    #[test]
    fn an_unsupported_type_names_the_types_that_are_read() {
        let msg = Error::UnsupportedMapType {
            id: 7,
            map_type: MapType(0x7777),
        }
        .to_string();
        assert!(
            msg.starts_with(
                "map 7 is of type MapType(0x7777), whose entries cannot be read from memory"
            ),
            "{msg}"
        );
        for t in WALKABLE_MAP_TYPES {
            assert!(msg.contains(&std::format!(" {t}")), "{t} in {msg}");
        }
    }
}
