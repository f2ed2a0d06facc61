//! Reading the table out of memory, and validating all of it once.

use mapwalk_core::kernel::KernelRead;
use mapwalk_core::Kva;

use super::{
    AddressEncoding, Ksymtab, KsymtabError, KsymtabLocation, KSYM_NAME_LEN, MAX_NAMES_BYTES,
    MAX_SYMS, MAX_TOKEN_TABLE_BYTES,
};

/// Bytes of `kallsyms_names` per read.
const NAMES_CHUNK: usize = 64 << 10;
/// Bytes of `kallsyms_token_table` per read.
const TOKEN_CHUNK: usize = 4 << 10;
/// Compressed bytes: one token each.
const TOKENS: usize = 256;

/// A compressed name's length and how many bytes the length takes (1, or 2 when the
/// first has its top bit set); `None` when `bytes` ends first.
pub(super) fn name_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.first()?;
    if first & 0x80 == 0 {
        return Some((usize::from(first), 1));
    }
    let high = usize::from(*bytes.get(1)?).checked_mul(0x80)?;
    Some((usize::from(first & 0x7f) | high, 2))
}

/// `base + off`.
fn kva_at(base: Kva, off: usize) -> Option<Kva> {
    base.0.checked_add(u64::try_from(off).ok()?).map(Kva)
}

fn usize_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// An address computation past the end of the address space, as a read error.
fn overflow(what: &'static str, at: Kva, off: usize) -> KsymtabError {
    KsymtabError::Read {
        what,
        at,
        source: mapwalk_core::Error::AddrOverflow {
            addr: at.0,
            len: usize_u64(off),
        },
    }
}

fn read_exact<K: KernelRead>(
    mem: &K,
    what: &'static str,
    at: Kva,
    buf: &mut [u8],
) -> Result<(), KsymtabError> {
    mem.read_kernel(at, buf)
        .map_err(|source| KsymtabError::Read { what, at, source })
}

/// A table of unknown size read in chunks as far as it is needed, never past `cap`.
struct Grow<'k, K> {
    mem: &'k K,
    what: &'static str,
    start: Kva,
    buf: Vec<u8>,
    cap: usize,
    chunk: usize,
}

impl<K: KernelRead> Grow<'_, K> {
    /// Makes the first `need` bytes available: a chunk at a time, or (when a chunk
    /// runs into memory that cannot be read) exactly what is missing.
    fn ensure(&mut self, need: usize) -> Result<(), KsymtabError> {
        let have = self.buf.len();
        if have >= need {
            return Ok(());
        }
        if need > self.cap {
            return Err(KsymtabError::Cap {
                what: self.what,
                at: self.start,
                value: usize_u64(need),
                cap: usize_u64(self.cap),
            });
        }
        let at = kva_at(self.start, have).ok_or_else(|| overflow(self.what, self.start, have))?;
        let upto = have.saturating_add(self.chunk).min(self.cap).max(need);
        self.buf.resize(upto, 0);
        let chunk = self.buf.get_mut(have..).unwrap_or_default();
        if self.mem.read_kernel(at, chunk).is_ok() {
            return Ok(());
        }
        self.buf.truncate(need);
        let missing = self.buf.get_mut(have..).unwrap_or_default();
        read_exact(self.mem, self.what, at, missing)
    }

    fn bytes(&self, from: usize, to: usize) -> &[u8] {
        self.buf.get(from..to).unwrap_or_default()
    }
}

/// The token table as far as it was read, and each token's range in it.
type Tokens = (Vec<u8>, Vec<(usize, usize)>);

/// The token table and each token's range in it.
fn read_tokens<K: KernelRead>(mem: &K, loc: &KsymtabLocation) -> Result<Tokens, KsymtabError> {
    let mut index = [0u8; 2 * TOKENS];
    read_exact(mem, "kallsyms_token_index", loc.token_index, &mut index)?;
    let mut table = Grow {
        mem,
        what: "kallsyms_token_table",
        start: loc.token_table,
        buf: Vec::new(),
        cap: MAX_TOKEN_TABLE_BYTES,
        chunk: TOKEN_CHUNK,
    };
    let mut ranges = Vec::with_capacity(TOKENS);
    for (token, pair) in (0u8..=u8::MAX).zip(index.chunks_exact(2)) {
        let offset = u16::from_le_bytes([
            pair.first().copied().unwrap_or(0),
            pair.get(1).copied().unwrap_or(0),
        ]);
        let start = usize::from(offset);
        let bad = KsymtabError::BadToken {
            token,
            offset,
            table: loc.token_table,
        };
        // A token longer than a name could never be used: its NUL must come before.
        let limit = start.saturating_add(KSYM_NAME_LEN).saturating_add(1);
        let mut from = start;
        let end = loop {
            match table.ensure(from.saturating_add(1)) {
                Ok(()) => {}
                Err(KsymtabError::Cap { .. }) => return Err(bad),
                Err(e) => return Err(e),
            }
            let have = table.buf.len().min(limit);
            if let Some(p) = memchr::memchr(0, table.bytes(from, have)) {
                break from.saturating_add(p);
            }
            if have >= limit {
                return Err(bad);
            }
            from = have;
        };
        ranges.push((start, end));
    }
    Ok((table.buf, ranges))
}

