//! Why a kernel could not be described.

use std::fmt;
use std::path::PathBuf;

use super::ksymtab::KsymtabError;
use crate::btf::BtfError;

/// Why [`describe`](super::describe) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DescribeError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A vmlinux or symbol file is not what it should be (not ELF, no symbol table, a
    /// malformed line).
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A symbol the description needs is not in the symbols.
    MissingSymbol(&'static str),
    /// A page-table root register of the other architecture was given (`--cr3` for an
    /// arm64 kernel, `--ttbr1` for an x86_64 one).
    RootOfOtherArch {
        /// What was given (`CR3 0x... (--cr3)`).
        given: String,
        /// The kernel's architecture, as the memory shows it.
        arch: &'static str,
        /// The register that kernel's root is (`TTBR1_EL1 (--ttbr1)`).
        want: &'static str,
    },
    /// No page-table root: no CR3 was given and no VMCOREINFO (given or found in
    /// memory) names `init_top_pgt`/`swapper_pg_dir` with `phys_base`.
    NoPagingRoot,
    /// The user's files and the memory describe different kernels (or different boots
    /// of one kernel): `what` differs, `files` is what the symbols (or VMCOREINFO) say,
    /// `memory` what the memory holds.
    Mismatch {
        /// What was compared.
        what: String,
        /// The value from the symbols / the user's files.
        files: String,
        /// The value found in memory.
        memory: String,
    },
    /// Reading or translating kernel memory failed.
    Kernel {
        /// What was being done.
        what: String,
        /// The core's error.
        source: mapwalk_core::Error,
    },
    /// The memory does not hold all the RAM the kernel has (its e820 table): a RAM file
    /// read with the wrong layout (QEMU puts RAM past about 2.75 GiB at 4 GiB and up).
    /// [`ram_layout::qemu_layout`](super::ram_layout::qemu_layout) gives the layout of
    /// a QEMU RAM file that holds `ram`.
    RamLayout {
        /// The kernel's RAM ranges the memory does not hold, `(start, length)`.
        missing: Vec<(u64, u64)>,
        /// All the kernel's RAM ranges.
        ram: Vec<(u64, u64)>,
        /// Where the memory ends (one past its highest guest-physical address).
        held_end: u64,
    },
    /// The guest's memory is encrypted (AMD SME/SEV: the VMCOREINFO's `sme_mask` is
    /// not zero): read from outside, its pages are ciphertext, so nothing is read.
    Encrypted {
        /// What says so.
        what: String,
    },
    /// The symbols were to come from memory ([`SymbolSource::GuestMemory`]), but the
    /// memory does not lead to them: no VMCOREINFO, or one without the kernel's symbol
    /// table (a kernel older than 6.0). The message names the options that give the
    /// symbols instead.
    ///
    /// [`SymbolSource::GuestMemory`]: super::SymbolSource::GuestMemory
    NoGuestSymbols {
        /// Why.
        why: String,
    },
    /// The kernel's symbol table in memory could not be read, or is not one the kernel
    /// could have written.
    SymbolTable(KsymtabError),
    /// The page tables (from `--cr3`, an ELF core's or a vCPU's CR3, or VMCOREINFO)
    /// do not map the kernel where its image is.
    PageTables {
        /// The page-table root used.
        root: u64,
        /// Whether the root was given (`--cr3`, `--ttbr1`, a vCPU's register) rather
        /// than found.
        given: bool,
        /// What did not map.
        what: String,
    },
    /// Not one of the first maps reads as a `struct bpf_map` with the layout resolved
    /// from the BTF: the BTF is another kernel's, or `map_idr` is not the IDR of maps.
    LayoutMismatch {
        /// Where the layout came from (`--btf FILE`, a vmlinux, the kernel's BTF).
        layout_from: String,
        /// The first map's error.
        what: String,
    },
    /// The BTF could not be found, read or resolved into a layout.
    Btf {
        /// Where it came from.
        what: String,
        /// The error.
        source: BtfError,
    },
}

impl DescribeError {
    pub(super) fn kernel(what: impl Into<String>) -> impl FnOnce(mapwalk_core::Error) -> Self {
        let what = what.into();
        move |source| Self::Kernel { what, source }
    }

    pub(super) fn mismatch(
        what: impl Into<String>,
        files: impl Into<String>,
        memory: impl Into<String>,
    ) -> Self {
        Self::Mismatch {
            what: what.into(),
            files: files.into(),
            memory: memory.into(),
        }
    }
}

impl fmt::Display for DescribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::BadFile { path, what } => write!(f, "{}: {what}", path.display()),
            Self::MissingSymbol(name) => {
                write!(f, "the kernel symbols have no {name}, which is required")
            }
            Self::RootOfOtherArch { given, arch, want } => write!(
                f,
                "{given} is no page-table root of this kernel, which is {arch}: its root \
                 is {want}"
            ),
            Self::NoPagingRoot => write!(
                f,
                "no page-table root: give a CR3 (an ELF core with CPU state, or --cr3), \
                 or memory with a VMCOREINFO that names init_top_pgt"
            ),
            Self::Mismatch {
                what,
                files,
                memory,
            } => write!(
                f,
                "the kernel symbols do not match the memory ({what}): the symbols/files say \
                 {files}, the memory holds {memory}"
            ),
            Self::Kernel { what, source } => write!(f, "{what}: {source}"),
            Self::Btf { what, source } => write!(f, "{what}: {source}"),
            Self::RamLayout {
                missing,
                ram,
                held_end,
            } => {
                let list: Vec<String> = missing
                    .iter()
                    .map(|(s, l)| format!("{s:#x}-{:#x}", s.saturating_add(*l).saturating_sub(1)))
                    .collect();
                let ram_end = ram
                    .iter()
                    .map(|&(s, l)| s.saturating_add(l))
                    .max()
                    .unwrap_or(0);
                write!(
                    f,
                    "the memory does not hold all the kernel's RAM (its e820 table, or \
                     max_pfn): {} missing; the memory ends at {held_end:#x} ({} MiB), the \
                     kernel's RAM at {ram_end:#x} ({} MiB): a truncated file, or one whose \
                     layout is not the one assumed; give the RAM file's layout with \
                     --layout GPA:OFFSET:LEN, or --qmp SOCKET",
                    list.join(", "),
                    held_end >> 20,
                    ram_end >> 20
                )
            }
            Self::Encrypted { what } => write!(
                f,
                "the guest's memory is encrypted ({what}): read from outside it is \
                 ciphertext, so mapwalk reads nothing from it"
            ),
            Self::NoGuestSymbols { why } => write!(
                f,
                "the kernel's symbols cannot be read from memory: {why}; give them with \
                 --symbols FILE (a copy of the guest's /proc/kallsyms or its System.map) \
                 or --vmlinux FILE"
            ),
            Self::SymbolTable(e) => write!(f, "the kernel's symbol table in memory: {e}"),
            Self::PageTables { root, given, what } => write!(
                f,
                "the page tables at {root:#x}{} do not map the kernel: {what}",
                if *given { " (given)" } else { "" }
            ),
            Self::LayoutMismatch { layout_from, what } => write!(
                f,
                "no map in memory reads as a struct bpf_map laid out by {layout_from} \
                 (the first: {what}): that BTF is another kernel's, or the symbols' \
                 map_idr is not the IDR of maps"
            ),
        }
    }
}

impl std::error::Error for DescribeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Kernel { source, .. } => Some(source),
            Self::Btf { source, .. } => Some(source),
            Self::SymbolTable(source) => Some(source),
            _ => None,
        }
    }
}
