//! Writing a symbol table in the kernel's format: for tests, fuzzing seeds and tools
//! that make synthetic guests.
// The sizes and offsets here are the builder's own, computed from the caller's
// values, not read from guest memory.
#![allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::as_conversions
)]

use std::collections::BTreeMap;

use mapwalk_core::Kva;

use super::KsymtabLocation;

/// How [`KsymtabBuilder::build`] encodes the addresses (see
/// [`AddressEncoding`](super::AddressEncoding)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildEncoding {
    /// Offsets from the lowest address, with a `kallsyms_relative_base`.
    Relative,
    /// Symbols of type `A` as absolute non-negative values, the others as
    /// `relative_base - 1 - offset` (x86_64 SMP before Linux 6.15).
    AbsolutePercpu,
    /// Place-relative offsets, no relative base.
    PlaceRelative,
}

/// Why [`KsymtabBuilder::build`] could not write a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildError(pub &'static str);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BuildError {}

/// A kernel symbol table under construction: symbols in table order, and the tokens
/// the names are compressed with. Bytes 1 to 127 stand for themselves; bytes 128 to
/// 255 for the multi-character tokens given with [`token`](Self::token) (empty
/// otherwise, as the kernel's unused tokens are).
///
/// ```
/// use mapwalk::describe::ksymtab::{BuildEncoding, KsymtabBuilder};
///
/// let mut b = KsymtabBuilder::new();
/// b.token(0x80, "map_").push('D', "map_idr", 0xffff_ffff_8250_0000);
/// let (bytes, loc) = b.build(0xffff_ffff_8200_0000, BuildEncoding::Relative).unwrap();
/// // "Dmap_idr" compressed: 'D', the token "map_", 'i', 'd', 'r'.
/// assert_eq!(&bytes[8..14], &[5, b'D', 0x80, b'i', b'd', b'r']);
/// assert_eq!(loc.names.0, 0xffff_ffff_8200_0008);
/// ```
#[derive(Debug, Clone, Default)]
pub struct KsymtabBuilder {
    pub(super) symbols: Vec<(char, String, u64)>,
    tokens: BTreeMap<u8, String>,
}

/// Rounds `n` up to a multiple of 8.
fn align8(n: usize) -> usize {
    n.div_ceil(8).saturating_mul(8)
}

impl KsymtabBuilder {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a symbol.
    pub fn push(&mut self, kind: char, name: &str, addr: u64) -> &mut Self {
        self.symbols.push((kind, name.to_owned(), addr));
        self
    }

    /// Makes byte `byte` (128 to 255; others are ignored) stand for `text`.
    pub fn token(&mut self, byte: u8, text: &str) -> &mut Self {
        if byte >= 0x80 {
            self.tokens.insert(byte, text.to_owned());
        }
        self
    }

    /// The compressed form of an expansion: the longest token at each place, else the
    /// character itself.
    fn compress(&self, expanded: &str) -> Result<Vec<u8>, BuildError> {
        let mut out = Vec::new();
        let mut rest = expanded.as_bytes();
        while let Some(&c) = rest.first() {
            let best = self
                .tokens
                .iter()
                .filter(|(_, t)| !t.is_empty() && rest.starts_with(t.as_bytes()))
                .max_by_key(|(_, t)| t.len());
            match best {
                Some((&b, t)) => {
                    out.push(b);
                    rest = rest.get(t.len()..).unwrap_or_default();
                }
                None if (1..0x80).contains(&c) => {
                    out.push(c);
                    rest = rest.get(1..).unwrap_or_default();
                }
                None => return Err(BuildError("a character that no token stands for")),
            }
        }
        Ok(out)
    }

