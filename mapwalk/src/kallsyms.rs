//! Symbol tables in `/proc/kallsyms` and `System.map` format.
//!
//! Both are lines of `ADDRESS TYPE NAME`, where the address is hexadecimal without a
//! `0x`, the type is one character (`T`/`t` text, `D`/`d` data, `B`/`b` bss, `R`/`r`
//! read-only data, `A` absolute, ...; upper case is global) and `/proc/kallsyms` adds
//! `[module]` (after a tab) to the symbols of loaded modules:
//!
//! ```text
//! ffffffff81000000 T _text
//! ffffffffc0a01000 t veth_open    [veth]
//! ```
//!
//! ```
//! use mapwalk::kallsyms::SymbolTable;
//!
//! let table = SymbolTable::parse(
//!     "ffffffff81000000 T _text\n\
//!      ffffffff82a1c010 D phys_base\n\
//!      ffffffffc0a01000 t veth_open\t[veth]\n",
//! )
//! .unwrap();
//! assert_eq!(table.lookup("phys_base"), Some(0xffff_ffff_82a1_c010));
//! assert_eq!(table.lookup_in("veth", "veth_open"), Some(0xffff_ffff_c0a0_1000));
//! assert_eq!(table.lookup("veth_open"), Some(0xffff_ffff_c0a0_1000));
//! assert_eq!(table.lookup("no_such_symbol"), None);
//! ```

use std::collections::HashMap;
use std::fmt;

/// One symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// Its address.
    pub addr: u64,
    /// Its type character (`T`, `t`, `D`, `b`, ...).
    pub kind: char,
    /// Its name.
    pub name: String,
    /// The module that holds it, `None` for the kernel image.
    pub module: Option<String>,
}

impl Symbol {
    /// Whether the symbol is global (its type letter is upper case).
    pub fn is_global(&self) -> bool {
        self.kind.is_ascii_uppercase()
    }

    /// Whether the symbol is code (`T` or `t`).
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 'T' | 't')
    }

    /// Whether the symbol is data: initialized (`D`, `d`), read-only (`R`, `r`) or
    /// zeroed (`B`, `b`).
    pub fn is_data(&self) -> bool {
        matches!(self.kind, 'D' | 'd' | 'R' | 'r' | 'B' | 'b')
    }
}

/// A line that is not `ADDRESS TYPE NAME [module]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub what: &'static str,
    /// The line (cut to 120 characters).
    pub text: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "symbol table line {}: {}: {:?}",
            self.line, self.what, self.text
        )
    }
}

impl std::error::Error for ParseError {}

/// A parsed symbol table: every symbol in file order, and an index by name.
#[derive(Debug, Clone, Default)]
pub struct SymbolTable {
    symbols: Vec<Symbol>,
    /// Name -> index of the preferred symbol of that name (see [`SymbolTable::lookup`]).
    by_name: HashMap<String, usize>,
    /// (module, name) -> index of the first module symbol of that name.
    by_module: HashMap<(String, String), usize>,
}

/// How much [`SymbolTable::lookup`] prefers a symbol: kernel-image globals first, then
/// kernel-image locals, then module symbols.
fn rank(s: &Symbol) -> u8 {
    match (&s.module, s.is_global()) {
        (None, true) => 0,
        (None, false) => 1,
        (Some(_), true) => 2,
        (Some(_), false) => 3,
    }
}

impl SymbolTable {
    /// Parses `/proc/kallsyms` or `System.map` text. Blank lines are skipped; any
    /// other line that is not `ADDRESS TYPE NAME [module]` is an error.
    ///
    /// # Errors
    /// A [`ParseError`] naming the first bad line.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut table = Self::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let sym = parse_line(line).map_err(|what| ParseError {
                line: i.saturating_add(1),
                what,
                text: line.chars().take(120).collect(),
            })?;
            table.push(sym);
        }
        Ok(table)
    }

    fn push(&mut self, sym: Symbol) {
        let idx = self.symbols.len();
        match self.by_name.get(&sym.name) {
            Some(&old) if rank(&self.symbols[old]) <= rank(&sym) => {}
            _ => {
                self.by_name.insert(sym.name.clone(), idx);
            }
        }
        if let Some(module) = &sym.module {
            self.by_module
                .entry((module.clone(), sym.name.clone()))
                .or_insert(idx);
        }
        self.symbols.push(sym);
    }

    /// The address of `name`. When several symbols share the name (static functions
    /// often do, and every module has an `init_module`), the kernel image's global
    /// symbol wins, then the image's first local one, then the first module symbol.
    pub fn lookup(&self, name: &str) -> Option<u64> {
        self.get(name).map(|s| s.addr)
    }

    /// The symbol [`lookup`](Self::lookup) picks for `name`.
    pub fn get(&self, name: &str) -> Option<&Symbol> {
        self.by_name.get(name).map(|&i| &self.symbols[i])
    }

    /// The address of `name` in `module` (the first one, if it appears twice).
    pub fn lookup_in(&self, module: &str, name: &str) -> Option<u64> {
        self.by_module
            .get(&(module.to_owned(), name.to_owned()))
            .map(|&i| self.symbols[i].addr)
    }

    /// Every symbol, in file order.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The number of symbols.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether the table holds no symbol.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Whether every address is zero: what `/proc/kallsyms` shows a reader without
    /// `CAP_SYSLOG` (or under `kptr_restrict=2`). Such a table names symbols but
    /// locates none.
    pub fn addresses_hidden(&self) -> bool {
        !self.symbols.is_empty() && self.symbols.iter().all(|s| s.addr == 0)
    }
}

