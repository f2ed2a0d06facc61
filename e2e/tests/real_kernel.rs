//! Real Debian kernels under QEMU: the core's x86_64 page walk and kernel view against
//! what the guest reports about itself (`/proc/version`, `/proc/kallsyms`,
//! `/proc/iomem`); in the module `bpf` (`real_kernel/bpf.rs`), BPF map discovery and
//! ARRAY reads and writes against the maps the guest created; in the module `htab`
//! (`real_kernel/htab.rs`), hash and per-CPU maps byte-exact per key and per CPU; in
//! the module `inguest` (`real_kernel/inguest.rs`), a static `mapwalk` run inside the
//! guest, whose live view must equal the view from outside byte for byte; in the
//! module `zero` (`real_kernel/zero.rs`), the CLI with no kernel option (the kernel's
//! own symbol table read from memory) against the CLI with a kallsyms copy.
//! In the module `arm64` (`real_kernel/arm64.rs`), an arm64 guest (Linux 6.12, 52-bit
//! VAs with LPA2) read from outside by the library and the CLI, byte for byte; in the
//! module `arm64_kernels`, three more arm64 boots (Linux 6.1 through its System.map,
//! 16 KiB pages, 48-bit VAs without KASLR).
//! Nothing here is a per-kernel constant.
//!
//! Each configuration boots one guest (shared by every test of this binary that names
//! it); configurations boot in parallel. Prerequisites (QEMU, root to install
//! it, the Debian registry) missing: the tests say so and pass, except under `CI=true`.
//! See `e2e/README.md`.

use mapwalk::kallsyms::{Symbol, SymbolTable};
use mapwalk::qmp::X86ControlRegs;
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelRead, KernelView, X86_START_KERNEL_MAP};
use mapwalk_core::{arch, Kva, Pa, Paging, PhysRead, Ram, Translation};
use mapwalk_e2e::{self as e2e, GuestConfig, GuestReport};
use std::collections::BTreeMap;

#[path = "real_kernel/arena.rs"]
mod arena;
#[path = "real_kernel/arm64.rs"]
mod arm64;
#[path = "real_kernel/arm64_kernels.rs"]
mod arm64_kernels;
#[path = "real_kernel/arm64_types.rs"]
mod arm64_types;
#[path = "real_kernel/bpf.rs"]
mod bpf;
#[path = "real_kernel/bytes.rs"]
mod bytes;
#[path = "real_kernel/churn.rs"]
mod churn;
#[path = "real_kernel/cli.rs"]
mod cli;
#[path = "real_kernel/corrupt.rs"]
mod corrupt;
#[path = "real_kernel/describe.rs"]
mod describe;
#[path = "real_kernel/dump.rs"]
mod dump;
#[path = "real_kernel/history.rs"]
mod history;
#[path = "real_kernel/htab.rs"]
mod htab;
#[path = "real_kernel/inguest.rs"]
mod inguest;
#[path = "real_kernel/kvm.rs"]
mod kvm;
#[path = "real_kernel/objmaps.rs"]
mod objmaps;
#[path = "real_kernel/process.rs"]
mod process;
#[path = "real_kernel/progs.rs"]
mod progs;
#[path = "real_kernel/queue.rs"]
mod queue;
#[path = "real_kernel/ringbuf.rs"]
mod ringbuf;
#[path = "real_kernel/stack.rs"]
mod stack;
#[path = "real_kernel/storage.rs"]
mod storage;
#[path = "real_kernel/structops.rs"]
mod structops;
#[path = "real_kernel/truncated.rs"]
mod truncated;
#[path = "real_kernel/zero.rs"]
mod zero;

const MIB: u64 = 1 << 20;