    /// The table's bytes, to be placed at kernel-virtual address `at`, and where its
    /// parts are. The layout: `kallsyms_num_syms` at `at`, then `kallsyms_names`, the
    /// token table, the token index, the offsets and (unless place-relative) the
    /// relative base, each 8-byte aligned. Lengths of 128 compressed bytes and more
    /// take two bytes; nothing else is checked against the kernel's caps (tests build
    /// bad tables too).
    ///
    /// # Errors
    /// A name with a character no token stands for, one whose compressed form is
    /// 16 KiB or more, or an address the encoding cannot express.
    pub fn build(
        &self,
        at: u64,
        encoding: BuildEncoding,
    ) -> Result<(Vec<u8>, KsymtabLocation), BuildError> {
        let mut names = Vec::new();
        for (kind, name, _) in &self.symbols {
            let data = self.compress(&format!("{kind}{name}"))?;
            let len = data.len();
            match (u8::try_from(len), u8::try_from(len >> 7)) {
                (Ok(l), _) if l < 0x80 => names.push(l),
                (_, Ok(high)) if len < 0x4000 => {
                    names.push(u8::try_from(len & 0x7f).unwrap_or(0) | 0x80);
                    names.push(high);
                }
                _ => return Err(BuildError("a compressed name of 16 KiB or more")),
            }
            names.extend_from_slice(&data);
        }
        let mut tokens = Vec::new();
        let mut index = Vec::new();
        for b in 0..=u8::MAX {
            let off = u16::try_from(tokens.len()).map_err(|_| BuildError("tokens past 64 KiB"))?;
            index.extend_from_slice(&off.to_le_bytes());
            if (1..0x80).contains(&b) {
                tokens.push(b);
            } else if let Some(t) = self.tokens.get(&b) {
                tokens.extend_from_slice(t.as_bytes());
            }
            tokens.push(0);
        }

        let names_at = 8;
        let tokens_at = align8(names_at + names.len());
        let index_at = align8(tokens_at + tokens.len());
        let offsets_at = align8(index_at + index.len());
        let base_at = align8(offsets_at + 4 * self.symbols.len());
        let kva = |off: usize| {
            u64::try_from(off)
                .ok()
                .and_then(|o| at.checked_add(o))
                .map(Kva)
                .ok_or(BuildError("the table runs past the address space"))
        };
        let offsets_kva = kva(offsets_at)?.0;

        let percpu = |kind: char| encoding == BuildEncoding::AbsolutePercpu && kind == 'A';
        let base = self
            .symbols
            .iter()
            .filter(|(k, _, _)| !percpu(*k))
            .map(|s| s.2)
            .min()
            .unwrap_or(0);
        let mut offsets = Vec::new();
        for (i, (kind, _, addr)) in self.symbols.iter().enumerate() {
            let bad = BuildError("an address the encoding cannot express");
            let raw: i32 = match encoding {
                BuildEncoding::Relative => {
                    i32::from_ne_bytes(u32::try_from(addr - base).map_err(|_| bad)?.to_ne_bytes())
                }
                BuildEncoding::AbsolutePercpu if percpu(*kind) => {
                    i32::try_from(*addr).map_err(|_| bad)?
                }
                BuildEncoding::AbsolutePercpu => {
                    let d = i64::try_from(addr - base).map_err(|_| bad)?;
                    i32::try_from(-1 - d).map_err(|_| bad)?
                }
                BuildEncoding::PlaceRelative => {
                    let place = offsets_kva.wrapping_add(4 * i as u64);
                    i32::try_from(addr.wrapping_sub(place) as i64).map_err(|_| bad)?
                }
            };
            offsets.extend_from_slice(&raw.to_le_bytes());
        }

        let end = if encoding == BuildEncoding::PlaceRelative {
            offsets_at + offsets.len()
        } else {
            base_at + 8
        };
        let mut out = vec![0u8; end];
        let count =
            u32::try_from(self.symbols.len()).map_err(|_| BuildError("too many symbols"))?;
        out[..4].copy_from_slice(&count.to_le_bytes());
        out[names_at..names_at + names.len()].copy_from_slice(&names);
        out[tokens_at..tokens_at + tokens.len()].copy_from_slice(&tokens);
        out[index_at..index_at + index.len()].copy_from_slice(&index);
        out[offsets_at..offsets_at + offsets.len()].copy_from_slice(&offsets);
        let relative_base = if encoding == BuildEncoding::PlaceRelative {
            None
        } else {
            out[base_at..base_at + 8].copy_from_slice(&base.to_le_bytes());
            Some(kva(base_at)?)
        };
        Ok((
            out,
            KsymtabLocation {
                names: kva(names_at)?,
                num_syms: kva(0)?,
                token_table: kva(tokens_at)?,
                token_index: kva(index_at)?,
                offsets: Kva(offsets_kva),
                relative_base,
            },
        ))
    }
}
