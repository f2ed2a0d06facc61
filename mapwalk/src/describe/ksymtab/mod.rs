//! The kernel's own symbol table (kallsyms), decoded from guest memory: the tables
//! `/proc/kallsyms` prints its kernel-image lines from, found through the VMCOREINFO
//! (Linux 6.0 and later export their addresses), so that no symbol file is needed.
//!
//! The tables, as `scripts/kallsyms` writes them into `.rodata`:
//!
//! - `kallsyms_num_syms`: a `u32`, the number of symbols.
//! - `kallsyms_names`: each symbol in turn, as a length then that many compressed bytes.
//!   The length is one byte; since Linux 6.1 a first byte with its top bit set is
//!   followed by a second one, the length being `(first & 0x7f) | second << 7`.
//! - `kallsyms_token_table` and `kallsyms_token_index`: each compressed byte `b` stands
//!   for the NUL-terminated token at `token_table[token_index[b]]` (`token_index` is 256
//!   `u16`s). The first character of a symbol's expansion is its type letter (`T`, `d`,
//!   ...); the rest is its name, at most [`KSYM_NAME_LEN`] - 1 bytes.
//! - `kallsyms_offsets`: one `i32` per symbol, turned into an address as
//!   [`AddressEncoding`] says: relative to `kallsyms_relative_base`, with x86_64 SMP
//!   kernels before 6.15 (`CONFIG_KALLSYMS_ABSOLUTE_PERCPU`, Debian's 6.1 and 6.12)
//!   storing the zero-based per-CPU symbols as non-negative absolute values and every
//!   other symbol as `relative_base - 1 - offset`; kernels without a relative base
//!   store place-relative offsets.
//!
//! Guest memory is not trusted: the count, every length, every token and the size of
//! each table are checked against named caps ([`MAX_SYMS`], [`KSYM_NAME_LEN`],
//! [`MAX_NAMES_BYTES`], [`MAX_TOKEN_TABLE_BYTES`]) before they size anything, and
//! [`Ksymtab::read`] validates the whole table once, so that its lookups cannot fail.
//!
//! ```
//! use mapwalk::describe::ksymtab::{BuildEncoding, Ksymtab, KsymtabBuilder};
//! use mapwalk_core::kernel::{KernelAddrs, KernelView, X86_START_KERNEL_MAP};
//! use mapwalk_core::arch::x86_64::X86Paging;
//! use mapwalk_core::{Pa, Paging, Ram};
//!
//! // A table of three symbols at the start of a kernel image loaded at physical 0.
//! let mut b = KsymtabBuilder::new();
//! b.push('A', "fixed_percpu_data", 0);
//! b.push('T', "_text", 0xffff_ffff_8100_0000);
//! b.push('D', "map_idr", 0xffff_ffff_8250_1230);
//! let (mut ram, loc) = b.build(X86_START_KERNEL_MAP, BuildEncoding::AbsolutePercpu).unwrap();
//! ram.resize(0x4000, 0);
//! let image = KernelAddrs { direct_map: None, ..KernelAddrs::x86_64(0, 0, 0) };
//! let view = KernelView::new(Ram::new(Pa(0), ram), Paging::X86_64(X86Paging::new(0, false)), image);
//!
//! let table = Ksymtab::read(&view, &loc)?;
//! assert_eq!(table.len(), 3);
//! let found = table.find(&["map_idr", "nothing"]);
//! assert_eq!(found[0].as_ref().map(|s| (s.kind, s.addr)), Some(('D', 0xffff_ffff_8250_1230)));
//! assert!(found[1].is_none());
//! assert_eq!(table.lookup("fixed_percpu_data"), Some(0));
//! # Ok::<(), mapwalk::describe::ksymtab::KsymtabError>(())
//! ```

#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::as_conversions
    )
)]

mod builder;
mod error;
mod read;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use mapwalk_core::Kva;

use super::vmcoreinfo::Vmcoreinfo;

pub use builder::{BuildEncoding, BuildError, KsymtabBuilder};
pub use error::KsymtabError;

