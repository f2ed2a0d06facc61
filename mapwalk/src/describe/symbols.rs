//! Kernel symbols from a vmlinux ELF, a `System.map` / `/proc/kallsyms` text or the
//! kernel's own table in memory ([`Ksymtab`]), with the KASLR slide that turns their
//! addresses into the running kernel's.
//!
//! A kernel's symbol text is large (about 90,000 lines, 3.6 MB, on Debian) and a
//! description needs some twenty of its names. So a text is not parsed into a table:
//! [`Symbols::from_text`] keeps the bytes, [`Symbols::prefetch`] finds the names it is
//! given in one pass over the lines (splitting each line only as far as its name), and
//! a lookup of any other name scans the text again. A table read from memory is used
//! the same way: [`Symbols::prefetch`] decodes it once for all the names it is given.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use goblin::elf::section_header::SHN_UNDEF;
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FILE, STT_SECTION};
use goblin::elf::Elf;
use mapwalk_core::kernel::X86_START_KERNEL_MAP;
use mapwalk_core::Kva;

use super::ksymtab::Ksymtab;
use crate::kallsyms::{parse_line, ParseError, SymbolTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sym {
    addr: u64,
    module: bool,
    global: bool,
}

/// Kernel symbols at their runtime addresses.
///
/// The addresses are kept as the file gave them, with the KASLR slide found by
/// [`describe`](super::describe): [`lookup`](Self::lookup) adds the slide to
/// kernel-image addresses (those at or above `__START_KERNEL_map`, or an arm64
/// kernel's image floor: [`with_image_slide`](Self::with_image_slide)), never to module
/// symbols or to the zero-based per-CPU symbols.
///
/// ```
/// use mapwalk::describe::Symbols;
/// use mapwalk::kallsyms::SymbolTable;
/// use mapwalk_core::Kva;
///
/// let table = SymbolTable::parse("ffffffff82000000 D map_idr\n0000000000001000 D cpu_number\n").unwrap();
/// let syms = Symbols::from_table(&table).with_slide(0x20_0000);
/// assert_eq!(syms.lookup("map_idr"), Some(Kva(0xffff_ffff_8220_0000)));
/// assert_eq!(syms.lookup("cpu_number"), Some(Kva(0x1000)));
/// assert_eq!(syms.file_addr("map_idr"), Some(0xffff_ffff_8200_0000));
/// ```
#[derive(Clone, Default)]
pub struct Symbols {
    /// Names looked up (or read from an ELF): `None` when the text has no such name.
    by_name: HashMap<String, Option<Sym>>,
    /// The symbol text, when the symbols come from one.
    text: Option<Arc<Vec<u8>>>,
    /// The kernel's table, when the symbols were read from memory.
    table: Option<Arc<Ksymtab>>,
    slide: u64,
    /// The lowest kernel-image address the slide applies to: `None` for x86_64's
    /// `__START_KERNEL_map`; arm64's image starts lower (see
    /// [`with_image_slide`](Self::with_image_slide)).
    image_floor: Option<u64>,
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbols")
            .field("names", &self.by_name.len())
            .field("text_bytes", &self.text.as_ref().map(|t| t.len()))
            .field("table_symbols", &self.table.as_ref().map(|t| t.len()))
            .field("slide", &self.slide)
            .finish()
    }
}

/// How much a lookup prefers a symbol: kernel-image globals first, then kernel-image
/// locals, then module symbols (as [`SymbolTable::lookup`]).
fn rank(module: bool, global: bool) -> u8 {
    u8::from(module) * 2 + u8::from(!global)
}

/// The name of a symbol-text line, split as far as the name only: `ADDR T NAME` or
/// `ADDR T NAME\t[module]`. `None` for a line of another shape (left to
/// [`parse_line`]).
fn name_of(line: &[u8]) -> Option<&[u8]> {
    // 64-bit addresses are 16 digits: no search for the first space then.
    let sp = if line.get(16) == Some(&b' ') {
        16
    } else {
        memchr::memchr(b' ', line)?
    };
    if line.get(sp.checked_add(2)?) != Some(&b' ') {
        return None;
    }
    let rest = line.get(sp.checked_add(3)?..)?;
    // A `[module]` follows a tab; otherwise the name is the rest of the line.
    let end = match rest.last() {
        Some(b']') => memchr::memchr(b'\t', rest)?,
        _ => rest.len(),
    };
    let name = rest.get(..end)?;
    (!name.is_empty() && printable(name)).then_some(name)
}

