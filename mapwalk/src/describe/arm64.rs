//! The arm64 kernel description: where the image, the linear map and the page-table
//! root are, from the VMCOREINFO an arm64 kernel writes and the symbols.
//!
//! - **Which kernel**: a VMCOREINFO with `NUMBER(kimage_voffset)` is an arm64 kernel's
//!   (x86_64 has no such line).
//! - **Finding the VMCOREINFO**: with the running kernel's symbols, by
//!   [`vmcoreinfo_by_symbols`] (a few reads), before any search of memory.
//! - **Image**: a kernel-image address `va` is at `va - kimage_voffset` (KASLR moves
//!   both the image and `kimage_voffset`; `KERNELOFFSET` is the virtual slide). The
//!   image runs from `_text` to `_end`.
//! - **Root**: `swapper_pg_dir` (the VMCOREINFO's `SYMBOL(swapper_pg_dir)`, else the
//!   symbols), an image address.
//! - **Geometry**: the granule from `PAGESIZE`, T1SZ from `NUMBER(TCR_EL1_T1SZ)` (else
//!   `64 - VA_BITS`). LPA2 (TCR_EL1.DS) is not in the VMCOREINFO: a T1SZ below 16 with
//!   4 or 16 KiB pages needs it; otherwise the tables decide. Each candidate TCR is
//!   kept only if the tables map `swapper_pg_dir` itself, `linux_banner` and (when
//!   the VMCOREINFO names one) the linear-map address `SYMBOL(mem_section)` where the
//!   image and the linear map put them: an LPA2 reading of 48-bit tables takes their
//!   shareability bits (9:8) for address bits and fails that check.
//! - **Linear map**: `pa = va - PAGE_OFFSET + PHYS_OFFSET`, with `PAGE_OFFSET =
//!   -(1 << VA_BITS)` (the configured VA_BITS: a 52-bit kernel on a CPU without LPA2
//!   lowers `PHYS_OFFSET` instead), covering the memory's RAM (which starts at
//!   `0x4000_0000` on QEMU `virt`).

use mapwalk_core::arch::aarch64::{
    Aarch64Paging, IPS_52_BITS, TCR_DS, TCR_IPS_SHIFT, TCR_T1SZ_SHIFT, TCR_TG1_SHIFT, TG1_16K,
    TG1_4K, TG1_64K,
};
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView, LinearRegion};
use mapwalk_core::{arch, Kva, Pa, Paging, PhysRead, Translation};

use super::{DescribeError, Placed, Symbols, Vmcoreinfo};

/// IPS encoding of a 48-bit physical address size.
const IPS_48_BITS: u64 = 0b101;

/// Whether `info` is an arm64 kernel's VMCOREINFO.
pub(super) fn is_arm64(info: &Vmcoreinfo) -> bool {
    info.number("kimage_voffset").is_some()
}

/// The lowest kernel-image address of an arm64 kernel (`MODULES_END`, where the image
/// region starts), for telling image symbols from linear-map ones in the VMCOREINFO.
pub(super) fn image_floor(info: &Vmcoreinfo) -> u64 {
    // `MODULES_VADDR` + 2 GiB without the line (Linux 6.12 layout).
    info.number("MODULES_END")
        .or_else(|| {
            info.number("MODULES_VADDR")
                .map(|m| m.wrapping_add(2 << 30))
        })
        .unwrap_or(0xffff_8000_8000_0000)
}

fn need(info: &Vmcoreinfo, name: &'static str) -> Result<u64, DescribeError> {
    info.number(name)
        .ok_or(DescribeError::MissingSymbol(match name {
            "kimage_voffset" => "NUMBER(kimage_voffset) (VMCOREINFO)",
            "PHYS_OFFSET" => "NUMBER(PHYS_OFFSET) (VMCOREINFO)",
            _ => "NUMBER(VA_BITS) (VMCOREINFO)",
        }))
}

