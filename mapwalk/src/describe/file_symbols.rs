//! The symbols of a file the user gives: a vmlinux ELF (its symbol table, `.BTF` and
//! `linux_banner`) or a symbol text (`/proc/kallsyms`, `System.map`).

use goblin::elf::Elf;

use super::{
    bad_file, read_file, symbols, DescribeError, Loaded, SymbolSource, Symbols, BANNER_MAX,
};

/// The symbols of a `--vmlinux` or `--symbols` file, read whole under its cap.
pub(super) fn load_file_symbols(source: &SymbolSource) -> Result<Loaded, DescribeError> {
    match source {
        SymbolSource::Vmlinux(path) => {
            let bytes = read_file(path, crate::input::MAX_VMLINUX_FILE)?;
            let elf = Elf::parse(&bytes)
                .map_err(|e| bad_file(path, format!("not an ELF vmlinux: {e}")))?;
            let symbols = Symbols::from_elf(&elf);
            if symbols.is_empty() {
                return Err(bad_file(path, "no symbol table (a stripped vmlinux?)"));
            }
            let elf_btf = symbols::elf_section(&elf, &bytes, ".BTF").map(<[u8]>::to_vec);
            let elf_banner = symbols
                .file_addr("linux_banner")
                .and_then(|addr| elf_string_at(&elf, &bytes, addr));
            Ok(Loaded {
                symbols,
                link_time: true,
                elf_btf,
                elf_banner,
                path: path.clone(),
                option: Some("--vmlinux"),
            })
        }
        SymbolSource::SymbolFile(path) => {
            let bytes = read_file(path, crate::input::MAX_SYMBOLS_FILE)?;
            let symbols = Symbols::from_text(bytes).map_err(|e| {
                if e.what == "no symbols" {
                    bad_file(path, "no symbols")
                } else {
                    bad_file(path, e.to_string())
                }
            })?;
            if symbols.addresses_hidden() {
                return Err(bad_file(
                    path,
                    "every address is zero (read /proc/kallsyms as root, with kptr_restrict < 2)",
                ));
            }
            Ok(Loaded {
                symbols,
                link_time: false,
                elf_btf: None,
                elf_banner: None,
                path: path.clone(),
                option: Some("--symbols"),
            })
        }
        SymbolSource::GuestMemory => Err(DescribeError::NoGuestSymbols {
            why: "not a symbol file".to_owned(),
        }),
    }
}

/// The NUL-terminated string at virtual address `addr` of an ELF's sections.
fn elf_string_at(elf: &Elf<'_>, bytes: &[u8], addr: u64) -> Option<String> {
    let sh = elf.section_headers.iter().find(|sh| {
        sh.sh_type == goblin::elf::section_header::SHT_PROGBITS
            && sh.sh_addr <= addr
            && addr < sh.sh_addr.saturating_add(sh.sh_size)
    })?;
    let off = sh.sh_offset.checked_add(addr.checked_sub(sh.sh_addr)?)?;
    let start = usize::try_from(off).ok()?;
    let rest = bytes.get(start..)?;
    let rest = rest.get(..rest.len().min(BANNER_MAX)).unwrap_or(rest);
    Some(c_string(rest))
}

/// The bytes up to the first NUL, as text.
pub(super) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}
