//! Kernel description: from memory and the files a user has (a vmlinux or a symbol
//! file, maybe BTF, maybe CPU state) to a ready [`KernelView`], a [`KernelLayout`] and
//! the kernel's symbols at their runtime addresses.
//!
//! [`describe`] takes what each source offers (x86_64; arm64 kernels are placed by
//! their VMCOREINFO instead, see `describe/arm64.rs`):
//!
//! - **Symbols**: a vmlinux ELF's `.symtab` (link-time addresses), a `System.map` /
//!   `/proc/kallsyms` text, or nothing but the memory: the kernel's own symbol table,
//!   found through the VMCOREINFO (Linux 6.0 and later; [`ksymtab`]) ([`SymbolSource`]).
//! - **Placement by the symbols**: for a symbol text (runtime addresses when it is a
//!   `/proc/kallsyms` copy) with no CR3 and no VMCOREINFO given, `phys_base` is found
//!   without any search: a kernel-image address maps to `va - __START_KERNEL_map +
//!   phys_base`, and the variable `phys_base` holds phys_base itself. Each candidate
//!   `c` ([`PHYS_BASE_ALIGN`] steps that put the variable in a RAM range, 0 first, at
//!   most [`MAX_PHYS_BASE_CANDIDATES`], read in batches) is right when the variable
//!   read there holds `c` and `linux_banner` there reads `Linux version `. The root
//!   is then `init_top_pgt` and the slide 0. Symbols of another boot or kernel, and
//!   link-time symbols of a slid kernel, fail this self-check, never pass it: the
//!   description then goes on by VMCOREINFO, exactly as without this step.
//! - **VMCOREINFO**: from an ELF core's note ([`MemoryHints::vmcoreinfo`]) or, when the
//!   symbols did not place the kernel, found in memory by
//!   [`find_vmcoreinfo_with`] (page probe first; the full scan only when
//!   the description cannot do without it: no CR3, or link-time symbols;
//!   [`describe_with`] lets the caller act right after the search, such as releasing
//!   the pages it made resident). It gives `KERNELOFFSET` (the virtual KASLR slide),
//!   `NUMBER(phys_base)`, `NUMBER(pgtable_l5_enabled)`, `SYMBOL(init_top_pgt)` (the
//!   page-table root, used as CR3 when none is given) and `OSRELEASE`.
//!
//! The order is: read the symbol file and find the names of [`DESCRIBE_SYMBOLS`] in one
//! pass; place by the symbols when that applies; else take or search VMCOREINFO (and
//! find its `SYMBOL(...)` names too); choose the slide; page, layout and banner checks;
//! BTF.
//! - **The slide**: symbols are checked against every kernel-image `SYMBOL(...)` of the
//!   VMCOREINFO (runtime addresses). A vmlinux gets `KERNELOFFSET`; a symbol file gets
//!   0 (a runtime kallsyms) or `KERNELOFFSET` (a link-time `System.map`), whichever
//!   agrees; neither agreeing is a [`DescribeError::Mismatch`].
//! - **Paging**: CR3 from [`KernelSpec::cr3`], else [`MemoryHints::cr3`], else the
//!   VMCOREINFO root. 5-level from CR4.LA57, else `NUMBER(pgtable_l5_enabled)`, else the
//!   `__pgtable_l5_enabled` variable (trying both when `phys_base` must be walked to).
//!   Never from `page_offset_base`.
//! - **Layout**: `phys_base` placed by the symbols, from VMCOREINFO (checked against
//!   the variable) or by [`KernelView::resolve_phys_base`]; `page_offset_base` read from its variable; the
//!   direct map covers memory up to the end of [`PhysRead::ranges`].
//! - **Checks**: `linux_banner` read through the view must start with `Linux version `,
//!   name the VMCOREINFO `OSRELEASE` when there is one, and equal the vmlinux's own
//!   banner when the symbols come from a vmlinux; placement by the symbols checks
//!   `phys_base` against itself. Symbols of another kernel, or of
//!   another boot of a KASLR kernel, are an error, never garbage.
//! - **BTF**: a file (raw, or an ELF with `.BTF`), the vmlinux's `.BTF`, or the bytes
//!   between `__start_BTF` and `__stop_BTF` in memory; the layout is resolved from it by
//!   [`crate::btf::resolve_layout`] unless [`KernelSpec::layout_override`] gives one.
//!   The BTF is kept raw ([`crate::btf::KernelBtf`]): its types are indexed for
//!   rendering only if a map's split BTF needs them as a base.
//!
//! ```no_run
//! use mapwalk::describe::{describe, KernelSpec, MemoryHints, SymbolSource};
//! use mapwalk_file::RamFile;
//!
//! let ram = RamFile::open("/dev/shm/guest-ram")?;
//! let spec = KernelSpec::new(SymbolSource::SymbolFile("guest-kallsyms".into()));
//! let kernel = describe(ram, &spec, &MemoryHints::default())?;
//! for w in &kernel.warnings {
//!     eprintln!("warning: {w}");
//! }
//! for map in kernel.bpf().collect_maps()?.maps {
//!     println!("{} {:?}", map.id, map.name.as_str());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod arm64;
mod file_symbols;
use file_symbols::{c_string, load_file_symbols};
mod btf_source;
mod checks;
mod error;
mod guest_symbols;
pub mod ksymtab;
pub mod ram_layout;
mod symbols;
#[cfg(test)]
mod tests;
pub mod vmcoreinfo;

