//! Kernel symbols from a vmlinux ELF or a `System.map` / `/proc/kallsyms` text, with the
//! KASLR slide that turns their addresses into the running kernel's.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use goblin::elf::section_header::SHN_UNDEF;
use goblin::elf::sym::{STB_GLOBAL, STB_WEAK, STT_FILE, STT_SECTION};
use goblin::elf::Elf;
use mapwalk_core::kernel::X86_START_KERNEL_MAP;
use mapwalk_core::Kva;

use crate::kallsyms::SymbolTable;

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
/// kernel-image addresses (those at or above `__START_KERNEL_map`), never to module
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
#[derive(Debug, Clone, Default)]
pub struct Symbols {
    by_name: HashMap<String, Sym>,
    slide: u64,
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
                    Sym {
                        addr: best.addr,
                        module: best.module.is_some(),
                        global: best.is_global(),
                    },
                );
            }
        }
        Self { by_name, slide: 0 }
    }

    /// The symbols of a parsed ELF's `.symtab` (link-time addresses), with no slide.
    /// Undefined, section and file symbols are left out; where a name repeats, the
    /// first global (or weak) definition wins, else the first local one.
    pub fn from_elf(elf: &Elf<'_>) -> Self {
        let mut by_name: HashMap<String, Sym> = HashMap::with_capacity(elf.syms.len());
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
                    v.insert(new);
                }
                Entry::Occupied(mut o) => {
                    if global && !o.get().global {
                        o.insert(new);
                    }
                }
            }
        }
        Self { by_name, slide: 0 }
    }

    /// The same symbols with `slide` (runtime minus file address of kernel-image
    /// symbols).
    #[must_use]
    pub fn with_slide(mut self, slide: u64) -> Self {
        self.slide = slide;
        self
    }

    /// The slide applied to kernel-image addresses: 0 for a runtime `/proc/kallsyms`,
    /// `KERNELOFFSET` for a vmlinux or `System.map` of a KASLR kernel.
    pub fn slide(&self) -> u64 {
        self.slide
    }

    /// The runtime address of `name`.
    pub fn lookup(&self, name: &str) -> Option<Kva> {
        self.by_name.get(name).map(|s| Kva(self.runtime(*s)))
    }

    /// The address of `name` as the file gave it.
    pub fn file_addr(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).map(|s| s.addr)
    }

    /// Every symbol with its runtime address, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Kva)> + '_ {
        self.by_name
            .iter()
            .map(|(n, s)| (n.as_str(), Kva(self.runtime(*s))))
    }

    /// The number of distinct names.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are no symbols.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Whether every address is zero (`/proc/kallsyms` read without `CAP_SYSLOG`).
    pub fn addresses_hidden(&self) -> bool {
        !self.by_name.is_empty() && self.by_name.values().all(|s| s.addr == 0)
    }

    fn runtime(&self, s: Sym) -> u64 {
        if !s.module && s.addr >= X86_START_KERNEL_MAP {
            s.addr.wrapping_add(self.slide)
        } else {
            s.addr
        }
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