#[test]
fn deb12_kaslr_5level_translation() {
    translation(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb12_nokaslr_4level_translation() {
    translation(&GuestConfig::DEB12_NOKASLR_4LEVEL);
}

#[test]
fn deb13_kaslr_5level_translation() {
    translation(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_4level_smp4_translation() {
    translation(&GuestConfig::DEB12_KASLR_4LEVEL_SMP4);
}

fn translation(config: &GuestConfig) {
    let test = format!("real_kernel::{}", config.name);
    let Some(guest) = e2e::guest(&test, config) else {
        return;
    };
    let report = guest.report();
    let syms = &report.kallsyms;
    let sym = |name: &str| {
        syms.lookup(name)
            .unwrap_or_else(|| panic!("{test}: the guest's kallsyms has no {name}"))
    };

    // The guest stands still while its registers and RAM are copied; the checks run on
    // the copy, so it may go on afterwards (`cont` when `paused` drops).
    let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let regs = paused.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
    let ram = paused.read_ram().unwrap_or_else(|e| panic!("{test}: {e}"));
    drop(paused);

    assert_eq!(
        regs.la57(),
        config.five_level,
        "{test}: CR4={:#x}: LA57 should be {} (cmdline {:?})",
        regs.cr4,
        config.five_level,
        report.cmdline()
    );
    let ram_len = u64::try_from(ram.len()).unwrap();
    assert_eq!(
        ram_len,
        u64::from(config.mem_mib) * MIB,
        "{test}: RAM file size"
    );
    let mem = Ram::new(Pa(0), ram);
    let (view, phys_base, page_offset_base) = kernel_view(&test, syms, regs, &mem, ram_len);
    eprintln!(
        "{test}: CR3={:#x} CR4={:#x} phys_base={:#x} page_offset_base={:#x} _text={:#x}",
        regs.cr3,
        regs.cr4,
        phys_base,
        page_offset_base,
        sym("_text")
    );

    check_against_iomem(&test, report, &view);
    check_banner(&test, report, &view, sym("linux_banner"));
    if let Some(l5) = syms.lookup("__pgtable_l5_enabled") {
        let value = view
            .read_kernel_u32(Kva(l5))
            .unwrap_or_else(|e| panic!("{test}: read __pgtable_l5_enabled: {e}"));
        assert_eq!(
            value != 0,
            regs.la57(),
            "{test}: __pgtable_l5_enabled={value} but CR4.LA57={}",
            regs.la57()
        );
    }
    check_image_walks(&test, syms, &view);
    check_direct_map_walks(&test, report, &view, ram_len);
}

/// The kernel view of a paused guest's memory `mem` (`ram_len` bytes from physical 0),
/// from its control registers and kallsyms alone: `phys_base` by a page walk to the
/// kernel's own variable (which breaks the loop), then `page_offset_base` read through
/// the image mapping. Returns the view, `phys_base` and `page_offset_base`.
fn kernel_view<M: PhysRead + Copy>(
    test: &str,
    syms: &SymbolTable,
    regs: X86ControlRegs,
    mem: M,
    ram_len: u64,
) -> (KernelView<M>, u64, u64) {
    let sym = |name: &str| {
        syms.lookup(name)
            .unwrap_or_else(|| panic!("{test}: the guest's kallsyms has no {name}"))
    };
    let paging = Paging::X86_64(X86Paging::new(regs.cr3, regs.la57()));
    let image_only = KernelAddrs {
        direct_map: None,
        ..KernelAddrs::x86_64(0, 0, 0)
    };
    let mut view = KernelView::new(mem, paging, image_only);
    let phys_base = view
        .resolve_phys_base(Kva(sym("phys_base")))
        .unwrap_or_else(|e| panic!("{test}: resolve_phys_base (CR3={:#x}): {e}", regs.cr3));
    let page_offset_base = view
        .read_kernel_u64(Kva(sym("page_offset_base")))
        .unwrap_or_else(|e| panic!("{test}: read page_offset_base: {e}"));
    let addrs = KernelAddrs::x86_64(page_offset_base, ram_len, phys_base);
    (
        KernelView::new(mem, paging, addrs),
        phys_base,
        page_offset_base,
    )
}

/// The kernel's own `Kernel code` / `Kernel data` / `Kernel bss` resources are the
/// physical addresses of `_text`, `_sdata` and `__bss_start`.
fn check_against_iomem<M: PhysRead>(test: &str, report: &GuestReport, view: &KernelView<M>) {
    for (resource, symbol) in [
        ("Kernel code", "_text"),
        ("Kernel data", "_sdata"),
        ("Kernel bss", "__bss_start"),
    ] {
        let ranges = report.iomem(resource);
        let &[(start, _)] = ranges.as_slice() else {
            panic!(
                "{test}: /proc/iomem has {} {resource:?} ranges",
                ranges.len()
            )
        };
        let va = report
            .kallsyms
            .lookup(symbol)
            .unwrap_or_else(|| panic!("{test}: no {symbol}"));
        let pa = view
            .kva_to_pa(Kva(va))
            .unwrap_or_else(|e| panic!("{test}: {symbol}: {e}"))
            .start;
        assert_eq!(
            pa,
            Pa(start),
            "{test}: {symbol}={va:#x} -> {pa:?}, but /proc/iomem {resource:?} starts at {start:#x}"
        );
    }
}

/// `linux_banner`, read through the image mapping and through its direct-map alias,
/// is the `/proc/version` line the guest printed.
fn check_banner<M: PhysRead>(test: &str, report: &GuestReport, view: &KernelView<M>, banner: u64) {
    let mut buf = vec![0u8; 1024];
    view.read_kernel(Kva(banner), &mut buf)
        .unwrap_or_else(|e| panic!("{test}: read linux_banner: {e}"));
    let text =
        String::from_utf8_lossy(&buf[..buf.iter().position(|&b| b == 0).unwrap_or(buf.len())])
            .into_owned();
    assert_eq!(
        text.lines().next().unwrap_or(""),
        report.version(),
        "{test}: linux_banner vs /proc/version"
    );

    let pa = view.kva_to_pa(Kva(banner)).unwrap().start;
    let direct = view.addrs().direct_map.unwrap().virt.0 + pa.0;
    let mut alias = vec![0u8; buf.len()];
    view.read_kernel(Kva(direct), &mut alias)
        .unwrap_or_else(|e| panic!("{test}: read the banner's alias: {e}"));
    assert_eq!(
        alias, buf,
        "{test}: linux_banner's direct-map alias differs"
    );
}

/// The linear address of `va` and what the page walk says must agree.
fn compare<M: PhysRead>(
    view: &KernelView<M>,
    va: u64,
    what: &str,
    sizes: &mut BTreeMap<u32, usize>,
) -> Option<String> {
    let linear = view.kva_to_pa(Kva(va)).map(|r| r.start);
    let walked = arch::translate(view.mem(), view.paging(), Kva(va));
    match (linear, walked) {
        (Ok(lin), Ok(Translation::Mapped(m))) if m.pa == lin => {
            *sizes.entry(m.page_shift).or_default() += 1;
            None
        }
        (lin, walked) => Some(format!("{what} {va:#x}: linear {lin:?}, walk {walked:?}")),
    }
}

fn report_mismatches(
    test: &str,
    what: &str,
    checked: usize,
    bad: &[String],
    sizes: &BTreeMap<u32, usize>,
) {
    let sizes: Vec<String> = sizes
        .iter()
        .map(|(shift, n)| format!("{n} in {} KiB pages", (1u64 << shift) / 1024))
        .collect();
    eprintln!(
        "{test}: {what}: {checked} addresses, {} agree ({})",
        checked - bad.len(),
        sizes.join(", ")
    );
    assert!(
        bad.is_empty(),
        "{test}: {what}: {} of {checked} disagree; first ones:\n{}",
        bad.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// Up to `n` items spread evenly over `items`, the last one included.
fn spread<T: Copy>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    let mut out: Vec<T> = (0..n).map(|i| items[i * items.len() / n]).collect();
    out.push(items[items.len() - 1]);
    out
}

/// Text, read-only data, data and bss symbols of the kernel image: the page walk gives
/// `va - __START_KERNEL_map + phys_base`. (Init sections and the gaps between sections
/// are unmapped after boot: only symbols inside the live sections count.)
fn check_image_walks<M: PhysRead>(test: &str, syms: &SymbolTable, view: &KernelView<M>) {
    type Kind = fn(&Symbol) -> bool;
    let sections: [(&str, &str, &str, Kind); 4] = [
        ("text", "_stext", "_etext", Symbol::is_text),
        ("rodata", "__start_rodata", "__end_rodata", Symbol::is_data),
        ("data", "_sdata", "_edata", Symbol::is_data),
        ("bss", "__bss_start", "__bss_stop", Symbol::is_data),
    ];
    let mut sizes = BTreeMap::new();
    let mut bad = Vec::new();
    let mut checked = 0;
    for (name, start, end, kind) in sections {
        let lo = syms
            .lookup(start)
            .unwrap_or_else(|| panic!("{test}: no {start}"));
        let hi = syms
            .lookup(end)
            .unwrap_or_else(|| panic!("{test}: no {end}"));
        assert!(
            lo >= X86_START_KERNEL_MAP && lo < hi,
            "{test}: {start}={lo:#x} {end}={hi:#x}"
        );
        let inside: Vec<&Symbol> = syms
            .symbols()
            .iter()
            .filter(|s| s.module.is_none() && kind(s) && (lo..hi).contains(&s.addr))
            .collect();
        assert!(
            inside.len() >= 50,
            "{test}: only {} {name} symbols",
            inside.len()
        );
        for s in spread(&inside, 100) {
            checked += 1;
            bad.extend(compare(
                view,
                s.addr,
                &format!("{name} symbol {}", s.name),
                &mut sizes,
            ));
        }
    }
    report_mismatches(test, "kernel-image symbols", checked, &bad, &sizes);
}

/// Direct-map addresses across RAM: inside the guest's `System RAM` the walk must map
/// them where the arithmetic says; elsewhere below the end of RAM it may leave them
/// unmapped, but what it maps must agree.
fn check_direct_map_walks<M: PhysRead>(
    test: &str,
    report: &GuestReport,
    view: &KernelView<M>,
    ram_len: u64,
) {
    let base = view.addrs().direct_map.unwrap().virt.0;
    let ram = report.system_ram();
    let total: u64 = ram.iter().map(|(lo, hi)| hi - lo).sum();
    assert!(
        total > ram_len / 2,
        "{test}: /proc/iomem System RAM {ram:x?}"
    );
    let mut sizes = BTreeMap::new();
    let mut bad = Vec::new();
    let mut checked = 0;
    let mut pas = Vec::new();
    // Both ends of each range and about 400 points in between, at varying page offsets.
    let step = (total / 400).max(4096);
    for &(lo, hi) in &ram {
        pas.extend([lo, hi - 1]);
        let mut pa = lo;
        let mut k = 0u64;
        while pa < hi {
            pas.push(pa);
            k += 1;
            pa = lo + k * step + (k * 0x2a8) % 4096;
        }
    }
    for pa in pas {
        assert!(
            pa < ram_len,
            "{test}: System RAM at {pa:#x} beyond the {ram_len:#x}-byte RAM file"
        );
        checked += 1;
        bad.extend(compare(
            view,
            base + pa,
            &format!("direct map (pa {pa:#x})"),
            &mut sizes,
        ));
    }
    // Outside System RAM (reserved, ROM, ACPI): mapped or not, never elsewhere.
    let mut outside = 0;
    for pa in (0..ram_len).step_by(64 * 1024) {
        if ram.iter().any(|&(lo, hi)| (lo..hi).contains(&pa)) {
            continue;
        }
        outside += 1;
        if let Ok(Translation::Mapped(m)) =
            arch::translate(view.mem(), view.paging(), Kva(base + pa))
        {
            if m.pa != Pa(pa) {
                bad.push(format!("direct map outside RAM (pa {pa:#x}): walk {m:?}"));
            }
        }
    }
    report_mismatches(
        test,
        &format!("direct map ({outside} more outside System RAM)"),
        checked,
        &bad,
        &sizes,
    );
}