/// Whether no byte of `bytes` is a space, a tab, a CR or another control byte (at most
/// `0x20`): eight bytes at a time (a plain byte loop over every name of a symbol text
/// costs more than the rest of its scan).
fn printable(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    // Some byte below 0x21 (exact as a whole for a bound of at most 128).
    let has_low = |x: u64| x.wrapping_sub(ONES * 0x21) & !x & HIGH != 0;
    let mut chunks = bytes.chunks_exact(8);
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        if has_low(u64::from_le_bytes(w)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| b > b' ')
}

/// Each non-empty line of `text` with where it starts, without its `\n`.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0usize;
    let mut ends = memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len()));
    std::iter::from_fn(move || {
        let end = ends.next()?;
        let at = start;
        start = end.saturating_add(1);
        Some((at, text.get(at..end).unwrap_or_default()))
    })
    .filter(|(_, l)| !l.is_empty())
}

/// Parses the line at `at` of `text` fully (the slow path, and the lines of wanted
/// names); its number, for an error, is counted only then.
fn parse_at(
    text: &[u8],
    at: usize,
    line: &[u8],
) -> Result<Option<crate::kallsyms::Symbol>, ParseError> {
    parse_full(line).map_err(|(what, shown)| ParseError {
        line: memchr::memchr_iter(b'\n', text.get(..at).unwrap_or_default())
            .count()
            .saturating_add(1),
        what,
        text: shown,
    })
}

/// Parses one line fully: `None` for a blank one.
fn parse_full(line: &[u8]) -> Result<Option<crate::kallsyms::Symbol>, (&'static str, String)> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_line(text)
        .map(Some)
        .map_err(|what| (what, text.chars().take(120).collect()))
}

/// A `/proc/kallsyms` line of the usual shape (`address type name`) read in place:
/// `Some(Some((address, global, name's range in the line)))` for the image's,
/// `Some(None)` for a module's (`\t[module]` after the name), `None` for another
/// shape (which the full parser reads).
fn image_line(line: &[u8]) -> Option<Option<(u64, bool, std::ops::Range<usize>)>> {
    let mut addr = 0u64;
    let mut digits = 0usize;
    for &b in line {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        addr = (addr << 4) | u64::from(d);
        digits += 1;
    }
    if digits == 0 || digits > 16 {
        return None;
    }
    let kind = match line.get(digits..digits.checked_add(3)?)? {
        [b' ', kind, b' '] if kind.is_ascii_alphabetic() => *kind,
        _ => return None,
    };
    let start = digits + 3;
    let rest = line.get(start..)?;
    let end = memchr::memchr3(b'\t', b' ', b'\r', rest).unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    match &rest[end..] {
        [] | [b'\r'] => Some(Some((addr, kind.is_ascii_uppercase(), start..start + end))),
        [b'\t', b'[', .., b']'] => Some(None),
        _ => None,
    }
}

/// The byte range of a line's third whitespace-separated field (a symbol's name).
fn third_field(line: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut fields = 0usize;
    let mut i = 0usize;
    while i < line.len() {
        while line.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let start = i;
        while line.get(i).is_some_and(|b| !b.is_ascii_whitespace()) {
            i += 1;
        }
        if start == i {
            return None;
        }
        fields += 1;
        if fields == 3 {
            return Some(start..i);
        }
    }
    None
}

/// Whether the address of a line of the usual shape is all zeros (`Some(false)`: it is
/// not; `None`: another shape).
fn zero_address(line: &[u8]) -> Option<bool> {
    name_of(line)?;
    let sp = memchr::memchr(b' ', line)?;
    let addr = line.get(..sp)?;
    if addr.iter().all(|&b| b == b'0') {
        return Some(true);
    }
    addr.iter().all(u8::is_ascii_hexdigit).then_some(false)
}

