//! Target `kallsyms`: [`SymbolTable::parse`] on the input as text (invalid UTF-8
//! replaced), then lookups.
//!
//! Checks: a table that parses holds one symbol per non-blank line; `lookup` of each
//! name gives the symbol the documented preference picks (kernel-image global, then
//! image local, then module symbol, the first of each); `lookup_in` gives the first of
//! that module; an error names a line that exists.

use std::collections::HashMap;

use mapwalk::kallsyms::SymbolTable;

use crate::sink;

/// The target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let table = match SymbolTable::parse(&text) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.line >= 1 && e.line <= text.lines().count(), "{e}");
            sink(&e);
            return;
        }
    };
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(table.len(), lines);
    assert_eq!(table.is_empty(), lines == 0);
    let syms = table.symbols();
    assert_eq!(
        table.addresses_hidden(),
        !syms.is_empty() && syms.iter().all(|s| s.addr == 0)
    );
    // The preferred symbol of each name, and the first of each (module, name).
    let rank = |s: &mapwalk::kallsyms::Symbol| (s.module.is_some(), !s.is_global());
    let mut best: HashMap<&str, usize> = HashMap::new();
    let mut in_module: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, s) in syms.iter().enumerate() {
        std::hint::black_box((s.is_text(), s.is_data()));
        let b = best.entry(&s.name).or_insert(i);
        if rank(s) < rank(&syms[*b]) {
            *b = i;
        }
        if let Some(m) = &s.module {
            in_module.entry((m, &s.name)).or_insert(i);
        }
    }
    for (name, &i) in &best {
        assert_eq!(table.get(name), Some(&syms[i]), "lookup of {name:?}");
        assert_eq!(table.lookup(name), Some(syms[i].addr));
    }
    for ((m, name), &i) in &in_module {
        assert_eq!(table.lookup_in(m, name), Some(syms[i].addr), "{m}:{name}");
    }
    assert_eq!(table.lookup("\0not a symbol"), None);
}