pub(crate) fn parse_line(line: &str) -> Result<Symbol, &'static str> {
    let mut fields = line.split_ascii_whitespace();
    let addr = fields.next().ok_or("no address")?;
    let addr = crate::text::parse_hex(addr).map_err(|_| "address is not hexadecimal")?;
    let kind = fields.next().ok_or("no symbol type")?;
    let mut chars = kind.chars();
    let kind = match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_graphic() => c,
        _ => return Err("symbol type is not one character"),
    };
    let name = fields.next().ok_or("no symbol name")?.to_owned();
    let module = match fields.next() {
        None => None,
        Some(m) => {
            let m = m
                .strip_prefix('[')
                .and_then(|m| m.strip_suffix(']'))
                .ok_or("module is not [name]")?;
            if m.is_empty() {
                return Err("empty module name");
            }
            Some(m.to_owned())
        }
    };
    if fields.next().is_some() {
        return Err("extra fields");
    }
    Ok(Symbol {
        addr,
        kind,
        name,
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kallsyms_with_modules() {
        let text = "0000000000000000 A fixed_percpu_data\n\
                    ffffffff81000000 T _text\n\
                    ffffffff81000000 T _stext\n\
                    ffffffff82a1c010 D phys_base\n\
                    ffffffffc0a01000 t veth_open\t[veth]\n\
                    ffffffffc0a02000 T init_module\t[veth]\n\
                    ffffffffc0b02000 T init_module\t[nf_tables]\n";
        let t = SymbolTable::parse(text).unwrap();
        assert_eq!(t.len(), 7);
        assert_eq!(t.lookup("_text"), Some(0xffff_ffff_8100_0000));
        assert_eq!(t.lookup("fixed_percpu_data"), Some(0));
        assert_eq!(
            t.lookup_in("veth", "init_module"),
            Some(0xffff_ffff_c0a0_2000)
        );
        assert_eq!(
            t.lookup_in("nf_tables", "init_module"),
            Some(0xffff_ffff_c0b0_2000)
        );
        assert_eq!(t.lookup_in("veth", "phys_base"), None);
        let s = t.get("veth_open").unwrap();
        assert_eq!((s.kind, s.module.as_deref()), ('t', Some("veth")));
        assert!(s.is_text() && !s.is_data() && !s.is_global());
        assert!(t.get("phys_base").unwrap().is_data());
        assert!(!t.addresses_hidden());
    }

    #[test]
    fn parses_system_map_and_crlf() {
        let text = "ffffffff81000000 T _text\r\n\r\nffffffff82000000 R __start_rodata\r\n";
        let t = SymbolTable::parse(text).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup("__start_rodata"), Some(0xffff_ffff_8200_0000));
        assert!(t.symbols()[1].module.is_none());
    }

    #[test]
    fn duplicate_names_prefer_image_globals() {
        let text = "ffffffffc0000000 T dup\t[m]\n\
                    ffffffff81000010 t dup\n\
                    ffffffff81000020 t dup\n\
                    ffffffff81000030 T dup\n\
                    ffffffff81000040 T dup\n\
                    ffffffff81000050 t local\n\
                    ffffffff81000060 t local\n\
                    ffffffffc0000010 T only_mod\t[m]\n";
        let t = SymbolTable::parse(text).unwrap();
        assert_eq!(t.lookup("dup"), Some(0xffff_ffff_8100_0030));
        assert_eq!(t.lookup("local"), Some(0xffff_ffff_8100_0050));
        assert_eq!(t.lookup("only_mod"), Some(0xffff_ffff_c000_0010));
        assert_eq!(t.lookup_in("m", "dup"), Some(0xffff_ffff_c000_0000));
    }

    #[test]
    fn hidden_addresses() {
        let t =
            SymbolTable::parse("0000000000000000 T _text\n0000000000000000 D phys_base\n").unwrap();
        assert!(t.addresses_hidden());
        assert!(!SymbolTable::parse("").unwrap().addresses_hidden());
        assert!(SymbolTable::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_lines() {
        let bad = [
            ("zzzz T x", "address is not hexadecimal"),
            ("ffffffff81000000", "no symbol type"),
            ("ffffffff81000000 TT x", "symbol type is not one character"),
            ("ffffffff81000000 T", "no symbol name"),
            ("ffffffff81000000 T x veth", "module is not [name]"),
            ("ffffffff81000000 T x []", "empty module name"),
            ("ffffffff81000000 T x [m] y", "extra fields"),
            ("1ffffffff81000000 T x", "address is not hexadecimal"),
        ];
        for (line, what) in bad {
            let text = format!("ffffffff81000000 T ok\n{line}\n");
            let err = SymbolTable::parse(&text).unwrap_err();
            assert_eq!((err.line, err.what), (2, what), "{line}");
            assert!(err.to_string().contains("line 2"));
        }
    }
}