use std::fmt;
use std::path::{Path, PathBuf};

use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::bpf::PossibleCpus;
use mapwalk_core::kernel::{
    x86_direct_map_base, x86_is_direct_map_base, KernelAddrs, KernelRead, KernelView,
    X86_START_KERNEL_MAP,
};
use mapwalk_core::{Bpf, KernelLayout, Kva, Pa, Paging, PhysRange, PhysRead, ProgIdr, ReadOp};
use mapwalk_file::ElfCore;

use crate::btf;

use btf_source::{btf_from_file, btf_from_memory};
use checks::check_banner;
pub use error::DescribeError;
pub use symbols::Symbols;
pub use vmcoreinfo::{
    find_vmcoreinfo, find_vmcoreinfo_with, FindMethod, FindOptions, FoundVmcoreinfo, Vmcoreinfo,
};

/// Where the kernel's symbols come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolSource {
    /// A vmlinux ELF with a symbol table (link-time addresses).
    Vmlinux(PathBuf),
    /// A `System.map` (link-time addresses) or `/proc/kallsyms` (runtime addresses)
    /// text.
    SymbolFile(PathBuf),
    /// The kernel's own symbol table in memory (x86_64, Linux 6.0 and later): the
    /// VMCOREINFO (an ELF core's note, else searched for in memory) gives the image's
    /// place (`NUMBER(phys_base)`, `KERNELOFFSET`) and the table's
    /// (`SYMBOL(kallsyms_names)`, ...), decoded by [`ksymtab::Ksymtab`]. Without them
    /// the description fails with [`DescribeError::NoGuestSymbols`].
    GuestMemory,
}

/// Where the kernel's BTF comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BtfSource {
    /// A file: raw BTF (`/sys/kernel/btf/vmlinux`) or an ELF with a `.BTF` section.
    File(PathBuf),
    /// The kernel's own, in memory between `__start_BTF` and `__stop_BTF`.
    GuestMemory,
}

/// What the user says about the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSpec {
    /// The symbols.
    pub symbols: SymbolSource,
    /// The BTF; `None`: the `.BTF` of a vmlinux, else guest memory.
    pub btf: Option<BtfSource>,
    /// The page-table root (CR3), overriding [`MemoryHints::cr3`].
    pub cr3: Option<u64>,
    /// An arm64 vCPU's TTBR1_EL1 (the kernel half's page-table root, from a vCPU or a
    /// debugger): the root to walk in place of `swapper_pg_dir`, checked as that is
    /// (the tables must map the kernel where its symbols are).
    pub ttbr1: Option<u64>,
    /// A layout to use instead of resolving one from the BTF (tests, and kernels whose
    /// BTF lacks something). The BTF is still loaded, for rendering.
    pub layout_override: Option<KernelLayout>,
}

impl KernelSpec {
    /// Symbols from `symbols`, everything else found.
    pub fn new(symbols: SymbolSource) -> Self {
        Self {
            symbols,
            btf: None,
            cr3: None,
            ttbr1: None,
            layout_override: None,
        }
    }
}

/// What the memory's container says about the kernel (an ELF core's notes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryHints {
    /// VMCOREINFO from an ELF core note. `None`: search memory for it; an empty
    /// [`Vmcoreinfo`]: there is none, do not search.
    pub vmcoreinfo: Option<Vmcoreinfo>,
    /// CR3 from the CPU state.
    pub cr3: Option<u64>,
    /// CR4 from the CPU state (bit 12, LA57: 5-level paging).
    pub cr4: Option<u64>,
}

impl MemoryHints {
    /// The hints an ELF core holds: its VMCOREINFO note, parsed, and the control
    /// registers of the first vCPU that has them.
    pub fn from_elf_core(core: &ElfCore) -> Self {
        let vcpu = core.vcpus().iter().find(|v| v.cr3().is_some());
        Self {
            vmcoreinfo: core.vmcoreinfo_note().map(Vmcoreinfo::parse),
            cr3: vcpu.and_then(|v| v.cr3()),
            cr4: vcpu.and_then(|v| v.cr4()),
        }
    }
}

/// CR4.LA57: 5-level paging.
pub const CR4_LA57: u64 = 1 << 12;

/// The most BTF read from memory (Debian's is about 5 MiB).
pub const MAX_BTF_BYTES: u64 = 256 << 20;