/// The best symbol of each of `wanted` in `text`, in one pass. Lines of another shape
/// than `ADDR T NAME [module]` are parsed in full, so a malformed one is an error.
fn scan(text: &[u8], wanted: &[&str]) -> Result<Vec<Option<Sym>>, ParseError> {
    const BY_LEN: usize = 128;
    let mut by_len: Vec<Vec<usize>> = vec![Vec::new(); BY_LEN];
    // Per length, the first bytes of the wanted names of that length: most lines are
    // passed over on one test of this set.
    let mut first: Vec<[u64; 4]> = vec![[0; 4]; BY_LEN];
    let mut long = false;
    for (i, w) in wanted.iter().enumerate() {
        match (
            by_len.get_mut(w.len()),
            first.get_mut(w.len()),
            w.as_bytes().first(),
        ) {
            (Some(v), Some(set), Some(&b)) => {
                v.push(i);
                set[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            _ => long = true,
        }
    }
    let mut best: Vec<Option<(u8, Sym)>> = vec![None; wanted.len()];
    let mut offer = |at: usize, line: &[u8], i: usize| -> Result<(), ParseError> {
        let Some(sym) = parse_at(text, at, line)? else {
            return Ok(());
        };
        let r = rank(sym.module.is_some(), sym.is_global());
        if let Some(slot) = best.get_mut(i) {
            if slot.is_none_or(|(old, _)| r < old) {
                *slot = Some((
                    r,
                    Sym {
                        addr: sym.addr,
                        module: sym.module.is_some(),
                        global: sym.is_global(),
                    },
                ));
            }
        }
        Ok(())
    };
    for (at, line) in lines(text) {
        match name_of(line) {
            Some(name) => {
                let maybe = match (first.get(name.len()), name.first()) {
                    (Some(set), Some(&b)) => set[usize::from(b >> 6)] & (1 << (b & 63)) != 0,
                    _ => long,
                };
                if !maybe {
                    continue;
                }
                if long {
                    if let Some(i) = wanted.iter().position(|w| w.as_bytes() == name) {
                        offer(at, line, i)?;
                    }
                    continue;
                }
                for &i in by_len
                    .get(name.len())
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if wanted.get(i).map(|w| w.as_bytes()) == Some(name) {
                        offer(at, line, i)?;
                    }
                }
            }
            None => {
                if let Some(sym) = parse_at(text, at, line)? {
                    if let Some(i) = wanted.iter().position(|w| *w == sym.name) {
                        offer(at, line, i)?;
                    }
                }
            }
        }
    }
    Ok(best.into_iter().map(|b| b.map(|(_, s)| s)).collect())
}

impl Symbols {
    /// The symbols of a parsed `System.map` / `/proc/kallsyms`, with no slide. Where a
    /// name repeats, [`SymbolTable::lookup`]'s choice is kept.
    pub fn from_table(table: &SymbolTable) -> Self {
        let mut by_name = HashMap::with_capacity(table.len());
        for s in table.symbols() {
            if by_name.contains_key(&s.name) {
                continue;
            }
            if let Some(best) = table.get(&s.name) {
                by_name.insert(
                    s.name.clone(),
                    Some(Sym {
                        addr: best.addr,
                        module: best.module.is_some(),
                        global: best.is_global(),
                    }),
                );
            }
        }
        Self {
            by_name,
            text: None,
            table: None,
            slide: 0,
            image_floor: None,
        }
    }

    /// The symbols of a `System.map` / `/proc/kallsyms` text, with no slide. Nothing is
    /// parsed yet: see [`prefetch`](Self::prefetch). Where a name repeats, the choice
    /// is [`SymbolTable::lookup`]'s.
    ///
    /// # Errors
    /// A [`ParseError`] when the text has no line at all, or when its first line is
    /// malformed.
    ///
    /// ```
    /// use mapwalk::describe::Symbols;
    /// use mapwalk_core::Kva;
    ///
    /// let text = b"ffffffff82000000 d map_idr\nffffffff82000010 D map_idr\n".to_vec();
    /// let mut syms = Symbols::from_text(text).unwrap();
    /// syms.prefetch(&["map_idr", "nothing"]).unwrap();
    /// assert_eq!(syms.lookup("map_idr"), Some(Kva(0xffff_ffff_8200_0010)));
    /// assert_eq!(syms.lookup("nothing"), None);
    /// ```
    pub fn from_text(text: Vec<u8>) -> Result<Self, ParseError> {
        let text = Arc::new(text);
        match lines(&text).next() {
            None => {
                return Err(ParseError {
                    line: 1,
                    what: "no symbols",
                    text: String::new(),
                })
            }
            Some((at, line)) => {
                parse_at(&text, at, line)?;
            }
        }
        Ok(Self {
            by_name: HashMap::new(),
            text: Some(text),
            table: None,
            slide: 0,
            image_floor: None,
        })
    }

    /// The symbols of the kernel's own table (runtime addresses), with no slide.
    /// Nothing is decoded yet: see [`prefetch`](Self::prefetch). Where a name repeats,
    /// the choice is [`Ksymtab::find`]'s (the first global symbol, else the first).
    pub fn from_ksymtab(table: Ksymtab) -> Self {
        Self {
            by_name: HashMap::new(),
            text: None,
            table: Some(Arc::new(table)),
            slide: 0,
            image_floor: None,
        }
    }

    /// The kernel's table these symbols come from, if they were read from memory.
    pub fn ksymtab(&self) -> Option<&Ksymtab> {
        self.table.as_deref()
    }

    /// Finds `names` in the text (or the kernel's table) in one pass, so that their
    /// lookups cost nothing. Without either (symbols from an ELF or a parsed table),
    /// does nothing.
    ///
    /// # Errors
    /// A [`ParseError`] for a malformed line: one whose shape is not
    /// `ADDRESS TYPE NAME [module]`, or one of the names asked for whose address or
    /// type is bad.
    pub fn prefetch(&mut self, names: &[&str]) -> Result<(), ParseError> {
        let names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.by_name.contains_key(*n))
            .collect();
        if let Some(table) = &self.table {
            if names.is_empty() {
                return Ok(());
            }
            let found = table.find(&names);
            for (name, sym) in names.into_iter().zip(found) {
                self.by_name.insert(name.to_owned(), sym.map(table_sym));
            }
            return Ok(());
        }
        let Some(text) = &self.text else {
            return Ok(());
        };
        let found = scan(text, &names)?;
        for (name, sym) in names.into_iter().zip(found) {
            self.by_name.insert(name.to_owned(), sym);
        }
        Ok(())
    }

    /// Whether every address looked up so far is zero (`/proc/kallsyms` read without
    /// `CAP_SYSLOG`), with at least one found.
    pub fn found_addresses_hidden(&self) -> bool {
        let mut found = self.by_name.values().flatten().peekable();
        found.peek().is_some() && found.all(|s| s.addr == 0)
    }

    fn get(&self, name: &str) -> Option<Sym> {
        match self.by_name.get(name) {
            Some(s) => *s,
            None => {
                if let Some(table) = &self.table {
                    return table.find(&[name]).pop().flatten().map(table_sym);
                }
                let text = self.text.as_ref()?;
                // A name not prefetched: a pass of its own (a malformed line was
                // reported by the prefetch, if any).
                scan(text, &[name]).ok()?.into_iter().next().flatten()
            }
        }
    }

    /// Every symbol of the kernel's table, best of each name.
    fn all_of_table(table: &Ksymtab) -> HashMap<String, Option<Sym>> {
        let mut by_name: HashMap<String, Sym> = HashMap::with_capacity(table.len());
        for e in table.iter() {
            let new = Sym {
                addr: e.addr,
                module: false,
                global: e.is_global(),
            };
            match by_name.entry(e.name) {
                Entry::Vacant(v) => {
                    v.insert(new);
                }
                Entry::Occupied(mut o) => {
                    if new.global && !o.get().global {
                        o.insert(new);
                    }
                }
            }
        }
        by_name.into_iter().map(|(n, s)| (n, Some(s))).collect()
    }

    /// Every symbol of a text, best of each name.
    fn all_of_text(text: &[u8]) -> HashMap<String, Option<Sym>> {
        let mut by_name: HashMap<String, (u8, Sym)> = HashMap::new();
        for (_, line) in lines(text) {
            let Ok(Some(sym)) = parse_full(line) else {
                continue;
            };
            let r = rank(sym.module.is_some(), sym.is_global());
            let new = Sym {
                addr: sym.addr,
                module: sym.module.is_some(),
                global: sym.is_global(),
            };
            match by_name.entry(sym.name) {
                Entry::Vacant(v) => {
                    v.insert((r, new));
                }
                Entry::Occupied(mut o) => {
                    if r < o.get().0 {
                        o.insert((r, new));
                    }
                }
            }
        }
        by_name
            .into_iter()
            .map(|(n, (_, s))| (n, Some(s)))
            .collect()
    }

    /// The symbols of a parsed ELF's `.symtab` (link-time addresses), with no slide.
    /// Undefined, section and file symbols are left out; where a name repeats, the
    /// first global (or weak) definition wins, else the first local one.
    pub fn from_elf(elf: &Elf<'_>) -> Self {
        let mut by_name: HashMap<String, Option<Sym>> = HashMap::with_capacity(elf.syms.len());
        for sym in elf.syms.iter() {
            if sym.st_shndx == usize::try_from(SHN_UNDEF).unwrap_or(0)
                || matches!(sym.st_type(), STT_SECTION | STT_FILE)
            {
                continue;
            }
            let Some(name) = elf.strtab.get_at(sym.st_name) else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let global = matches!(sym.st_bind(), STB_GLOBAL | STB_WEAK);
            let new = Sym {
                addr: sym.st_value,
                module: false,
                global,
            };
            match by_name.entry(name.to_owned()) {
                Entry::Vacant(v) => {
                    v.insert(Some(new));
                }
                Entry::Occupied(mut o) => {
                    if global && o.get().is_some_and(|s| !s.global) {
                        o.insert(Some(new));
                    }
                }
            }
        }
        Self {
            by_name,
            text: None,
            table: None,
            slide: 0,
            image_floor: None,
        }
    }

    /// The same symbols with `slide` (runtime minus file address of kernel-image
    /// symbols).
    #[must_use]
    pub fn with_slide(mut self, slide: u64) -> Self {
        self.slide = slide;
        self
    }

    /// The same symbols with `slide` applied to every non-module address at or above
    /// `floor`, where an arm64 kernel's image starts (`MODULES_END`: `0xffff_8000_0800_0000`
    /// on Linux 6.1 with 48-bit VAs, `0xffff_8000_8000_0000` on 6.12) instead of
    /// `__START_KERNEL_map`.
    ///
    /// ```
    /// use mapwalk::describe::Symbols;
    /// use mapwalk::kallsyms::SymbolTable;
    /// use mapwalk_core::Kva;
    ///
    /// let table = SymbolTable::parse(
    ///     "ffff800008000000 T _text\n0000000000000000 A _kernel_flags_le_hi32\n",
    /// )
    /// .unwrap();
    /// let syms = Symbols::from_table(&table).with_image_slide(0x3ee0_e560_0000, 0xffff_8000_0800_0000);
    /// assert_eq!(syms.lookup("_text"), Some(Kva(0xffff_bee0_ed60_0000)));
    /// assert_eq!(syms.lookup("_kernel_flags_le_hi32"), Some(Kva(0)));
    /// ```
    #[must_use]
    pub fn with_image_slide(mut self, slide: u64, floor: u64) -> Self {
        self.slide = slide;
        self.image_floor = Some(floor);
        self
    }

    /// The slide applied to kernel-image addresses: 0 for a runtime `/proc/kallsyms`,
    /// `KERNELOFFSET` for a vmlinux or `System.map` of a KASLR kernel.
    pub fn slide(&self) -> u64 {
        self.slide
    }

    /// The runtime address of `name`. For symbols from a text, a name not
    /// [prefetched](Self::prefetch) costs a pass over the text.
    pub fn lookup(&self, name: &str) -> Option<Kva> {
        self.get(name).map(|s| Kva(self.runtime(s)))
    }

    /// The address of `name` as the file gave it.
    pub fn file_addr(&self, name: &str) -> Option<u64> {
        self.get(name).map(|s| s.addr)
    }

    /// Every symbol with its runtime address, in no particular order. For symbols from
    /// a text, this parses the whole text.
    pub fn iter(&self) -> impl Iterator<Item = (String, Kva)> + '_ {
        self.all()
            .into_iter()
            .filter_map(move |(n, s)| Some((n, Kva(self.runtime(s?)))))
    }

    /// Every symbol, best of each name (see [`iter`](Self::iter)).
    fn all(&self) -> HashMap<String, Option<Sym>> {
        match (&self.text, &self.table) {
            (Some(text), _) => Self::all_of_text(text),
            (None, Some(table)) => Self::all_of_table(table),
            (None, None) => self.by_name.clone(),
        }
    }

    /// [`image_symbols`](Self::image_symbols) as a [`KernelSymbolizer`], made without
    /// a string for each symbol: a text's usual lines (`address type name`) are read in
    /// place, any other line parsed fully.
    ///
    /// [`KernelSymbolizer`]: crate::stack::KernelSymbolizer
    pub fn image_symbolizer(&self) -> crate::stack::KernelSymbolizer {
        let Some(text) = &self.text else {
            return crate::stack::KernelSymbolizer::new(self.image_symbols());
        };
        let image = |addr: u64, global: bool| Sym {
            addr,
            module: false,
            global,
        };
        let mut by_addr = Vec::new();
        for (at, line) in lines(text) {
            let (addr, global, name) = match image_line(line) {
                Some(Some(sym)) => sym,
                // A module's or a BPF program's.
                Some(None) => continue,
                None => match parse_full(line) {
                    Ok(Some(sym)) if sym.module.is_none() => match third_field(line) {
                        Some(name) => (sym.addr, sym.is_global(), name),
                        None => continue,
                    },
                    _ => continue,
                },
            };
            let start = at.saturating_add(name.start);
            let (Ok(start), Ok(len)) = (u32::try_from(start), u32::try_from(name.len())) else {
                continue;
            };
            by_addr.push((self.runtime(image(addr, global)), start, len));
        }
        crate::stack::KernelSymbolizer::over_text(by_addr, Arc::clone(text))
    }

    /// Every symbol of the kernel image with its runtime address, names that repeat
    /// (static functions of several files) once per address, without modules' (nor BPF
    /// programs', `[bpf]` in `/proc/kallsyms`): what names an address, the same
    /// whether the symbols come from a text or the kernel's own table.
    pub fn image_symbols(&self) -> Vec<(String, Kva)> {
        let image = |addr: u64, global: bool| Sym {
            addr,
            module: false,
            global,
        };
        match (&self.text, &self.table) {
            (Some(text), _) => lines(text)
                .filter_map(|(_, line)| parse_full(line).ok().flatten())
                .filter(|sym| sym.module.is_none())
                .map(|sym| {
                    let addr = self.runtime(image(sym.addr, sym.is_global()));
                    (sym.name, Kva(addr))
                })
                .collect(),
            (None, Some(table)) => table
                .iter()
                .map(|e| {
                    let addr = self.runtime(image(e.addr, e.is_global()));
                    (e.name, Kva(addr))
                })
                .collect(),
            (None, None) => self
                .by_name
                .iter()
                .filter_map(|(n, s)| {
                    let s = s.filter(|s| !s.module)?;
                    Some((n.clone(), Kva(self.runtime(s))))
                })
                .collect(),
        }
    }

    /// The number of distinct names. For symbols from a text, this parses the whole
    /// text.
    pub fn len(&self) -> usize {
        match (&self.text, &self.table) {
            (Some(text), _) => Self::all_of_text(text).len(),
            (None, Some(table)) => Self::all_of_table(table).len(),
            (None, None) => self.by_name.values().flatten().count(),
        }
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        match (&self.text, &self.table) {
            (Some(text), _) => lines(text).next().is_none(),
            (None, Some(table)) => table.is_empty(),
            (None, None) => self.by_name.values().flatten().next().is_none(),
        }
    }

    /// Whether every address is zero (`/proc/kallsyms` read without `CAP_SYSLOG`).
    /// For symbols from a text, this reads lines until one has an address.
    pub fn addresses_hidden(&self) -> bool {
        match &self.text {
            Some(text) => {
                let mut any = false;
                for (_, line) in lines(text) {
                    match zero_address(line) {
                        Some(true) => any = true,
                        Some(false) => return false,
                        None => {
                            if let Ok(Some(sym)) = parse_full(line) {
                                if sym.addr != 0 {
                                    return false;
                                }
                                any = true;
                            }
                        }
                    }
                }
                any
            }
            None => {
                let mut all = self.by_name.values().flatten().peekable();
                all.peek().is_some() && all.all(|s| s.addr == 0)
            }
        }
    }

    fn runtime(&self, s: Sym) -> u64 {
        if !s.module && s.addr >= self.image_floor.unwrap_or(X86_START_KERNEL_MAP) {
            s.addr.wrapping_add(self.slide)
        } else {
            s.addr
        }
    }
}