/// The candidate TCR_EL1 values for `granule_shift` and `t1sz`, most likely first.
fn tcr_candidates(granule_shift: u32, t1sz: u64, max_phys_bits: Option<u64>) -> Vec<u64> {
    let tg1 = match granule_shift {
        12 => TG1_4K,
        14 => TG1_16K,
        _ => TG1_64K,
    };
    let base = (t1sz << TCR_T1SZ_SHIFT) | (tg1 << TCR_TG1_SHIFT);
    let ips48 = IPS_48_BITS << TCR_IPS_SHIFT;
    let ips52 = IPS_52_BITS << TCR_IPS_SHIFT;
    if granule_shift == 16 {
        // FEAT_LPA: 52-bit output addresses when the kernel was built for them.
        return if max_phys_bits == Some(52) {
            vec![base | ips52, base | ips48]
        } else {
            vec![base | ips48]
        };
    }
    if t1sz < 16 {
        vec![base | ips52 | TCR_DS]
    } else {
        vec![base | ips48, base | ips52 | TCR_DS]
    }
}

/// A view of the kernel image alone, by arithmetic (`va - kimage_voffset` for every
/// address from [`image_floor`] up to `VMALLOC_END`, else 4 GiB past it): enough to
/// read the symbol table in `.rodata` before the symbols are known. `None` for a
/// VMCOREINFO that is not an arm64 kernel's.
pub(super) fn image_only(info: &Vmcoreinfo) -> Option<(Paging, KernelAddrs)> {
    let voffset = info.number("kimage_voffset")?;
    let floor = image_floor(info);
    let len = info
        .number("VMALLOC_END")
        .and_then(|end| end.checked_sub(floor))
        .unwrap_or(4 << 30);
    let t1sz = info.number("TCR_EL1_T1SZ").unwrap_or(16);
    let granule_shift = match info.page_size() {
        Some(16384) => 14,
        Some(65536) => 16,
        _ => 12,
    };
    // Nothing is walked through it; any valid state does.
    let tcr = tcr_candidates(granule_shift, t1sz, None)
        .into_iter()
        .find_map(|tcr| Aarch64Paging::new(0, tcr).ok())
        .or_else(|| Aarch64Paging::new(0, tcr_candidates(12, 16, None)[0]).ok())?;
    let image = LinearRegion {
        virt: Kva(floor),
        phys: Pa(floor.wrapping_sub(voffset)),
        len,
    };
    Some((
        Paging::Aarch64(tcr),
        KernelAddrs {
            direct_map: None,
            image: Some(image),
        },
    ))
}

/// The alignment stepped through for the image's physical address.
const IMAGE_PHYS_STEP: u64 = 64 << 10;

/// The VA_BITS an arm64 kernel may be built with, for the linear-map candidates.
const VA_BITS_CANDIDATES: [u32; 6] = [52, 48, 47, 42, 39, 36];

/// The VMCOREINFO of an arm64 kernel, found through its runtime symbols without
/// searching memory: the image's physical address is the candidate `c` (every
/// [`IMAGE_PHYS_STEP`] of RAM, at most [`super::MAX_PHYS_BASE_CANDIDATES`]) where the
/// variable `kimage_voffset` holds `_text - c`; then `memstart_addr` gives
/// `PHYS_OFFSET`, and the pointer `vmcoreinfo_data` leads, through the linear map of one
/// of the [`VA_BITS_CANDIDATES`], to a page that reads as a VMCOREINFO whose own
/// `kimage_voffset` agrees. `None` when any step fails (symbols of another kernel, an
/// x86_64 kernel): the description then searches memory as usual.
pub(super) fn vmcoreinfo_by_symbols<M: PhysRead>(mem: &M, symbols: &Symbols) -> Option<Vmcoreinfo> {
    let text = symbols.lookup("_text")?.0;
    let kv = symbols.lookup("kimage_voffset")?.0;
    let ms = symbols.lookup("memstart_addr")?.0;
    let vd = symbols.lookup("vmcoreinfo_data")?.0;
    let read_u64 = |pa: u64| {
        let mut b = [0u8; 8];
        mem.read_phys(Pa(pa), &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    };
    let off = kv.checked_sub(text)?;
    let mut voffset = None;
    let mut tried = 0usize;
    'ranges: for r in mem.ranges() {
        let mut c = r.start.0.checked_next_multiple_of(IMAGE_PHYS_STEP)?;
        while c.checked_add(off)?.checked_add(8)? <= r.end() {
            tried = tried.saturating_add(1);
            if tried > super::MAX_PHYS_BASE_CANDIDATES {
                return None;
            }
            let v = text.wrapping_sub(c);
            if read_u64(c.wrapping_add(off)) == Some(v) {
                voffset = Some(v);
                break 'ranges;
            }
            c = c.checked_add(IMAGE_PHYS_STEP)?;
        }
    }
    let voffset = voffset?;
    let phys_offset = read_u64(ms.wrapping_sub(voffset))?;
    let data = read_u64(vd.wrapping_sub(voffset))?;
    let mut page = vec![0u8; 4096];
    for va_bits in VA_BITS_CANDIDATES {
        let page_offset = u64::MAX << va_bits;
        let Some(lin) = data.checked_sub(page_offset) else {
            continue;
        };
        let pa = lin.wrapping_add(phys_offset);
        if mem.read_phys(Pa(pa), &mut page).is_err() || !page.starts_with(b"OSRELEASE=") {
            continue;
        }
        let info = Vmcoreinfo::parse(&page);
        if info.number("kimage_voffset") == Some(voffset)
            && info.number("VA_BITS") == Some(u64::from(va_bits))
        {
            return Some(info);
        }
    }
    None
}

