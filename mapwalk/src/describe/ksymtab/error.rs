//! Why the kernel's symbol table could not be read from memory.

use std::fmt;

use mapwalk_core::Kva;

/// Why [`Ksymtab::read`](super::Ksymtab::read) (or finding the table) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KsymtabError {
    /// The VMCOREINFO has no `SYMBOL(symbol)`: a kernel older than 6.0, or one built
    /// without `CONFIG_KALLSYMS`.
    NotInVmcoreinfo {
        /// The missing symbol (`kallsyms_names`, ...).
        symbol: &'static str,
    },
    /// Reading a part of the table failed.
    Read {
        /// Which part.
        what: &'static str,
        /// Where.
        at: Kva,
        /// The core's error.
        source: mapwalk_core::Error,
    },
    /// A count or size read from memory is past its cap.
    Cap {
        /// What was counted (`kallsyms_num_syms`, ...).
        what: &'static str,
        /// Where it was read, or where the table being measured starts.
        at: Kva,
        /// The value (or the size reached).
        value: u64,
        /// The cap.
        cap: u64,
    },
    /// A symbol's compressed name cannot be what the kernel wrote.
    BadName {
        /// The symbol's index in the table.
        index: u32,
        /// The address of its length byte.
        at: Kva,
        /// What is wrong.
        what: &'static str,
        /// The offending value (a length).
        value: u64,
    },
    /// An entry of `kallsyms_token_index` that does not lead to a NUL-terminated token
    /// within [`MAX_TOKEN_TABLE_BYTES`](super::MAX_TOKEN_TABLE_BYTES).
    BadToken {
        /// The token (the compressed byte).
        token: u8,
        /// Its offset in `kallsyms_token_table`.
        offset: u16,
        /// Where the token table starts.
        table: Kva,
    },
    /// A symbol's address does not fit in 64 bits.
    BadAddress {
        /// The symbol's index in the table.
        index: u32,
        /// Its raw `kallsyms_offsets` entry.
        offset: i32,
    },
}

impl fmt::Display for KsymtabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInVmcoreinfo { symbol } => write!(
                f,
                "the VMCOREINFO has no SYMBOL({symbol}) (Linux 6.0 or later with kallsyms \
                 exports it)"
            ),
            Self::Read { what, at, source } => write!(f, "read {what} at {at}: {source}"),
            Self::Cap {
                what,
                at,
                value,
                cap,
            } => write!(f, "{what} at {at}: {value} is past the cap of {cap}"),
            Self::BadName {
                index,
                at,
                what,
                value,
            } => write!(
                f,
                "kallsyms_names: symbol {index} at {at}: {what} ({value})"
            ),
            Self::BadToken {
                token,
                offset,
                table,
            } => write!(
                f,
                "kallsyms_token_index[{token}] = {offset}: no NUL-terminated token there in \
                 the token table at {table}"
            ),
            Self::BadAddress { index, offset } => write!(
                f,
                "kallsyms_offsets[{index}] = {offset}: the address overflows 64 bits"
            ),
        }
    }
}

impl std::error::Error for KsymtabError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}