/// The symbols a description looks up (with the VMCOREINFO's `SYMBOL(...)` names):
/// found in one pass over a symbol text.
pub const DESCRIBE_SYMBOLS: &[&str] = &[
    "map_idr",
    "phys_base",
    "page_offset_base",
    "linux_banner",
    "__start_BTF",
    "__stop_BTF",
    "__per_cpu_offset",
    "nr_cpu_ids",
    "__pgtable_l5_enabled",
    "init_top_pgt",
    "e820_table",
    "max_pfn",
    "max_low_pfn",
    "prog_idr",
    // arm64: the image's bounds and the page-table root.
    "_text",
    "_end",
    "swapper_pg_dir",
    "kimage_voffset",
    "memstart_addr",
    "vmcoreinfo_data",
];

/// How many bytes of `linux_banner` are read.
const BANNER_MAX: usize = 512;
const BANNER_PREFIX: &str = "Linux version ";

/// The alignment of x86_64 `phys_base`: the image is loaded at a multiple of
/// `CONFIG_PHYSICAL_ALIGN` (at least 2 MiB on x86_64, 2 MiB in Debian's kernels), as is
/// its link-time load address, so their difference is a multiple of 2 MiB.
pub const PHYS_BASE_ALIGN: u64 = 2 << 20;

/// The most `phys_base` candidates [placement by the symbols](self) tries (every
/// [`PHYS_BASE_ALIGN`] step of 128 GiB of RAM); past it the description falls back to
/// VMCOREINFO.
pub const MAX_PHYS_BASE_CANDIDATES: usize = 1 << 16;

/// Candidates read per [`PhysRead::read_phys_many`] batch.
const PHYS_BASE_BATCH: usize = 32;

/// A described kernel: a view of its memory, its layout, BTF and symbols.
pub struct Kernel<M> {
    /// The kernel view.
    pub view: KernelView<M>,
    /// The struct layout.
    pub layout: KernelLayout,
    /// The kernel's BTF (vmlinux types), parsed for rendering only when a split BTF
    /// needs it as its base.
    pub btf: btf::KernelBtf,
    /// The symbols, at runtime addresses.
    pub symbols: Symbols,
    /// `map_idr`.
    pub map_idr: Kva,
    /// `prog_idr`, when the symbols have it (programs are listed through it).
    pub prog_idr: Option<Kva>,
    /// `__per_cpu_offset`, when the symbols have it.
    pub per_cpu_offset: Option<Kva>,
    /// `nr_cpu_ids`, when the symbols have it.
    pub nr_cpu_ids: Option<Kva>,
    /// The kernel release, from `linux_banner` (or VMCOREINFO).
    pub release: Option<String>,
    /// What was left out or assumed.
    pub warnings: Vec<String>,
    /// The VMCOREINFO used, if any.
    pub vmcoreinfo: Option<Vmcoreinfo>,
    /// `phys_base`.
    pub phys_base: u64,
    /// `page_offset_base`.
    pub page_offset_base: u64,
    /// The virtual KASLR slide applied to the symbols' file addresses.
    pub slide: u64,
}

impl<M: fmt::Debug> fmt::Debug for Kernel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("view", &self.view)
            .field("layout", &self.layout)
            .field("btf", &self.btf)
            .field("symbols", &self.symbols)
            .field("map_idr", &self.map_idr)
            .field("prog_idr", &self.prog_idr)
            .field("per_cpu_offset", &self.per_cpu_offset)
            .field("nr_cpu_ids", &self.nr_cpu_ids)
            .field("release", &self.release)
            .field("warnings", &self.warnings)
            .field("phys_base", &self.phys_base)
            .field("page_offset_base", &self.page_offset_base)
            .field("slide", &self.slide)
            .finish_non_exhaustive()
    }
}

impl<M: PhysRead> Kernel<M> {
    /// The BPF map walkers over this kernel.
    pub fn bpf(&self) -> Bpf<'_, KernelView<M>> {
        Bpf::new(&self.view, &self.layout, self.map_idr)
    }

    /// The BPF program walker over this kernel, when the symbols have `prog_idr`.
    pub fn progs(&self) -> Option<ProgIdr<'_, KernelView<M>>> {
        self.prog_idr
            .map(|at| ProgIdr::new(&self.view, &self.layout, at))
    }

    /// The possible CPUs as the kernel counts them (`nr_cpu_ids`), if the symbols have
    /// it.
    pub fn possible_cpus(&self) -> Option<PossibleCpus> {
        self.nr_cpu_ids.map(PossibleCpus::NrCpuIds)
    }
}

/// Symbols loaded from the user's file, before the slide is known.
struct Loaded {
    symbols: Symbols,
    /// The addresses are link-time for sure (a vmlinux).
    link_time: bool,
    /// The vmlinux's `.BTF`.
    elf_btf: Option<Vec<u8>>,
    /// The vmlinux's own `linux_banner` text.
    elf_banner: Option<String>,
    path: PathBuf,
    /// The option that named the file (`--symbols`, `--vmlinux`); `None` for the
    /// kernel's table in memory.
    option: Option<&'static str>,
}

impl Loaded {
    /// The file as the user named it: `--symbols PATH`, or the path alone.
    fn named(&self) -> String {
        match self.option {
            Some(option) => format!("{option} {}", self.path.display()),
            None => self.path.display().to_string(),
        }
    }
}