/// A symbol of the kernel's table.
fn table_sym(e: super::ksymtab::KsymEntry) -> Sym {
    Sym {
        addr: e.addr,
        module: false,
        global: e.is_global(),
    }
}

/// The bytes of the section called `name`, if the ELF has one inside the file.
pub(super) fn elf_section<'a>(elf: &Elf<'_>, bytes: &'a [u8], name: &str) -> Option<&'a [u8]> {
    elf.section_headers.iter().find_map(|sh| {
        if elf.shdr_strtab.get_at(sh.sh_name) != Some(name) {
            return None;
        }
        let start = usize::try_from(sh.sh_offset).ok()?;
        let len = usize::try_from(sh.sh_size).ok()?;
        bytes.get(start..start.checked_add(len)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "0000000000000000 A fixed_percpu_data\n\
                        ffffffff81000000 t dup\n\
                        ffffffffc0a01000 T dup\t[veth]\n\
                        ffffffff81000010 T dup\n\
                        ffffffff82a1c010 D phys_base\n\
                        ffffffffc0a01000 t veth_open\t[veth]\n\
                        ffffffffc0a02000 T init_module\t[veth]\n\
                        \n\
                        ffffffffc0b02000 T init_module\t[nf_tables]\n\
                        c1000000   T   short_addr\n\
                        ffffffff81000020 T last";

    #[test]
    fn a_text_is_searched_as_a_table_is_looked_up() {
        let table = SymbolTable::parse(TEXT).unwrap();
        let from_table = Symbols::from_table(&table);
        let mut from_text = Symbols::from_text(TEXT.as_bytes().to_vec()).unwrap();
        let names = [
            "fixed_percpu_data",
            "dup",
            "phys_base",
            "veth_open",
            "init_module",
            "short_addr",
            "last",
            "absent",
        ];
        // Before the prefetch (one pass per name), and after it.
        for pass in 0..2 {
            for n in names {
                assert_eq!(
                    from_text.file_addr(n),
                    from_table.file_addr(n),
                    "{n}, pass {pass}"
                );
            }
            from_text.prefetch(&names).unwrap();
        }
        assert_eq!(from_text.file_addr("dup"), Some(0xffff_ffff_8100_0010));
        assert_eq!(from_text.len(), from_table.len());
        assert!(!from_text.addresses_hidden() && !from_text.is_empty());
    }

    #[test]
    fn the_image_symbolizer_names_as_the_image_symbols_do() {
        let mut text = TEXT.to_owned();
        // Lines of other shapes go through the full parser.
        text.push_str("\nffffffff81000100  t  spaced\nffffffffc0001000 t prog_1 [bpf]\n");
        let syms = Symbols::from_text(text.into_bytes()).unwrap();
        let slow = crate::stack::KernelSymbolizer::new(syms.image_symbols());
        let fast = syms.image_symbolizer();
        for (_, addr) in syms.image_symbols() {
            for probe in [addr.0, addr.0 + 1, addr.0 + 0x10] {
                assert_eq!(fast.name(probe), slow.name(probe), "{probe:#x}");
            }
        }
        assert_eq!(
            fast.name(0xffff_ffff_8100_0105).as_deref(),
            Some("spaced+0x5")
        );
        assert_eq!(fast.name(0xffff_ffff_c000_1000), None, "a BPF program's");
    }

    #[test]
    fn usual_lines_are_read_in_place() {
        let line = b"ffffffff81000000 T _stext";
        assert_eq!(
            image_line(line),
            Some(Some((0xffff_ffff_8100_0000, true, 19..25)))
        );
        assert_eq!(&line[19..25], b"_stext");
        assert_eq!(
            image_line(b"ffffffff81000000 t local\r"),
            Some(Some((0xffff_ffff_8100_0000, false, 19..24)))
        );
        assert_eq!(image_line(b"ffffffffc0000000 t f\t[veth]"), Some(None));
        for other in [
            &b"ffffffff81000000  t two_spaces"[..],
            b"xyz T bad_address",
            b"11111111111111111 T too_long",
            b"ffffffff81000000 T",
            b"ffffffff81000000 T name extra",
        ] {
            assert_eq!(
                image_line(other),
                None,
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        assert_eq!(third_field(b" a  b\tc d"), Some(6..7));
        assert_eq!(third_field(b"a b"), None);
    }

    #[test]
    fn the_image_symbols_leave_modules_out() {
        let syms = Symbols::from_text(TEXT.as_bytes().to_vec()).unwrap();
        let mut image: Vec<(String, u64)> = syms
            .image_symbols()
            .into_iter()
            .map(|(n, a)| (n, a.0))
            .collect();
        image.sort();
        // Both `dup`s of the image, neither of `veth`.
        assert_eq!(
            image,
            [
                ("dup".to_owned(), 0xffff_ffff_8100_0000),
                ("dup".to_owned(), 0xffff_ffff_8100_0010),
                ("fixed_percpu_data".to_owned(), 0),
                ("last".to_owned(), 0xffff_ffff_8100_0020),
                ("phys_base".to_owned(), 0xffff_ffff_82a1_c010),
                ("short_addr".to_owned(), 0xc100_0000),
            ]
        );
        // `iter` has the modules' too.
        assert!(syms.iter().any(|(n, _)| n == "veth_open"));
    }

    #[test]
    fn printable_agrees_with_a_byte_loop() {
        let mut name = *b"abcdefghijklmnopqrs";
        assert!(printable(&name));
        for at in 0..name.len() {
            for b in 0..=255u8 {
                let old = name[at];
                name[at] = b;
                for len in 0..=name.len() {
                    let n = &name[..len];
                    assert_eq!(printable(n), n.iter().all(|&c| c > b' '), "{n:?}");
                }
                name[at] = old;
            }
        }
        assert_eq!(name_of(b"ffffffff81000000 T a b"), None);
        assert_eq!(name_of(b"ffffffff81000000 T a\r"), None);
        assert_eq!(name_of(b"ffffffff81000000 T a\t[m]"), Some(&b"a"[..]));
        assert_eq!(name_of(b"ffffffff81000000 T a b\t[m]"), None);
    }

    #[test]
    fn malformed_and_empty_texts_are_refused() {
        let bad = "ffffffff81000000 T good\nnot a symbol line at all\n";
        let mut s = Symbols::from_text(bad.as_bytes().to_vec()).unwrap();
        let e = s.prefetch(&["good"]).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        // A bad address on a line of the usual shape is found when its name is wanted.
        let bad = "ffffffff81000000 T good\nzzzzzzzzzzzzzzzz T wanted\n";
        let mut s = Symbols::from_text(bad.as_bytes().to_vec()).unwrap();
        assert!(s.prefetch(&["good"]).is_ok());
        assert_eq!(s.prefetch(&["wanted"]).unwrap_err().line, 2);
        assert!(Symbols::from_text(b"\n\n".to_vec()).is_err());
        assert!(Symbols::from_text(b"xyz\n".to_vec()).is_err());
        let hidden = "0000000000000000 T a\n0000000000000000 D b\n";
        assert!(Symbols::from_text(hidden.as_bytes().to_vec())
            .unwrap()
            .addresses_hidden());
    }
}