/// The kernel's `KSYM_NAME_LEN` (Linux 6.1 and later; 128 before): a name's buffer,
/// NUL included. An expansion (type letter and name) is at most this long, and so is a
/// compressed name (one byte per character at worst).
pub const KSYM_NAME_LEN: usize = 512;

/// The most symbols a table may claim (Debian's kernels have about 150,000; an
/// `allyesconfig` build under a million).
pub const MAX_SYMS: u32 = 1 << 22;

/// The most bytes `kallsyms_names` may span (Debian's: about 2 MB).
pub const MAX_NAMES_BYTES: usize = 64 << 20;

/// The most bytes the 256 tokens of `kallsyms_token_table` may span (Debian's: about
/// 1.5 KB).
pub const MAX_TOKEN_TABLE_BYTES: usize = 256 * KSYM_NAME_LEN;

/// The VMCOREINFO `SYMBOL(...)` names of the table. `kallsyms_relative_base` is not
/// among them: the kernels that dropped it export the rest.
pub const VMCOREINFO_SYMBOLS: [&str; 5] = [
    "kallsyms_names",
    "kallsyms_num_syms",
    "kallsyms_token_table",
    "kallsyms_token_index",
    "kallsyms_offsets",
];

/// Where the table's parts are (runtime kernel-virtual addresses, as the VMCOREINFO
/// gives them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KsymtabLocation {
    /// `kallsyms_names`.
    pub names: Kva,
    /// `kallsyms_num_syms`.
    pub num_syms: Kva,
    /// `kallsyms_token_table`.
    pub token_table: Kva,
    /// `kallsyms_token_index`.
    pub token_index: Kva,
    /// `kallsyms_offsets`.
    pub offsets: Kva,
    /// `kallsyms_relative_base`, when the kernel has one (until the place-relative
    /// encoding replaced it).
    pub relative_base: Option<Kva>,
}

impl KsymtabLocation {
    /// The table's place from the VMCOREINFO's `SYMBOL(...)` lines.
    ///
    /// # Errors
    /// [`KsymtabError::NotInVmcoreinfo`] naming the first of [`VMCOREINFO_SYMBOLS`]
    /// that is missing.
    pub fn from_vmcoreinfo(info: &Vmcoreinfo) -> Result<Self, KsymtabError> {
        let get = |symbol: &'static str| {
            info.symbol(symbol)
                .map(Kva)
                .ok_or(KsymtabError::NotInVmcoreinfo { symbol })
        };
        let [names, num_syms, token_table, token_index, offsets] = VMCOREINFO_SYMBOLS;
        Ok(Self {
            names: get(names)?,
            num_syms: get(num_syms)?,
            token_table: get(token_table)?,
            token_index: get(token_index)?,
            offsets: get(offsets)?,
            relative_base: info.symbol("kallsyms_relative_base").map(Kva),
        })
    }
}

/// How `kallsyms_offsets` entries become addresses (see the [module
/// documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressEncoding {
    /// `relative_base + (u32)offset`.
    Relative {
        /// The value of `kallsyms_relative_base`.
        base: u64,
    },
    /// `CONFIG_KALLSYMS_ABSOLUTE_PERCPU`: a non-negative offset is the address itself
    /// (a zero-based per-CPU symbol), a negative one stands for
    /// `relative_base - 1 - offset`. Chosen when a relative base exists and some offset
    /// is negative, which without absolute per-CPU symbols would take an image of more
    /// than 2 GiB.
    AbsolutePercpu {
        /// The value of `kallsyms_relative_base`.
        base: u64,
    },
    /// No relative base: entry `i` holds its address minus its own
    /// (`&kallsyms_offsets[i] + offset`).
    PlaceRelative {
        /// The address of `kallsyms_offsets`.
        offsets: u64,
    },
}

