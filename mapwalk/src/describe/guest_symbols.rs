//! Symbols from the guest's memory alone ([`SymbolSource::GuestMemory`]): the
//! VMCOREINFO (an ELF core's note, else found in memory) places the kernel image
//! (`NUMBER(phys_base)`) and names the kernel's own symbol table
//! (`SYMBOL(kallsyms_*)`, Linux 6.0 and later), which is decoded once for every name the
//! description needs.

use std::path::PathBuf;

use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelView, X86_START_KERNEL_MAP};
use mapwalk_core::{Paging, PhysRead};

use super::ksymtab::{Ksymtab, KsymtabLocation};
use super::{
    bad_file, find_vmcoreinfo_with, image_only, image_symbols, DescribeError, FindOptions,
    KernelSpec, Loaded, MemoryHints, Symbols, Vmcoreinfo, CR4_LA57, DESCRIBE_SYMBOLS,
};

/// What the messages call symbols read from memory.
pub const MEMORY_SYMBOLS: &str = "the kernel's symbol table in memory";

/// The VMCOREINFO: the hint's, else the one found in memory (calling `searched` after
/// the search).
fn vmcoreinfo<M: PhysRead>(
    mem: &M,
    hints: &MemoryHints,
    searched: &mut impl FnMut(&M),
) -> Result<Vmcoreinfo, DescribeError> {
    let none = |why: &str| DescribeError::NoGuestSymbols {
        why: why.to_owned(),
    };
    match &hints.vmcoreinfo {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        Some(_) => Err(none("the memory's container says it holds no VMCOREINFO")),
        None => {
            let found = find_vmcoreinfo_with(mem, &FindOptions::default());
            searched(mem);
            match found {
                Ok(Some(f)) => Ok(f.vmcoreinfo),
                Ok(None) => Err(none(
                    "no VMCOREINFO was found in memory: not a Linux kernel's memory, or one \
                     built without crash support (CONFIG_CRASH_CORE)",
                )),
                Err(source) => Err(DescribeError::Kernel {
                    what: "search memory for VMCOREINFO".to_owned(),
                    source,
                }),
            }
        }
    }
}

/// Reads the kernel's symbol table out of `mem` and finds the names of
/// [`DESCRIBE_SYMBOLS`] and the VMCOREINFO's kernel-image `SYMBOL(...)` names in one
/// pass. Returns the symbols (runtime addresses) and the VMCOREINFO.
pub(super) fn load<M: PhysRead>(
    mem: &M,
    spec: &KernelSpec,
    hints: &MemoryHints,
    searched: &mut impl FnMut(&M),
) -> Result<(Loaded, Vmcoreinfo), DescribeError> {
    let info = vmcoreinfo(mem, hints, searched)?;
    crate::timing::mark("VMCOREINFO");
    super::checks::check_not_encrypted(&info)?;
    let release = info.osrelease().unwrap_or("of unknown release");
    let loc =
        KsymtabLocation::from_vmcoreinfo(&info).map_err(|e| DescribeError::NoGuestSymbols {
            why: format!("kernel {release}: {e}"),
        })?;
    // arm64 (describe/arm64.rs): the image by `kimage_voffset`.
    let arm64_view =
        super::arm64::image_only(&info).map(|(paging, addrs)| KernelView::new(mem, paging, addrs));
    let view = match arm64_view {
        Some(view) => view,
        None => {
            let phys_base =
                info.number("phys_base")
                    .ok_or_else(|| DescribeError::NoGuestSymbols {
                        why: format!(
                            "kernel {release}: the VMCOREINFO has no NUMBER(phys_base) and no \
                         NUMBER(kimage_voffset) (only x86_64 and arm64 kernels are read \
                         without symbols)"
                        ),
                    })?;
            // The tables lie in the image's .rodata, read by arithmetic; the paging
            // state is there for completeness.
            let root = info
                .symbol("init_top_pgt")
                .map(|r| r.wrapping_sub(X86_START_KERNEL_MAP).wrapping_add(phys_base));
            let cr3 = spec.cr3.or(hints.cr3).or(root).unwrap_or(0);
            let l5 = hints
                .cr4
                .map(|cr4| cr4 & CR4_LA57 != 0)
                .unwrap_or_else(|| info.number("pgtable_l5_enabled").is_some_and(|v| v != 0));
            KernelView::new(
                mem,
                Paging::X86_64(X86Paging::new(cr3, l5)),
                image_only(phys_base),
            )
        }
    };
    let table = Ksymtab::read(&view, &loc).map_err(DescribeError::SymbolTable)?;
    crate::timing::mark("symbol table read");
    let mut symbols = Symbols::from_ksymtab(table);
    let image = image_symbols(&info);
    let wanted: Vec<&str> = DESCRIBE_SYMBOLS
        .iter()
        .copied()
        .chain(image.iter().map(|(n, _)| n.as_str()))
        .collect();
    let path = PathBuf::from(MEMORY_SYMBOLS);
    symbols
        .prefetch(&wanted)
        .map_err(|e| bad_file(&path, e.to_string()))?;
    crate::timing::mark("symbols found");
    // A kernel built without CONFIG_KALLSYMS_ALL lists no variables: nothing to find
    // the maps by.
    if symbols.lookup("map_idr").is_none() {
        return Err(DescribeError::NoGuestSymbols {
            why: format!(
                "kernel {release}: its symbol table has no map_idr, so no data symbols (a \
                 kernel built without CONFIG_KALLSYMS_ALL); its System.map or vmlinux has \
                 them"
            ),
        });
    }
    Ok((
        Loaded {
            symbols,
            link_time: false,
            elf_btf: None,
            elf_banner: None,
            path,
            option: None,
        },
        info,
    ))
}