/// What `linux_banner` starts with.
const BANNER_PREFIX: &[u8] = b"Linux version ";

/// Checks the symbols of a user's file (`option` `path`), slid, against the memory
/// before anything is walked with them: by the image's own placement (`pa = va -
/// kimage_voffset`), `_text` must hold the arm64 image header (`ARM\x64` at +0x38),
/// `linux_banner` must read `Linux version `, and `swapper_pg_dir` must be where the
/// VMCOREINFO says. A symbol the file lacks is left to the description, which names
/// it.
///
/// # Errors
/// [`DescribeError::Mismatch`] naming the option, the file, the symbol, its file
/// address and slide, and what the memory holds there.
pub(super) fn check_file_symbols<M: PhysRead>(
    mem: &M,
    info: &Vmcoreinfo,
    symbols: &Symbols,
    option: &str,
    path: &std::path::Path,
) -> Result<(), DescribeError> {
    let Some(voffset) = info.number("kimage_voffset") else {
        return Ok(());
    };
    let said = |name: &str, va: Kva| {
        format!(
            "{option} {}: {name} at {:#x}, slid by {:#x} to {va}",
            path.display(),
            symbols.file_addr(name).unwrap_or(va.0),
            symbols.slide()
        )
    };
    let read = |va: Kva, off: u64, buf: &mut [u8]| {
        let pa = Pa(va.0.wrapping_sub(voffset).wrapping_add(off));
        mem.read_phys(pa, buf)
            .map(|()| pa)
            .map_err(|e| format!("nothing readable at {pa} ({e})"))
    };
    if let Some(text) = symbols.lookup("_text") {
        let mut word = [0u8; 8];
        if let Err(memory) = read(text, 0, &mut word) {
            return Err(DescribeError::mismatch(
                "_text",
                said("_text", text),
                memory,
            ));
        }
    }
    if let Some(banner) = symbols.lookup("linux_banner") {
        let mut head = [0u8; BANNER_PREFIX.len()];
        let held = match read(banner, 0, &mut head) {
            Ok(_) if head == BANNER_PREFIX => None,
            Ok(pa) => Some(format!(
                "\"{}\" at {pa}, not \"{}\"",
                head.escape_ascii(),
                BANNER_PREFIX.escape_ascii()
            )),
            Err(e) => Some(e),
        };
        if let Some(memory) = held {
            return Err(DescribeError::mismatch(
                "linux_banner",
                said("linux_banner", banner),
                memory,
            ));
        }
    }
    if let (Some(ours), Some(theirs)) = (
        symbols.lookup("swapper_pg_dir"),
        info.symbol("swapper_pg_dir"),
    ) {
        if ours.0 != theirs {
            return Err(DescribeError::mismatch(
                "swapper_pg_dir",
                said("swapper_pg_dir", ours),
                format!("{theirs:#x} (VMCOREINFO SYMBOL(swapper_pg_dir))"),
            ));
        }
    }
    Ok(())
}

/// Where the tables put `va`, if they map it.
fn walk<M: PhysRead>(mem: &M, paging: &Paging, va: Kva) -> Result<Pa, String> {
    match arch::translate(mem, paging, va) {
        Ok(Translation::Mapped(m)) => Ok(m.pa),
        Ok(Translation::NotPresent { level }) => {
            Err(format!("{va} is not mapped (no entry at level {level})"))
        }
        Err(e) => Err(format!("walking to {va}: {e}")),
    }
}