impl AddressEncoding {
    /// The address entry `index` with raw value `raw` stands for; `None` when it does
    /// not fit in 64 bits.
    pub fn address(self, index: u32, raw: i32) -> Option<u64> {
        match self {
            Self::Relative { base } => {
                base.checked_add(u64::from(u32::from_ne_bytes(raw.to_ne_bytes())))
            }
            Self::AbsolutePercpu { base } => match u64::try_from(raw) {
                Ok(absolute) => Some(absolute),
                // -1 - raw lies in 0..=i32::MAX for a negative raw.
                Err(_) => u64::try_from(i64::from(raw).checked_neg()?.checked_sub(1)?)
                    .ok()
                    .and_then(|d| base.checked_add(d)),
            },
            Self::PlaceRelative { offsets } => offsets
                .checked_add(u64::from(index).checked_mul(4)?)?
                .checked_add_signed(i64::from(raw)),
        }
    }
}

/// One symbol of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KsymEntry {
    /// Its index in the table (the order `/proc/kallsyms` lists the kernel's symbols).
    pub index: u32,
    /// Its name (bytes that are not UTF-8 replaced).
    pub name: String,
    /// Its type letter, as `/proc/kallsyms` prints it.
    pub kind: char,
    /// Its runtime address.
    pub addr: u64,
}

impl KsymEntry {
    /// Whether the symbol is global (its type letter is upper case).
    pub fn is_global(&self) -> bool {
        self.kind.is_ascii_uppercase()
    }
}

/// A validated kernel symbol table, copied out of memory (the compressed names,
/// about 2 MB for Debian's kernels, the tokens and the addresses).
#[derive(Clone)]
pub struct Ksymtab {
    /// Exactly the `kallsyms_names` of the table's symbols.
    names: Vec<u8>,
    /// The token table, as far as it was read.
    tokens: Vec<u8>,
    /// Each token's range in `tokens`.
    token_ranges: Vec<(usize, usize)>,
    /// Each token's length.
    token_lens: Vec<usize>,
    /// Each symbol's address.
    addrs: Vec<u64>,
    encoding: AddressEncoding,
    location: KsymtabLocation,
}

impl fmt::Debug for Ksymtab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ksymtab")
            .field("symbols", &self.addrs.len())
            .field("names_bytes", &self.names.len())
            .field("token_bytes", &self.tokens.len())
            .field("encoding", &self.encoding)
            .field("location", &self.location)
            .finish()
    }
}

/// A name's compressed bytes, one symbol after another.
struct Compressed<'a> {
    names: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Compressed<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.names.get(self.pos..)?;
        let (len, header) = read::name_len(rest)?;
        let start = self.pos.checked_add(header)?;
        let end = start.checked_add(len)?;
        let data = self.names.get(start..end)?;
        self.pos = end;
        Some(data)
    }
}

