//! Errors of the live backend: what the kernel refused, and why.

use core::fmt;

use mapwalk_core::MapType;

use crate::sys::Cmd;

/// An `errno` value, as an open newtype.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// `EPERM`: operation not permitted (a missing capability).
    pub const EPERM: Self = Self(libc::EPERM);
    /// `ENOENT`: no such entry (key, id, or the end of an iteration).
    pub const ENOENT: Self = Self(libc::ENOENT);
    /// `EACCES`: permission denied (an LSM, or a verifier rejection).
    pub const EACCES: Self = Self(libc::EACCES);
    /// `EBUSY`: busy (an arena mapped at another address).
    pub const EBUSY: Self = Self(libc::EBUSY);
    /// `EINVAL`: invalid argument.
    pub const EINVAL: Self = Self(libc::EINVAL);
    /// `ENOSPC`: a batch buffer too small for one bucket.
    pub const ENOSPC: Self = Self(libc::ENOSPC);
    /// `E2BIG`: a map is full, or an argument too large.
    pub const E2BIG: Self = Self(libc::E2BIG);
    /// `EOPNOTSUPP`: not supported by this map type.
    pub const EOPNOTSUPP: Self = Self(libc::EOPNOTSUPP);
    /// `ENOTSUPP` (524): the kernel-internal "not supported", which some bpf() paths
    /// return to user space.
    pub const ENOTSUPP: Self = Self(524);

    /// The calling thread's `errno`.
    pub fn last() -> Self {
        Self(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    /// The symbolic name of common values (`"ENOENT"`), or `None`.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "EPERM",
            libc::ENOENT => "ENOENT",
            libc::EINTR => "EINTR",
            libc::EBADF => "EBADF",
            libc::EAGAIN => "EAGAIN",
            libc::ENOMEM => "ENOMEM",
            libc::EACCES => "EACCES",
            libc::EFAULT => "EFAULT",
            libc::EBUSY => "EBUSY",
            libc::EEXIST => "EEXIST",
            libc::EINVAL => "EINVAL",
            libc::ENOSPC => "ENOSPC",
            libc::E2BIG => "E2BIG",
            libc::ERANGE => "ERANGE",
            libc::ENOSYS => "ENOSYS",
            libc::EOPNOTSUPP => "EOPNOTSUPP",
            524 => "ENOTSUPP",
            _ => return None,
        })
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = if self.0 == 524 {
            "Operation not supported (kernel ENOTSUPP)".to_owned()
        } else {
            let e = std::io::Error::from_raw_os_error(self.0).to_string();
            // "No such file or directory (os error 2)" -> "No such file or directory".
            e.split(" (os error").next().unwrap_or_default().to_owned()
        };
        match self.name() {
            Some(n) => write!(f, "{n}: {text}"),
            None => write!(f, "errno {}: {text}", self.0),
        }
    }
}

/// An error of the live backend.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The kernel refused a command for lack of privilege (`EPERM` or `EACCES`).
    Denied {
        /// The refused command.
        cmd: Cmd,
        /// What is missing, such as `"CAP_SYS_ADMIN"`.
        needs: &'static str,
        /// The errno (`EPERM` or `EACCES`).
        errno: Errno,
    },
    /// A `bpf()` command failed.
    Sys {
        /// The command.
        cmd: Cmd,
        /// The errno.
        errno: Errno,
    },
    /// The verifier rejected a program.
    Verifier {
        /// The errno.
        errno: Errno,
        /// The verifier's log.
        log: String,
    },
    /// `mmap`, `munmap` or `mincore` failed.
    Mmap {
        /// Which call.
        what: &'static str,
        /// The errno.
        errno: Errno,
    },
    /// An operation this map type does not support (or this crate does not know the
    /// type, so it cannot size the kernel's copies).
    Unsupported {
        /// The map's id.
        id: u32,
        /// Its type.
        map_type: MapType,
        /// The operation.
        op: &'static str,
    },
    /// A buffer of the wrong size.
    BufferSize {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// An access outside a mapping.
    OutOfRange {
        /// Offset of the access.
        offset: u64,
        /// Its length.
        len: u64,
        /// The mapping's size.
        size: u64,
    },
    /// A misaligned atomic access into a mapping.
    Misaligned {
        /// The offset.
        offset: u64,
    },
    /// A count or size over a cap of this crate.
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// The cap.
        limit: u64,
        /// The value that crossed it.
        value: u64,
    },
    /// Data shared with the kernel that contradicts itself (a ring buffer record that
    /// runs past the producer position, ...).
    Corrupt {
        /// What was read.
        what: &'static str,
        /// The offending value.
        value: u64,
    },
    /// The possible-CPU list could not be read or parsed.
    Cpus {
        /// The file.
        path: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// An arena could not be mapped at its user address.
    ArenaAddress {
        /// The arena's map id.
        id: u32,
        /// The address wanted (0: unknown).
        wanted: u64,
        /// Where the kernel put the mapping (0: nowhere).
        got: u64,
    },
}

impl Error {
    /// The error for a failed command: [`Error::Denied`] for `EPERM`/`EACCES`,
    /// [`Error::Sys`] otherwise.
    pub fn from_errno(cmd: Cmd, errno: Errno) -> Self {
        if errno == Errno::EPERM || errno == Errno::EACCES {
            Self::Denied {
                cmd,
                needs: cmd.needs(),
                errno,
            }
        } else {
            Self::Sys { cmd, errno }
        }
    }

    /// The errno of a failed system call, if this error is one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Self::Denied { errno, .. }
            | Self::Sys { errno, .. }
            | Self::Verifier { errno, .. }
            | Self::Mmap { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied { cmd, needs, errno } => {
                write!(f, "bpf({cmd}) was refused ({errno}): needs {needs}")
            }
            Self::Sys { cmd, errno } => write!(f, "bpf({cmd}) failed: {errno}"),
            Self::Verifier { errno, log } => {
                write!(f, "the verifier rejected the program ({errno}):\n{log}")
            }
            Self::Mmap { what, errno } => write!(f, "{what} of a BPF map failed: {errno}"),
            Self::Unsupported { id, map_type, op } => {
                write!(f, "map {id} of type {map_type} does not support {op}")
            }
            Self::BufferSize { need, have } => {
                write!(f, "buffer of {have} bytes where {need} are needed")
            }
            Self::OutOfRange { offset, len, size } => write!(
                f,
                "{len} bytes at offset {offset:#x} are outside a mapping of {size:#x} bytes"
            ),
            Self::Misaligned { offset } => {
                write!(f, "misaligned atomic load at offset {offset:#x}")
            }
            Self::LimitExceeded { what, limit, value } => {
                write!(f, "{what} ({value}) exceeds the limit of {limit}")
            }
            Self::Corrupt { what, value } => write!(f, "inconsistent {what}: {value:#x}"),
            Self::Cpus { path, reason } => write!(f, "cannot read {path}: {reason}"),
            Self::ArenaAddress { id, wanted: 0, .. } => write!(
                f,
                "arena map {id}: its user address is unknown (no map_extra, no mapping found \
                 in /proc/*/maps); pass the address the owner mapped it at"
            ),
            Self::ArenaAddress { id, wanted, got: 0 } => {
                write!(f, "arena map {id} cannot be mapped at {wanted:#x}")
            }
            Self::ArenaAddress { id, wanted, got } => write!(
                f,
                "arena map {id} must be mapped at {wanted:#x}, but that range is taken in this \
                 process (the kernel offered {got:#x})"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// The live backend's result type.
pub type Result<T, E = Error> = core::result::Result<T, E>;