/// `kallsyms_names` for `num` symbols, each checked: a length of 1 to
/// [`KSYM_NAME_LEN`] compressed bytes, expanding (by `token_lens`) to a type letter and
/// a name of at most [`KSYM_NAME_LEN`] bytes together.
fn read_names<K: KernelRead>(
    mem: &K,
    loc: &KsymtabLocation,
    num: u32,
    token_lens: &[usize],
) -> Result<Vec<u8>, KsymtabError> {
    let mut names = Grow {
        mem,
        what: "kallsyms_names",
        start: loc.names,
        buf: Vec::new(),
        cap: MAX_NAMES_BYTES,
        chunk: NAMES_CHUNK,
    };
    let mut pos = 0usize;
    for index in 0..num {
        let at =
            kva_at(loc.names, pos).ok_or_else(|| overflow("kallsyms_names", loc.names, pos))?;
        let bad = |what: &'static str, value: usize| KsymtabError::BadName {
            index,
            at,
            what,
            value: usize_u64(value),
        };
        names.ensure(pos.saturating_add(1))?;
        if names
            .bytes(pos, pos.saturating_add(1))
            .first()
            .copied()
            .unwrap_or(0)
            & 0x80
            != 0
        {
            names.ensure(pos.saturating_add(2))?;
        }
        let (len, header) =
            name_len(names.bytes(pos, names.buf.len())).ok_or_else(|| bad("no length", 0))?;
        if len == 0 {
            return Err(bad("empty compressed name", len));
        }
        if len > KSYM_NAME_LEN {
            return Err(bad("compressed name longer than KSYM_NAME_LEN", len));
        }
        let start = pos.saturating_add(header);
        let end = start.saturating_add(len);
        names.ensure(end)?;
        let expanded = names
            .bytes(start, end)
            .iter()
            .map(|&b| token_lens.get(usize::from(b)).copied().unwrap_or(0))
            .fold(0usize, usize::saturating_add);
        if expanded < 2 {
            return Err(bad("expands to no name", expanded));
        }
        if expanded > KSYM_NAME_LEN {
            return Err(bad("expands past KSYM_NAME_LEN", expanded));
        }
        pos = end;
    }
    names.buf.truncate(pos);
    Ok(names.buf)
}

/// The raw `kallsyms_offsets` entries of `num` symbols.
fn read_offsets<K: KernelRead>(
    mem: &K,
    loc: &KsymtabLocation,
    num: u32,
) -> Result<Vec<i32>, KsymtabError> {
    let len = usize::try_from(num)
        .ok()
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| overflow("kallsyms_offsets", loc.offsets, usize::MAX))?;
    let mut raw = vec![0u8; len];
    read_exact(mem, "kallsyms_offsets", loc.offsets, &mut raw)?;
    Ok(raw
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap_or([0; 4])))
        .collect())
}

impl Ksymtab {
    /// Reads the table at `loc` through `mem` (runtime kernel-virtual addresses: the
    /// tables lie in the kernel image's `.rodata`) and checks all of it: the count
    /// against [`MAX_SYMS`], each token, each name's length and expansion, each
    /// address.
    ///
    /// The addresses are decoded as [`AddressEncoding`] says: place-relative without
    /// [`KsymtabLocation::relative_base`], else with absolute per-CPU symbols when some
    /// offset is negative, else plainly relative.
    ///
    /// # Errors
    /// [`KsymtabError::Read`] when a part cannot be read; [`KsymtabError::Cap`] for a
    /// count of 0 or past [`MAX_SYMS`], or names past [`MAX_NAMES_BYTES`];
    /// [`KsymtabError::BadToken`], [`KsymtabError::BadName`] and
    /// [`KsymtabError::BadAddress`] for a table the kernel cannot have written.
    pub fn read<K: KernelRead>(mem: &K, loc: &KsymtabLocation) -> Result<Self, KsymtabError> {
        let num = mem
            .read_kernel_u32(loc.num_syms)
            .map_err(|source| KsymtabError::Read {
                what: "kallsyms_num_syms",
                at: loc.num_syms,
                source,
            })?;
        if num == 0 || num > MAX_SYMS {
            return Err(KsymtabError::Cap {
                what: "kallsyms_num_syms",
                at: loc.num_syms,
                value: u64::from(num),
                cap: u64::from(MAX_SYMS),
            });
        }
        let (tokens, token_ranges) = read_tokens(mem, loc)?;
        let token_lens: Vec<usize> = token_ranges
            .iter()
            .map(|&(s, e)| e.saturating_sub(s))
            .collect();
        let names = read_names(mem, loc, num, &token_lens)?;
        let offsets = read_offsets(mem, loc, num)?;
        let encoding = match loc.relative_base {
            None => AddressEncoding::PlaceRelative {
                offsets: loc.offsets.0,
            },
            Some(at) => {
                let base = mem
                    .read_kernel_u64(at)
                    .map_err(|source| KsymtabError::Read {
                        what: "kallsyms_relative_base",
                        at,
                        source,
                    })?;
                if offsets.iter().any(|&o| o < 0) {
                    AddressEncoding::AbsolutePercpu { base }
                } else {
                    AddressEncoding::Relative { base }
                }
            }
        };
        let addrs = (0u32..)
            .zip(&offsets)
            .map(|(index, &offset)| {
                encoding
                    .address(index, offset)
                    .ok_or(KsymtabError::BadAddress { index, offset })
            })
            .collect::<Result<Vec<u64>, KsymtabError>>()?;
        Ok(Self {
            names,
            tokens,
            token_ranges,
            token_lens,
            addrs,
            encoding,
            location: *loc,
        })
    }
}