impl Ksymtab {
    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.addrs.len()
    }

    /// Whether the table has no symbol (never, for a table [`read`](Self::read)).
    pub fn is_empty(&self) -> bool {
        self.addrs.is_empty()
    }

    /// How the addresses were encoded.
    pub fn encoding(&self) -> AddressEncoding {
        self.encoding
    }

    /// Where the table was read from.
    pub fn location(&self) -> KsymtabLocation {
        self.location
    }

    /// The size of `kallsyms_names`, in bytes.
    pub fn names_len(&self) -> usize {
        self.names.len()
    }

    /// Expands one compressed name into `out`; returns the expansion's length (type
    /// letter included). [`read`](Self::read) checked that it fits.
    fn expand(&self, data: &[u8], out: &mut [u8; KSYM_NAME_LEN]) -> usize {
        let mut n = 0usize;
        for &b in data {
            let Some(&(start, end)) = self.token_ranges.get(usize::from(b)) else {
                continue;
            };
            let token = self.tokens.get(start..end).unwrap_or_default();
            let Some(dst) = n.checked_add(token.len()).and_then(|e| out.get_mut(n..e)) else {
                return n;
            };
            dst.copy_from_slice(token);
            n = n.saturating_add(token.len());
        }
        n
    }

    /// The length of a compressed name's expansion, and the first byte of its name
    /// (the second of the expansion), without expanding it.
    fn shape(&self, data: &[u8]) -> (usize, Option<u8>) {
        let mut len = 0usize;
        let mut first = None;
        for &b in data {
            let tl = self.token_lens.get(usize::from(b)).copied().unwrap_or(0);
            if first.is_none() && len.saturating_add(tl) >= 2 {
                let (start, _) = self
                    .token_ranges
                    .get(usize::from(b))
                    .copied()
                    .unwrap_or((0, 0));
                let at = start.saturating_add(1).saturating_sub(len);
                first = self.tokens.get(at).copied();
            }
            len = len.saturating_add(tl);
        }
        (len, first)
    }

    /// Each symbol's expansion (type letter, then name) with its index and address,
    /// for the symbols whose expansion length and first name byte `keep` accepts.
    fn for_each(&self, keep: impl Fn(usize, u8) -> bool, mut f: impl FnMut(u32, &[u8], u64)) {
        let mut buf = [0u8; KSYM_NAME_LEN];
        let names = Compressed {
            names: &self.names,
            pos: 0,
        };
        for ((i, data), &addr) in (0u32..).zip(names).zip(&self.addrs) {
            match self.shape(data) {
                (len, Some(first)) if keep(len, first) => {}
                _ => continue,
            }
            let n = self.expand(data, &mut buf);
            f(i, buf.get(..n).unwrap_or_default(), addr);
        }
    }

    /// Every symbol, in table order.
    pub fn iter(&self) -> impl Iterator<Item = KsymEntry> + '_ {
        let names = Compressed {
            names: &self.names,
            pos: 0,
        };
        (0u32..)
            .zip(names)
            .zip(&self.addrs)
            .map(move |((index, data), &addr)| {
                let mut buf = [0u8; KSYM_NAME_LEN];
                let n = self.expand(data, &mut buf);
                entry(index, buf.get(..n).unwrap_or_default(), addr)
            })
    }

    /// The symbol of each of `names`, in one pass over the table: where a name repeats
    /// (static symbols of several files), the first global one, else the first.
    pub fn find(&self, names: &[&str]) -> Vec<Option<KsymEntry>> {
        let mut slots: HashMap<&[u8], usize> = HashMap::with_capacity(names.len());
        let mut best: Vec<Option<KsymEntry>> = vec![None; names.len()];
        for (i, n) in names.iter().enumerate() {
            slots.entry(n.as_bytes()).or_insert(i);
        }
        if slots.is_empty() {
            return best;
        }
        // The expansion length and first name byte of each wanted name: most symbols
        // are passed over on this test, unexpanded.
        let mut shapes = vec![false; KSYM_NAME_LEN.saturating_add(1).saturating_mul(256)];
        for name in slots.keys() {
            let at = name
                .len()
                .checked_add(1)
                .and_then(|l| l.checked_mul(256))
                .zip(name.first())
                .and_then(|(row, &b)| row.checked_add(usize::from(b)));
            if let Some(slot) = at.and_then(|i| shapes.get_mut(i)) {
                *slot = true;
            }
        }
        let keep = |len: usize, first: u8| {
            len.checked_mul(256)
                .and_then(|row| row.checked_add(usize::from(first)))
                .and_then(|i| shapes.get(i))
                .is_some_and(|&k| k)
        };
        self.for_each(keep, |index, expanded, addr| {
            let Some((_, name)) = expanded.split_first() else {
                return;
            };
            let Some(slot) = slots.get(name).and_then(|&i| best.get_mut(i)) else {
                return;
            };
            let new = entry(index, expanded, addr);
            if slot
                .as_ref()
                .is_none_or(|old| new.is_global() && !old.is_global())
            {
                *slot = Some(new);
            }
        });
        // Repeated names share the first one's answer.
        names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let first = slots.get(n.as_bytes()).copied().unwrap_or(i);
                best.get(first).cloned().flatten()
            })
            .collect()
    }

    /// The address of `name` ([`find`](Self::find)'s choice), by a pass over the
    /// table.
    pub fn lookup(&self, name: &str) -> Option<u64> {
        self.find(&[name]).pop().flatten().map(|s| s.addr)
    }
}

/// An entry from an expansion (type letter, then name).
fn entry(index: u32, expanded: &[u8], addr: u64) -> KsymEntry {
    let (kind, name) = expanded.split_first().unwrap_or((&b'?', &[]));
    KsymEntry {
        index,
        name: String::from_utf8_lossy(name).into_owned(),
        kind: char::from(*kind),
        addr,
    }
}
