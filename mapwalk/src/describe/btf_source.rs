//! Where the kernel's raw BTF comes from: guest memory (between `__start_BTF` and
//! `__stop_BTF`) or a file (raw BTF, or an ELF's `.BTF` section).

use std::path::Path;

use goblin::elf::Elf;
use mapwalk_core::kernel::KernelRead;

use super::{bad_file, symbols, DescribeError, Symbols, MAX_BTF_BYTES};
use crate::btf;

/// Reads the kernel's BTF from memory, between `__start_BTF` and `__stop_BTF`.
pub(super) fn btf_from_memory<K: KernelRead>(
    view: &K,
    symbols: &Symbols,
) -> Result<Vec<u8>, DescribeError> {
    let start = symbols
        .lookup("__start_BTF")
        .ok_or(DescribeError::MissingSymbol("__start_BTF"))?;
    let stop = symbols
        .lookup("__stop_BTF")
        .ok_or(DescribeError::MissingSymbol("__stop_BTF"))?;
    let len = stop
        .0
        .checked_sub(start.0)
        .filter(|&l| l > 0 && l <= MAX_BTF_BYTES)
        .ok_or_else(|| DescribeError::Btf {
            what: format!("BTF in memory from __start_BTF={start} to __stop_BTF={stop}"),
            source: btf::BtfError::Parse("implausible size".to_owned()),
        })?;
    let mut raw = vec![0u8; usize::try_from(len).unwrap_or(0)];
    view.read_kernel(start, &mut raw)
        .map_err(DescribeError::kernel(format!("read the BTF at {start}")))?;
    Ok(raw)
}

/// Raw BTF from a file: the file itself, or the `.BTF` section of an ELF.
pub(super) fn btf_from_file(path: &Path) -> Result<Vec<u8>, DescribeError> {
    let bytes = crate::input::read_btf_file(path)?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(bytes);
    }
    let elf = Elf::parse(&bytes).map_err(|e| bad_file(path, format!("bad ELF: {e}")))?;
    symbols::elf_section(&elf, &bytes, ".BTF")
        .map(<[u8]>::to_vec)
        .ok_or_else(|| bad_file(path, "ELF without a .BTF section"))
}