/// Places an arm64 kernel: its paging state and kernel address layout.
///
/// # Errors
/// [`DescribeError::MissingSymbol`] without `kimage_voffset`, `PHYS_OFFSET`, `VA_BITS`,
/// `swapper_pg_dir`, `_text` or `_end`; [`DescribeError::Mismatch`] for a page size
/// that is no arm64 granule; [`DescribeError::PageTables`] when no TCR_EL1 makes the
/// tables map the kernel where the VMCOREINFO says it is.
pub(super) fn place<M: PhysRead>(
    mem: &M,
    info: &Vmcoreinfo,
    symbols: &Symbols,
    ttbr1: Option<u64>,
    warnings: &mut Vec<String>,
) -> Result<(Placed, KernelAddrs), DescribeError> {
    let voffset = need(info, "kimage_voffset")?;
    let phys_offset = need(info, "PHYS_OFFSET")?;
    let va_bits = need(info, "VA_BITS")?;
    let granule_shift = match info.page_size() {
        Some(4096) | None => 12,
        Some(16384) => 14,
        Some(65536) => 16,
        Some(other) => {
            return Err(DescribeError::mismatch(
                "page size",
                "4, 16 or 64 KiB (an arm64 granule)",
                format!("{other} (VMCOREINFO PAGESIZE)"),
            ))
        }
    };
    if info.page_size().is_none() {
        warnings.push("no PAGESIZE in the VMCOREINFO: assuming 4 KiB pages".to_owned());
    }
    let t1sz = info
        .number("TCR_EL1_T1SZ")
        .unwrap_or_else(|| 64u64.saturating_sub(va_bits));
    let root_va = info
        .symbol("swapper_pg_dir")
        .map(Kva)
        .or_else(|| symbols.lookup("swapper_pg_dir"))
        .ok_or(DescribeError::MissingSymbol("swapper_pg_dir"))?;
    let text = symbols
        .lookup("_text")
        .ok_or(DescribeError::MissingSymbol("_text"))?;
    let end = symbols
        .lookup("_end")
        .ok_or(DescribeError::MissingSymbol("_end"))?;
    let image_len = end.0.checked_sub(text.0).filter(|&l| l > 0 && l < 1 << 32);
    let Some(image_len) = image_len else {
        return Err(DescribeError::mismatch(
            "kernel image",
            format!("_text = {text} .. _end = {end}"),
            "no plausible image (the end before the start, or over 4 GiB)",
        ));
    };
    let image = LinearRegion {
        virt: text,
        phys: Pa(text.0.wrapping_sub(voffset)),
        len: image_len,
    };
    let swapper = root_va.0.wrapping_sub(voffset);
    // A vCPU's TTBR1_EL1, when given, is walked instead (and must map the kernel as
    // swapper_pg_dir does).
    let root = ttbr1.map_or(swapper, ttbr1_root);

    // The linear map over the memory's RAM.
    let ram_start = mem.ranges().iter().map(|r| r.start.0).min().unwrap_or(0);
    let ram_end = mem.ranges().iter().map(|r| r.end()).max().unwrap_or(0);
    let page_offset = if va_bits >= 64 {
        0
    } else {
        u64::MAX << va_bits
    };
    let direct_map = LinearRegion {
        virt: Kva(page_offset.wrapping_add(ram_start.wrapping_sub(phys_offset))),
        phys: Pa(ram_start),
        len: ram_end.saturating_sub(ram_start),
    };

    // What the tables must say.
    let mut probes = vec![(root_va, Pa(swapper), "swapper_pg_dir")];
    if let Some(banner) = symbols.lookup("linux_banner") {
        probes.push((banner, Pa(banner.0.wrapping_sub(voffset)), "linux_banner"));
    }
    if let Some(ms) = info.symbol("mem_section").map(Kva) {
        if let Some(r) = direct_map.lookup(ms) {
            probes.push((ms, r.start, "mem_section (linear map)"));
        }
    }
    let mut why = Vec::new();
    for tcr in tcr_candidates(granule_shift, t1sz, info.number("MAX_PHYSMEM_BITS")) {
        let paging = match Aarch64Paging::new(root, tcr) {
            Ok(p) => Paging::Aarch64(p),
            Err(e) => {
                why.push(format!("TCR_EL1 {tcr:#x}: {e}"));
                continue;
            }
        };
        let bad = probes
            .iter()
            .find_map(|&(va, want, name)| match walk(mem, &paging, va) {
                Ok(pa) if pa == want => None,
                Ok(pa) => Some(format!("{name} at {va} maps to {pa}, not {want}")),
                Err(e) => Some(format!("{name}: {e}")),
            });
        match bad {
            None => {
                let placed = Placed {
                    paging,
                    phys_base: image.phys.0,
                    page_offset_base: page_offset,
                };
                let addrs = KernelAddrs {
                    direct_map: Some(direct_map),
                    image: Some(image),
                };
                return Ok((placed, addrs));
            }
            Some(e) => why.push(format!(
                "TCR_EL1 {tcr:#x}{}: {e}",
                if tcr & TCR_DS != 0 { " (LPA2)" } else { "" }
            )),
        }
    }
    Err(DescribeError::PageTables {
        root,
        given: ttbr1.is_some(),
        what: why.join("; "),
    })
}