/// A user's file, read whole up to `cap` bytes (see [`crate::input`]).
fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, DescribeError> {
    Ok(crate::input::read_capped(path, cap)?)
}

fn bad_file(path: &Path, what: impl Into<String>) -> DescribeError {
    DescribeError::BadFile {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// The symbols, and the VMCOREINFO when it was needed to find them.
fn load_symbols<M: PhysRead>(
    mem: &M,
    spec: &KernelSpec,
    hints: &MemoryHints,
    searched: &mut impl FnMut(&M),
) -> Result<(Loaded, Option<Vmcoreinfo>), DescribeError> {
    let loaded = match &spec.symbols {
        SymbolSource::GuestMemory => {
            let (loaded, info) = guest_symbols::load(mem, spec, hints, searched)?;
            return Ok((loaded, Some(info)));
        }
        file => load_file_symbols(file)?,
    };
    Ok((loaded, None))
}

/// The kernel-image `SYMBOL(name)=addr` entries of a VMCOREINFO.
fn image_symbols(info: &Vmcoreinfo) -> Vec<(String, u64)> {
    let floor = if arm64::is_arm64(info) {
        arm64::image_floor(info)
    } else {
        X86_START_KERNEL_MAP
    };
    info.entries()
        .filter_map(|(k, _)| k.strip_prefix("SYMBOL(")?.strip_suffix(')'))
        .filter_map(|name| Some((name.to_owned(), info.symbol(name)?)))
        .filter(|&(_, addr)| addr >= floor)
        .collect()
}

/// The KASLR slide that makes the symbols agree with the VMCOREINFO.
fn choose_slide(
    loaded: &Loaded,
    info: Option<&Vmcoreinfo>,
    warnings: &mut Vec<String>,
) -> Result<u64, DescribeError> {
    let Some(info) = info else {
        if loaded.link_time {
            warnings.push(
                "no VMCOREINFO: the KASLR slide is unknown, assuming none (the banner \
                 check catches a wrong guess)"
                    .to_owned(),
            );
        }
        return Ok(0);
    };
    let offset = info.kernel_offset();
    let candidates: Vec<u64> = match (loaded.link_time, offset) {
        (true, Some(o)) => vec![o],
        (true, None) => vec![0],
        (false, Some(o)) if o != 0 => vec![0, o],
        (false, _) => vec![0],
    };
    let floor = if arm64::is_arm64(info) {
        arm64::image_floor(info)
    } else {
        X86_START_KERNEL_MAP
    };
    let common: Vec<(String, u64, u64)> = image_symbols(info)
        .into_iter()
        .filter_map(|(name, runtime)| {
            let file = loaded.symbols.file_addr(&name)?;
            (file >= floor).then_some((name, runtime, file))
        })
        .collect();
    if common.is_empty() {
        warnings.push(format!(
            "no VMCOREINFO SYMBOL(...) entry is in {}: the slide ({:#x}) is not checked",
            loaded.path.display(),
            candidates.first().copied().unwrap_or(0)
        ));
        return Ok(candidates.first().copied().unwrap_or(0));
    }
    let disagreement = |slide: u64| {
        common
            .iter()
            .find(|(_, runtime, file)| file.wrapping_add(slide) != *runtime)
    };
    for &slide in &candidates {
        if disagreement(slide).is_none() {
            return Ok(slide);
        }
    }
    let slide = candidates.last().copied().unwrap_or(0);
    let (name, runtime, file) = disagreement(slide).cloned().unwrap_or_default();
    let tried: Vec<String> = candidates.iter().map(|s| format!("{s:#x}")).collect();
    Err(DescribeError::mismatch(
        format!("address of {name}"),
        format!(
            "{file:#x} in {} (slides tried: {})",
            loaded.named(),
            tried.join(", ")
        ),
        format!("{runtime:#x} (VMCOREINFO SYMBOL({name}))"),
    ))
}

/// The kernel-image mapping alone, at `phys_base`: enough to read image variables.
fn image_only(phys_base: u64) -> KernelAddrs {
    KernelAddrs {
        direct_map: None,
        ..KernelAddrs::x86_64(0, 0, phys_base)
    }
}

/// Reads `__pgtable_l5_enabled` through the image mapping, if the symbols have it.
fn read_l5<M: PhysRead>(view: &KernelView<&M>, symbols: &Symbols) -> Option<bool> {
    let at = symbols.lookup("__pgtable_l5_enabled")?;
    view.read_kernel_u32(at).ok().map(|v| v != 0)
}

/// Each `phys_base` that would put the variable `phys_base` (at kernel-image offset
/// `off`, `va - __START_KERNEL_map`) wholly inside one of `ranges`, a multiple of
/// [`PHYS_BASE_ALIGN`] (negative ones as their two's complement): 0 first (no physical
/// KASLR), then by ascending address of the variable. Nothing here comes from memory.
fn phys_base_candidates(ranges: &[PhysRange], off: u64) -> impl Iterator<Item = u64> + '_ {
    const VAR: u64 = 8;
    let inside = |pa: u64| {
        ranges
            .iter()
            .any(|r| r.start.0 <= pa && pa.checked_add(VAR).is_some_and(|e| e <= r.end()))
    };
    let zero = inside(off).then_some(0);
    let rest = ranges.iter().flat_map(move |r| {
        let end = r.end();
        // The lowest address at or above the range's start that is `off` modulo the
        // alignment.
        let first = r
            .start
            .0
            .checked_add(off.wrapping_sub(r.start.0) & (PHYS_BASE_ALIGN - 1));
        std::iter::successors(first, |pa| pa.checked_add(PHYS_BASE_ALIGN))
            .take_while(move |pa| pa.checked_add(VAR).is_some_and(|e| e <= end))
            .map(move |pa| pa.wrapping_sub(off))
            .filter(|&c| c != 0)
    });
    zero.into_iter().chain(rest)
}

/// Places the kernel image by its symbols alone, for symbols of the running kernel
/// (already slid): the candidate `c` whose image mapping (`pa = va -
/// __START_KERNEL_map + c`) finds `c` itself in the variable `phys_base`, and
/// `linux_banner` where the symbols say. `None` when no candidate passes, when the
/// symbols lack `phys_base`, `linux_banner` or `init_top_pgt`, or past
/// [`MAX_PHYS_BASE_CANDIDATES`].
///
/// Symbols of another boot or kernel fail: at the `c` that maps their `phys_base`
/// onto the real variable, it holds the real `phys_base`, not `c`; so do link-time
/// symbols of a kernel with a virtual KASLR slide.
fn phys_base_by_symbols<M: PhysRead>(mem: &M, symbols: &Symbols, loaded: &Loaded) -> Option<u64> {
    let at = symbols.lookup("phys_base")?;
    // The banner confirms; the page-table root follows from the placement.
    symbols.lookup("linux_banner")?;
    symbols.lookup("init_top_pgt")?;
    let off = at.0.checked_sub(X86_START_KERNEL_MAP)?;
    let mut candidates = phys_base_candidates(mem.ranges(), off);
    let mut bufs = [[0u8; 8]; PHYS_BASE_BATCH];
    let mut batch = [0u64; PHYS_BASE_BATCH];
    let mut tried = 0usize;
    loop {
        let mut n = 0;
        for (slot, c) in batch.iter_mut().zip(candidates.by_ref()) {
            *slot = c;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        tried = tried.saturating_add(n);
        if tried > MAX_PHYS_BASE_CANDIDATES {
            return None;
        }
        let cs = batch.get(..n).unwrap_or_default();
        let mut ops = bufs.each_mut().map(|buf| ReadOp {
            pa: Pa(0),
            buf: buf.as_mut_slice(),
        });
        for (op, c) in ops.iter_mut().zip(cs) {
            op.pa = Pa(off.wrapping_add(*c));
        }
        let ops = ops.get_mut(..n).unwrap_or_default();
        if mem.read_phys_many(ops).is_err() {
            // Read one by one: a failed piece is a candidate lost, not the search.
            for op in ops.iter_mut() {
                if mem.read_phys(op.pa, op.buf).is_err() {
                    op.buf.fill(0xff);
                }
            }
        }
        let values = ops.iter().map(|op| {
            let mut v = [0u8; 8];
            v.copy_from_slice(op.buf);
            u64::from_le_bytes(v)
        });
        for (value, &c) in values.zip(cs) {
            if value != c {
                continue;
            }
            let view =
                KernelView::new(mem, Paging::X86_64(X86Paging::new(0, false)), image_only(c));
            if check_banner(&view, symbols, None, loaded).is_ok() {
                return Some(c);
            }
        }
    }
}

/// Paging and the kernel image's place in memory.
struct Placed {
    paging: Paging,
    phys_base: u64,
    page_offset_base: u64,
}

fn place<M: PhysRead>(
    mem: &M,
    spec: &KernelSpec,
    hints: &MemoryHints,
    info: Option<&Vmcoreinfo>,
    by_symbols: Option<u64>,
    symbols: &Symbols,
    warnings: &mut Vec<String>,
) -> Result<Placed, DescribeError> {
    let vm_phys_base = info.and_then(|i| i.number("phys_base")).or(by_symbols);
    let cr3 = match spec.cr3.or(hints.cr3) {
        Some(cr3) => cr3,
        None => {
            let root = info
                .and_then(|i| {
                    i.symbol("init_top_pgt")
                        .or_else(|| i.symbol("swapper_pg_dir"))
                })
                .or_else(|| symbols.lookup("init_top_pgt").map(|k| k.0));
            match (root, vm_phys_base) {
                (Some(root), Some(pb)) => root.wrapping_sub(X86_START_KERNEL_MAP).wrapping_add(pb),
                _ => return Err(DescribeError::NoPagingRoot),
            }
        }
    };
    let known_l5 = hints.cr4.map(|cr4| cr4 & CR4_LA57 != 0).or_else(|| {
        info.and_then(|i| i.number("pgtable_l5_enabled"))
            .map(|v| v != 0)
    });
    let paging = |l5| Paging::X86_64(X86Paging::new(cr3, l5));

    let (five_level, phys_base) = match vm_phys_base {
        Some(pb) => {
            let view = KernelView::new(mem, paging(false), image_only(pb));
            let l5 = known_l5
                .or_else(|| read_l5(&view, symbols))
                .unwrap_or(false);
            if let Some(at) = symbols.lookup("phys_base") {
                let value = view
                    .read_kernel_u64(at)
                    .map_err(DescribeError::kernel(format!("read phys_base at {at}")))?;
                if value != pb {
                    return Err(DescribeError::mismatch(
                        "phys_base",
                        format!("{value:#x} in the variable phys_base at {at} (by the symbols)"),
                        format!("{pb:#x} (VMCOREINFO NUMBER(phys_base))"),
                    ));
                }
            }
            (l5, pb)
        }
        None => {
            let at = symbols
                .lookup("phys_base")
                .ok_or(DescribeError::MissingSymbol("phys_base"))?;
            let tries = known_l5.map_or(vec![false, true], |l5| vec![l5]);
            let mut first_err = None;
            let mut found = None;
            for l5 in tries {
                let mut view = KernelView::new(mem, paging(l5), image_only(0));
                match view.resolve_phys_base(at) {
                    Ok(pb) => {
                        // Without CR4, the variable must agree with the guess.
                        if known_l5.is_none() && read_l5(&view, symbols).is_some_and(|v| v != l5) {
                            continue;
                        }
                        found = Some((l5, pb));
                        break;
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            match (found, first_err) {
                (Some(f), _) => f,
                // The user's root: it is the likely fault, and named as such.
                (None, Some(source)) if spec.cr3.is_some() => {
                    return Err(DescribeError::PageTables {
                        root: cr3,
                        given: true,
                        what: format!("walking to the variable phys_base at {at}: {source}"),
                    })
                }
                (None, source) => {
                    return Err(DescribeError::Kernel {
                        what: format!(
                            "find phys_base by a page walk from CR3 {cr3:#x} to the variable \
                             phys_base at {at} (do the symbols belong to this memory?)"
                        ),
                        source: source.unwrap_or(mapwalk_core::Error::Corrupt {
                            what: "__pgtable_l5_enabled (contradicts every paging mode)",
                            at,
                            value: 0,
                        }),
                    })
                }
            }
        }
    };
    let view = KernelView::new(mem, paging(five_level), image_only(phys_base));
    if let (Some(known), Some(var)) = (known_l5, read_l5(&view, symbols)) {
        if known != var {
            warnings.push(format!(
                "__pgtable_l5_enabled says {}-level paging, CR4/VMCOREINFO {}-level; \
                 using the latter",
                if var { 5 } else { 4 },
                if known { 5 } else { 4 }
            ));
        }
    }
    let page_offset_base = match symbols.lookup("page_offset_base") {
        Some(at) => {
            let v = view
                .read_kernel_u64(at)
                .map_err(DescribeError::kernel(format!(
                    "read page_offset_base at {at}"
                )))?;
            // The direct map lies in the upper half, below the image.
            if !x86_is_direct_map_base(v) {
                return Err(DescribeError::mismatch(
                    "page_offset_base",
                    format!("the variable page_offset_base at {at}"),
                    format!("{v:#x}, not a direct-map base"),
                ));
            }
            v
        }
        None => {
            let v = x86_direct_map_base(five_level);
            warnings.push(format!(
                "no page_offset_base symbol: assuming the unrandomized direct map at {v:#x}"
            ));
            v
        }
    };
    Ok(Placed {
        paging: paging(five_level),
        phys_base,
        page_offset_base,
    })
}

/// Describes the kernel in `mem`: see the [module documentation](self).
///
/// # Errors
/// - [`DescribeError::Io`] / [`DescribeError::BadFile`] for the user's files;
/// - [`DescribeError::MissingSymbol`] for a required symbol (`map_idr`, `phys_base`
///   when VMCOREINFO does not give it, `linux_banner`, the BTF bounds when reading BTF
///   from memory);
/// - [`DescribeError::NoPagingRoot`] without a CR3, a VMCOREINFO root or a placement
///   by the symbols;
/// - [`DescribeError::Mismatch`] when the symbols do not fit the memory;
/// - [`DescribeError::Kernel`] when memory cannot be read or translated;
/// - [`DescribeError::Btf`] when the BTF cannot be parsed or lacks a required field.
pub fn describe<M: PhysRead>(
    mem: M,
    spec: &KernelSpec,
    hints: &MemoryHints,
) -> Result<Kernel<M>, DescribeError> {
    describe_with(mem, spec, hints, |_| {})
}

/// [`describe`], calling `searched` with the memory right after each search of it:
/// the `phys_base` candidates of the placement by the symbols (a page each), and the
/// search for VMCOREINFO (the start of every page). A RAM file can then let go of the
/// pages the search made resident. Not called when nothing was searched.
///
/// # Errors
/// As [`describe`].
pub fn describe_with<M: PhysRead>(
    mem: M,
    spec: &KernelSpec,
    hints: &MemoryHints,
    mut searched: impl FnMut(&M),
) -> Result<Kernel<M>, DescribeError> {
    let mut warnings = Vec::new();
    let (mut loaded, own_info) = load_symbols(&mem, spec, hints, &mut searched)?;
    crate::timing::mark("symbols read");
    loaded
        .symbols
        .prefetch(DESCRIBE_SYMBOLS)
        .map_err(|e| bad_file(&loaded.path, e.to_string()))?;
    crate::timing::mark("symbols found");

    // Symbols of the running kernel, and nothing that says where it is: try placing
    // the image by the symbols alone before searching memory for VMCOREINFO.
    let hinted = hints.vmcoreinfo.as_ref().filter(|v| !v.is_empty());
    let by_symbols = if !loaded.link_time
        && hinted.is_none()
        && own_info.is_none()
        && spec.cr3.or(hints.cr3).is_none()
    {
        let found = phys_base_by_symbols(&mem, &loaded.symbols, &loaded);
        searched(&mem);
        crate::timing::mark("placed by the symbols");
        found
    } else {
        None
    };

    // An arm64 kernel's symbols lead to its VMCOREINFO directly (describe/arm64.rs).
    let arm64_by_symbols = if !loaded.link_time
        && by_symbols.is_none()
        && hinted.is_none()
        && own_info.is_none()
        && spec.cr3.or(hints.cr3).is_none()
    {
        arm64::vmcoreinfo_by_symbols(&mem, &loaded.symbols)
    } else {
        None
    };
    let arm64_found = own_info.is_none() && arm64_by_symbols.is_some();
    let vmcoreinfo = match (&hints.vmcoreinfo, by_symbols) {
        _ if own_info.is_some() => own_info,
        _ if arm64_by_symbols.is_some() => arm64_by_symbols,
        (_, Some(_)) => None,
        (Some(v), None) => Some(v.clone()),
        (None, None) => {
            // The page probe is cheap; the full scan only when the description needs
            // VMCOREINFO (no CR3 to start from, or link-time symbols to slide).
            let needed = spec.cr3.or(hints.cr3).is_none() || loaded.link_time;
            let opts = FindOptions {
                scan: needed,
                ..FindOptions::default()
            };
            let found = find_vmcoreinfo_with(&mem, &opts);
            searched(&mem);
            match found {
                Ok(found) => found.map(|f| f.vmcoreinfo),
                Err(e) => {
                    warnings.push(format!("searching memory for VMCOREINFO failed: {e}"));
                    None
                }
            }
        }
    };
    // An empty hint means "do not search": there is none.
    let vmcoreinfo = vmcoreinfo.filter(|v| !v.is_empty());
    let info = vmcoreinfo.as_ref();
    if let Some(info) = info {
        checks::check_not_encrypted(info)?;
    }
    // Found by the symbols themselves (its kimage_voffset agreed with the symbols'
    // addresses): they are this boot's, the slide is 0 and needs no second pass.
    let found_by_symbols = arm64_found && vmcoreinfo.is_some();
    if info.is_some() && !found_by_symbols {
        // The VMCOREINFO's kernel-image symbols, to check the slide with.
        let image_names = info.map(image_symbols).unwrap_or_default();
        let wanted: Vec<&str> = image_names.iter().map(|(n, _)| n.as_str()).collect();
        loaded
            .symbols
            .prefetch(&wanted)
            .map_err(|e| bad_file(&loaded.path, e.to_string()))?;
        crate::timing::mark("VMCOREINFO");
    }

    let slide = if found_by_symbols {
        0
    } else {
        choose_slide(&loaded, info, &mut warnings)?
    };
    let symbols = match info.filter(|i| arm64::is_arm64(i)) {
        // arm64 image addresses lie below x86_64's __START_KERNEL_map.
        Some(i) => {
            let symbols = loaded
                .symbols
                .clone()
                .with_image_slide(slide, arm64::image_floor(i));
            if let Some(option) = loaded.option {
                arm64::check_file_symbols(&mem, i, &symbols, option, &loaded.path)?;
            }
            symbols
        }
        None => loaded.symbols.clone().with_slide(slide),
    };
    let map_idr = symbols
        .lookup("map_idr")
        .ok_or(DescribeError::MissingSymbol("map_idr"))?;

    // An arm64 kernel (describe/arm64.rs) is placed by its VMCOREINFO alone.
    let arm64_info = info.filter(|i| arm64::is_arm64(i));
    let (placed, addrs) = match arm64_info {
        Some(i) => {
            if let Some(cr3) = spec.cr3 {
                return Err(DescribeError::RootOfOtherArch {
                    given: format!("CR3 {cr3:#x} (--cr3)"),
                    arch: "arm64",
                    want: "TTBR1_EL1 (--ttbr1)",
                });
            }
            arm64::place(&mem, i, &symbols, spec.ttbr1, &mut warnings)?
        }
        None if spec.ttbr1.is_some() => {
            return Err(DescribeError::RootOfOtherArch {
                given: format!("TTBR1_EL1 {:#x} (--ttbr1)", spec.ttbr1.unwrap_or(0)),
                arch: "x86_64",
                want: "CR3 (--cr3)",
            })
        }
        None => {
            let placed = place(&mem, spec, hints, info, by_symbols, &symbols, &mut warnings)?;
            let ram_end = mem.ranges().iter().map(|r| r.end()).max().unwrap_or(0);
            let addrs = KernelAddrs::x86_64(placed.page_offset_base, ram_end, placed.phys_base);
            (placed, addrs)
        }
    };
    let view = KernelView::new(mem, placed.paging, addrs);

    let release = check_banner(&view, &symbols, info, &loaded)?;
    if let Some(banner) = symbols.lookup("linux_banner") {
        checks::check_page_tables(&view, banner, spec.cr3.is_some())?;
    }
    crate::timing::mark("paging, banner");

    let (raw_btf, btf_what) = match (&spec.btf, &loaded.elf_btf) {
        (Some(BtfSource::File(path)), _) => (btf_from_file(path)?, path.display().to_string()),
        (None, Some(b)) => (b.clone(), format!("{} .BTF", loaded.path.display())),
        (Some(BtfSource::GuestMemory), _) | (None, None) => (
            btf_from_memory(&view, &symbols)?,
            "BTF in memory (__start_BTF)".to_owned(),
        ),
    };
    crate::timing::mark("BTF read");
    let btf_err = |source| DescribeError::Btf {
        what: btf_what.clone(),
        source,
    };
    let reader = btf::BtfReader::with_names(&raw_btf, btf::LAYOUT_STRUCTS).map_err(btf_err)?;
    let layout = match spec.layout_override {
        Some(layout) => layout,
        None => {
            // A kernel whose structures do not resolve is refused by name and version.
            let resolved = btf::resolve_layout(&reader).map_err(|source| DescribeError::Btf {
                what: format!(
                    "kernel {release} is not one mapwalk can read (refused rather than \
                     misread; {btf_what})"
                ),
                source,
            })?;
            warnings.extend(resolved.warnings);
            resolved.layout
        }
    };
    let e820 = ram_layout::E820Layout::from_btf(&reader);
    drop(reader);
    // The memory must hold all the RAM the kernel has (a RAM file read with the wrong
    // layout does not): its e820 table says which, or, when the table itself lies in
    // RAM the memory does not hold (the kernel moves it to the top of RAM early in
    // boot), its `max_pfn` and `max_low_pfn` say how far RAM goes.
    let e820_ram = match (e820, symbols.lookup("e820_table")) {
        (Some(l), Some(table)) => Some(ram_layout::kernel_ram(&view, table, &l)),
        _ => None,
    };
    let ram = match e820_ram {
        // arm64 has no e820; its `max_pfn` counts from physical 0, not from RAM's start.
        _ if arm64_info.is_some() => arm64::kernel_ram(&view, &symbols),
        Some(Ok(ram)) => Some(ram),
        other => {
            let pfns = match (symbols.lookup("max_pfn"), symbols.lookup("max_low_pfn")) {
                (Some(max), Some(low)) => ram_layout::pfn_ram(&view, max, low).ok(),
                _ => None,
            };
            if pfns.is_none() {
                if let Some(Err(why)) = other {
                    warnings.push(format!("the kernel's memory map (e820) not checked: {why}"));
                }
            }
            pfns
        }
    };
    if let Some(ram) = ram {
        let missing = ram_layout::uncovered(&ram, view.mem().ranges());
        if !missing.is_empty() {
            let held_end = view
                .mem()
                .ranges()
                .iter()
                .map(|r| r.end())
                .max()
                .unwrap_or(0);
            return Err(DescribeError::RamLayout {
                missing,
                ram,
                held_end,
            });
        }
    }
    crate::timing::mark("RAM layout checked");
    if spec.layout_override.is_none() {
        let from = match &spec.btf {
            Some(BtfSource::File(path)) => format!("--btf {}", path.display()),
            _ => btf_what.clone(),
        };
        checks::check_maps_fit(&view, &layout, map_idr, &from)?;
    }
    crate::timing::mark("BTF indexed, layout resolved");

    let optional = |warnings: &mut Vec<String>, name: &str, why: &str| {
        let kva = symbols.lookup(name);
        if kva.is_none() {
            warnings.push(format!("no {name} symbol: {why}"));
        }
        kva
    };
    let per_cpu_offset = optional(
        &mut warnings,
        "__per_cpu_offset",
        "per-CPU map values cannot be read",
    );
    let nr_cpu_ids = optional(
        &mut warnings,
        "nr_cpu_ids",
        "the possible CPUs must be given",
    );
    let prog_idr = optional(&mut warnings, "prog_idr", "programs cannot be listed");

    Ok(Kernel {
        view,
        layout,
        btf: btf::KernelBtf::new(raw_btf),
        symbols,
        map_idr,
        prog_idr,
        per_cpu_offset,
        nr_cpu_ids,
        release: Some(release),
        warnings,
        vmcoreinfo,
        phys_base: placed.phys_base,
        page_offset_base: placed.page_offset_base,
        slide,
    })
}