/// The table address in a TTBR1_EL1 value: BADDR, bits 47:1 (bit 0 is CnP, 63:48 the
/// ASID), with bits 51:48 in bits 5:2 when the tables use 52-bit addresses (LPA2 or
/// FEAT_LPA, whose tables are 64-byte aligned at least; otherwise those bits are 0).
pub(crate) fn ttbr1_root(ttbr1: u64) -> u64 {
    (ttbr1 & 0x0000_ffff_ffff_ffc0) | (((ttbr1 >> 2) & 0xf) << 48)
}

/// The kernel's RAM as far as the memory must hold it: from the memory's first byte
/// up to `max_pfn` (one past the highest page frame of RAM, counted from physical 0),
/// as one `(start, length)` range. `None` without the symbol or a readable value.
pub(super) fn kernel_ram<M: PhysRead>(
    view: &KernelView<M>,
    symbols: &Symbols,
) -> Option<Vec<(u64, u64)>> {
    let at = symbols.lookup("max_pfn")?;
    let pfn = view.read_kernel_u64(at).ok()?;
    let shift = match view.paging() {
        Paging::Aarch64(p) => p.granule_shift(),
        Paging::X86_64(_) => 12,
    };
    let end = pfn.checked_mul(1u64 << shift)?;
    let start = view.mem().ranges().iter().map(|r| r.start.0).min()?;
    (end > start).then(|| vec![(start, end - start)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapwalk_core::Ram;

    #[test]
    fn tcr_candidates_follow_t1sz_and_granule() {
        // 52-bit VAs with 4 KiB pages: LPA2 only.
        let c = tcr_candidates(12, 12, Some(52));
        assert_eq!(c.len(), 1);
        let p = Aarch64Paging::new(0x4000_0000, c[0]).unwrap();
        assert!(p.lpa2());
        assert_eq!((p.va_bits(), p.levels()), (52, 5));
        // 48-bit VAs: the 48-bit format first, LPA2 second.
        let c = tcr_candidates(12, 16, Some(52));
        let first = Aarch64Paging::new(0x4000_0000, c[0]).unwrap();
        let second = Aarch64Paging::new(0x4000_0000, c[1]).unwrap();
        assert!(!first.lpa2() && second.lpa2());
        // 16 KiB, 47 bits.
        let c = tcr_candidates(14, 17, None);
        let p = Aarch64Paging::new(0x4000_0000, c[0]).unwrap();
        assert_eq!((p.granule_shift(), p.va_bits(), p.levels()), (14, 47, 3));
        // 64 KiB with 52-bit PAs: FEAT_LPA first.
        let c = tcr_candidates(16, 12, Some(52));
        assert!(Aarch64Paging::new(0x4000_0000, c[0]).unwrap().lpa());
    }

    /// 4 MiB of RAM at 1 GiB holding an image at `0x4020_0000` whose variables lead to
    /// a VMCOREINFO page at `0x4030_0000` through a 52-bit linear map, and the symbols.
    fn by_symbols_guest(info_va_bits: u64, voffset_var: Option<u64>) -> (Ram<Vec<u8>>, Symbols) {
        const BASE: u64 = 0x4000_0000;
        let text = 0xffff_8000_8020_0000u64;
        let image_pa = 0x4020_0000u64;
        let voffset = text - image_pa;
        let mut bytes = vec![0u8; 4 << 20];
        let mut put = |pa: u64, b: &[u8]| {
            let at = usize::try_from(pa - BASE).unwrap();
            bytes[at..at + b.len()].copy_from_slice(b);
        };
        // A decoy at RAM's first candidate: not the voffset of that placement.
        put(BASE + 0x1000, &0x1234u64.to_le_bytes());
        put(
            image_pa + 0x1000,
            &voffset_var.unwrap_or(voffset).to_le_bytes(),
        );
        put(image_pa + 0x1008, &BASE.to_le_bytes());
        put(image_pa + 0x1010, &0xfff0_0000_0030_0000u64.to_le_bytes());
        let text_info = format!(
            "OSRELEASE=6.12.0-test\nPAGESIZE=4096\nNUMBER(VA_BITS)={info_va_bits}\n\
             NUMBER(kimage_voffset)={voffset:#x}\nNUMBER(PHYS_OFFSET)={BASE:#x}\n"
        );
        put(0x4030_0000, text_info.as_bytes());
        let kallsyms = format!(
            "{text:016x} T _text\n{:016x} D kimage_voffset\n{:016x} D memstart_addr\n\
             {:016x} B vmcoreinfo_data\n",
            text + 0x1000,
            text + 0x1008,
            text + 0x1010
        );
        let mut symbols = Symbols::from_text(kallsyms.into_bytes()).unwrap();
        symbols
            .prefetch(&[
                "_text",
                "kimage_voffset",
                "memstart_addr",
                "vmcoreinfo_data",
            ])
            .unwrap();
        (Ram::new(Pa(BASE), bytes), symbols)
    }

    #[test]
    fn the_symbols_lead_to_the_vmcoreinfo() {
        let (ram, symbols) = by_symbols_guest(52, None);
        let info = vmcoreinfo_by_symbols(&ram, &symbols).expect("found");
        assert_eq!(info.osrelease(), Some("6.12.0-test"));
        assert_eq!(info.number("kimage_voffset"), Some(0xffff_8000_4000_0000));
        // A page that names other VA_BITS than the linear map it was reached through.
        let (ram, symbols) = by_symbols_guest(48, None);
        assert!(vmcoreinfo_by_symbols(&ram, &symbols).is_none());
        // No placement where kimage_voffset holds its own offset: symbols of another
        // boot.
        let (ram, symbols) = by_symbols_guest(52, Some(0xffff_8000_4010_0000));
        assert!(vmcoreinfo_by_symbols(&ram, &symbols).is_none());
    }

    /// 8 MiB of RAM at 1 GiB, all of it mapped as the kernel image at
    /// `0xffff_8000_8000_0000` and as the linear map at `0xfff0_0000_0000_0000`
    /// (2 MiB blocks), by tables of `t1sz` (LPA2 or not); the VMCOREINFO says
    /// `info_t1sz`.
    fn placed(
        lpa2: bool,
        t1sz: u32,
        info_t1sz: u32,
    ) -> Result<(Placed, KernelAddrs), DescribeError> {
        placed_with(lpa2, t1sz, info_t1sz, |_| None)
    }

    /// [`placed`], with a TTBR1_EL1 made from the tables' root by `ttbr1`.
    fn placed_with(
        lpa2: bool,
        t1sz: u32,
        info_t1sz: u32,
        ttbr1: impl Fn(u64) -> Option<u64>,
    ) -> Result<(Placed, KernelAddrs), DescribeError> {
        use mapwalk_core::synth::{Aarch64PageTables, SynthRam};
        const BASE: u64 = 0x4000_0000;
        const LEN: u64 = 8 << 20;
        let text = 0xffff_8000_8000_0000u64;
        let voffset = text - BASE;
        let mut ram = SynthRam::new(Pa(BASE), LEN as usize);
        let pt = if lpa2 {
            Aarch64PageTables::new_lpa2(&mut ram, 12, t1sz, 0)
        } else {
            Aarch64PageTables::new(&mut ram, 12, t1sz, 0)
        };
        pt.map_range(&mut ram, Kva(text), Pa(BASE), LEN, 21);
        let linear = u64::MAX << (64 - t1sz);
        pt.map_range(&mut ram, Kva(linear), Pa(BASE), LEN, 21);
        let root_va = pt.root().0 + voffset;
        let mem_section = 0xfff0_0000_0010_0000u64;
        let info = Vmcoreinfo::parse(
            format!(
                "OSRELEASE=6.12.0-test\nPAGESIZE=4096\nSYMBOL(swapper_pg_dir)={root_va:x}\n\
                 SYMBOL(mem_section)={mem_section:x}\nNUMBER(VA_BITS)=52\n\
                 NUMBER(kimage_voffset)={voffset:#x}\nNUMBER(PHYS_OFFSET)={:#x}\n\
                 NUMBER(TCR_EL1_T1SZ)={info_t1sz:#x}\n",
                // A 48-bit linear map of a 52-bit kernel: PHYS_OFFSET lowered.
                BASE.wrapping_sub(linear.wrapping_sub(0xfff0_0000_0000_0000))
            )
            .as_bytes(),
        );
        let kallsyms = format!(
            "{text:016x} T _text\n{:016x} D linux_banner\n{:016x} B _end\n",
            text + 0x1000,
            text + LEN
        );
        let mut symbols = Symbols::from_text(kallsyms.into_bytes()).unwrap();
        symbols
            .prefetch(&["_text", "_end", "linux_banner", "swapper_pg_dir"])
            .unwrap();
        let mut warnings = Vec::new();
        let r = place(
            &ram.as_ram(),
            &info,
            &symbols,
            ttbr1(pt.root().0),
            &mut warnings,
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        r
    }

    #[test]
    fn lpa2_tables_are_placed() {
        let (placed, addrs) = placed(true, 12, 12).unwrap();
        let Paging::Aarch64(p) = placed.paging else {
            panic!("{:?}", placed.paging)
        };
        assert_eq!((p.lpa2(), p.levels(), p.va_bits()), (true, 5, 52));
        assert_eq!(placed.phys_base, 0x4000_0000);
        assert_eq!(placed.page_offset_base, 0xfff0_0000_0000_0000);
        let dm = addrs.direct_map.unwrap();
        assert_eq!(
            (dm.virt, dm.phys, dm.len),
            (Kva(0xfff0_0000_0000_0000), Pa(0x4000_0000), 8 << 20)
        );
        let image = addrs.image.unwrap();
        assert_eq!(
            (image.virt, image.phys, image.len),
            (Kva(0xffff_8000_8000_0000), Pa(0x4000_0000), 8 << 20)
        );
    }

    #[test]
    fn forty_eight_bit_tables_of_a_52_bit_kernel_are_placed() {
        // T1SZ 16 (a CPU without LPA2): the 48-bit format, the linear map at
        // 0xffff_0000_0000_0000 through the lowered PHYS_OFFSET.
        let (placed, addrs) = placed(false, 16, 16).unwrap();
        let Paging::Aarch64(p) = placed.paging else {
            panic!("{:?}", placed.paging)
        };
        assert_eq!((p.lpa2(), p.levels(), p.va_bits()), (false, 4, 48));
        assert_eq!(addrs.direct_map.unwrap().virt, Kva(0xffff_0000_0000_0000));
    }

    #[test]
    fn a_vcpus_ttbr1_is_walked_and_checked() {
        assert_eq!(
            ttbr1_root(0x0001_0000_4000_1001),
            0x4000_1000,
            "ASID, CnP off"
        );
        assert_eq!(
            ttbr1_root(0x4000_1000 | 0b1100),
            0x0003_0000_4000_1000,
            "LPA2"
        );
        // The tables' own root, with an ASID and CnP set: placed as from swapper_pg_dir.
        let (placed, _) = placed_with(true, 12, 12, |root| Some(root | 0x0042 << 48 | 1)).unwrap();
        let Paging::Aarch64(p) = placed.paging else {
            panic!("{:?}", placed.paging)
        };
        assert_eq!((p.lpa2(), p.levels()), (true, 5));
        // Another page of RAM as the root: refused, naming the root as given.
        match placed_with(true, 12, 12, |root| Some(root + 0x1000)) {
            Err(e @ DescribeError::PageTables { given: true, .. }) => {
                assert!(
                    e.to_string().contains("(given) do not map the kernel"),
                    "{e}"
                );
            }
            other => panic!("{:?}", other.map(|(p, _)| p.paging)),
        }
    }

    #[test]
    fn tables_that_do_not_fit_the_vmcoreinfo_are_refused() {
        // 48-bit tables, a VMCOREINFO that says T1SZ 12 (LPA2): the walk reads the root
        // with the wrong geometry and does not reach swapper_pg_dir.
        match placed(false, 16, 12) {
            Err(DescribeError::PageTables { what, .. }) => {
                assert!(what.contains("LPA2"), "{what}");
            }
            other => panic!("{:?}", other.map(|(p, _)| p.paging)),
        }
    }

    /// 4 MiB of RAM at 1 GiB holding a 6.1-style image (linked at
    /// `0xffff_8000_0800_0000`, slid by `SLIDE`) at `0x4020_0000`, its banner at +0x1000,
    /// `swapper_pg_dir` at +0x2000; the symbols of a System.map with `banner` and
    /// `text` as link-time addresses, slid.
    fn file_symbols_check(text: u64, banner: u64) -> Result<(), DescribeError> {
        const BASE: u64 = 0x4000_0000;
        const LINK: u64 = 0xffff_8000_0800_0000;
        const SLIDE: u64 = 0x3ee0_e560_0000;
        const IMAGE: u64 = 0x4020_0000;
        let voffset = (LINK + SLIDE).wrapping_sub(IMAGE);
        let mut bytes = vec![0u8; 4 << 20];
        let banner_at = usize::try_from(IMAGE - BASE + 0x1000).unwrap();
        bytes[banner_at..banner_at + 20].copy_from_slice(b"Linux version 6.1.0 ");
        let info = Vmcoreinfo::parse(
            format!(
                "OSRELEASE=6.1.0-test\nSYMBOL(swapper_pg_dir)={:x}\n\
                 NUMBER(kimage_voffset)={voffset:#x}\nNUMBER(MODULES_END)={LINK:#x}\n",
                LINK + SLIDE + 0x2000
            )
            .as_bytes(),
        );
        let map = format!(
            "{text:016x} T _text\n{banner:016x} D linux_banner\n{:016x} T swapper_pg_dir\n",
            LINK + 0x2000
        );
        let mut symbols = Symbols::from_text(map.into_bytes()).unwrap();
        symbols
            .prefetch(&["_text", "linux_banner", "swapper_pg_dir"])
            .unwrap();
        let symbols = symbols.with_image_slide(SLIDE, image_floor(&info));
        let ram = Ram::new(Pa(BASE), bytes);
        check_file_symbols(
            &ram,
            &info,
            &symbols,
            "--symbols",
            std::path::Path::new("System.map"),
        )
    }

    #[test]
    fn slid_file_symbols_must_read_in_memory() {
        const LINK: u64 = 0xffff_8000_0800_0000;
        file_symbols_check(LINK, LINK + 0x1000).unwrap();
        // The banner 16 bytes off: what is there is not the banner.
        match file_symbols_check(LINK, LINK + 0x1010) {
            Err(DescribeError::Mismatch {
                what,
                files,
                memory,
            }) => {
                assert_eq!(what, "linux_banner");
                assert!(
                    files.starts_with("--symbols System.map: linux_banner at 0xffff800008001010, slid by 0x3ee0e5600000"),
                    "{files}"
                );
                assert!(memory.ends_with("not \"Linux version \""), "{memory}");
            }
            other => panic!("{other:?}"),
        }
        // _text 8 MiB further: past the memory.
        match file_symbols_check(LINK + (8 << 20), LINK + 0x1000) {
            Err(DescribeError::Mismatch { what, memory, .. }) => {
                assert_eq!(what, "_text");
                assert!(memory.starts_with("nothing readable at"), "{memory}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arm64_vmcoreinfo_is_recognized() {
        let arm = Vmcoreinfo::parse(
            b"OSRELEASE=6.12.118+deb13-arm64\nPAGESIZE=4096\n\
              NUMBER(kimage_voffset)=0xffff9ccd0dc00000\nNUMBER(MODULES_END)=0xffff800080000000\n",
        );
        assert!(is_arm64(&arm));
        assert_eq!(image_floor(&arm), 0xffff_8000_8000_0000);
        let x86 = Vmcoreinfo::parse(b"OSRELEASE=6.1.0-50-cloud-amd64\nNUMBER(phys_base)=0\n");
        assert!(!is_arm64(&x86));
    }
}
