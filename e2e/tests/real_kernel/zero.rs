//! No kernel options at all: `mapwalk --ram FILE` (and `--core FILE`) with neither
//! `--symbols` nor `--vmlinux` reads the kernel's own symbol table out of guest memory
//! (found through the VMCOREINFO in RAM).
//!
//! 1. The library: the table `Ksymtab::read` decodes equals the guest's own
//!    `/proc/kallsyms` (its kernel-image lines, in order: address, type, name), and a
//!    sample of names is found as the kallsyms copy gives them.
//! 2. The CLI on the paused guest's RAM file: `dump --all --json` with no kernel option
//!    prints exactly what it prints with `--symbols` (a copy of `/proc/kallsyms`), and
//!    `maps --json` lists the maps the guest reported. The 3 GiB guests' RAM lies above
//!    4 GiB too: read flat, the description is refused (`RamLayout`, with the high
//!    RAM missing) and the CLI reads the file with QEMU's layout, given no `--layout`.
//! 3. For the 512 MiB guests, the same on an ELF core written in the same pause.
//! 4. Before the pause, `maps --json` of the running guest's file, no kernel option.
//! 5. For the 512 MiB guests, the file cut short is refused (`truncated.rs`).

use super::cli::check_listing;
use mapwalk::describe::ksymtab::{AddressEncoding, Ksymtab, KsymtabLocation};
use mapwalk::describe::vmcoreinfo::find_vmcoreinfo;
use mapwalk::describe::{
    self, BtfSource, DescribeError, KernelSpec, MemoryHints, SymbolSource, DESCRIBE_SYMBOLS,
};
use mapwalk_core::arch::x86_64::X86Paging;
use mapwalk_core::kernel::{KernelAddrs, KernelView};
use mapwalk_core::{Paging, PhysRead};
use mapwalk_e2e::{self as e2e, GuestConfig};
use mapwalk_file::RamFile;
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

/// Linux 6.1, KASLR, 5-level paging: absolute per-CPU symbols.
#[test]
fn deb12_kaslr_5level_zero_config() {
    zero_config(&GuestConfig::DEB12_KASLR_5LEVEL);
}

/// Linux 6.12, KASLR, 5-level paging.
#[test]
fn deb13_kaslr_5level_zero_config() {
    zero_config(&GuestConfig::DEB13_KASLR_5LEVEL);
}

/// Linux 6.12 without KASLR, 4-level paging, 3 GiB: RAM above 4 GiB (no `--layout`).
#[test]
fn deb13_nokaslr_4level_3g_smp1_zero_config() {
    zero_config(&GuestConfig::DEB13_NOKASLR_4LEVEL_3G_SMP1);
}

/// Linux 6.1 without KASLR, 4-level paging.
#[test]
fn deb12_nokaslr_4level_zero_config() {
    zero_config(&GuestConfig::DEB12_NOKASLR_4LEVEL);
}

/// Linux 6.1, KASLR, 4-level paging, 4 vCPUs.
#[test]
fn deb12_kaslr_4level_smp4_zero_config() {
    zero_config(&GuestConfig::DEB12_KASLR_4LEVEL_SMP4);
}

/// Linux 6.1, KASLR, 5-level paging, 3 GiB: RAM above 4 GiB (no `--layout`).
#[test]
fn deb12_kaslr_5level_3g_smp1_zero_config() {
    zero_config(&GuestConfig::DEB12_KASLR_5LEVEL_3G_SMP1);
}

/// Names checked one by one against the kallsyms copy, besides the whole table.
const SAMPLE: &[&str] = &[
    "_text",
    "_stext",
    "map_idr",
    "init_top_pgt",
    "linux_banner",
    "__per_cpu_offset",
    "nr_cpu_ids",
    "page_offset_base",
    "phys_base",
    "__start_BTF",
    "__stop_BTF",
    "bpf_map_get",
];

fn run(test: &str, args: &[OsString]) -> (Output, f64) {
    let bin = e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"));
    let started = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .env("MAPWALK_TIMING", "1")
        .output()
        .unwrap_or_else(|e| panic!("{test}: run {}: {e}", bin.display()));
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{test}: mapwalk {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, secs)
}

fn args(source: &[OsString], rest: &[&str]) -> Vec<OsString> {
    source
        .iter()
        .cloned()
        .chain(rest.iter().map(OsString::from))
        .collect()
}

/// `dump --all --json` and `maps --json` on `source`, with no kernel option and with
/// `--symbols syms`: the dumps must be equal, the listing the guest's. Returns a
/// summary.
fn same_without_symbols(
    test: &str,
    source: &[OsString],
    syms: &Path,
    truth: &[mapwalk_e2e::GuestMap],
) -> String {
    let dump = ["dump", "--all", "--json"];
    let (zero, zero_secs) = run(test, &args(source, &dump));
    let mut with_syms = args(source, &dump);
    with_syms.extend([OsString::from("--symbols"), syms.into()]);
    let (by_syms, syms_secs) = run(test, &with_syms);
    assert!(
        zero.stdout == by_syms.stdout,
        "{test}: {source:?}: the dump without symbols ({} bytes) differs from the one with \
         --symbols ({} bytes), first at byte {:?}; stderr without: {}",
        zero.stdout.len(),
        by_syms.stdout.len(),
        zero.stdout
            .iter()
            .zip(&by_syms.stdout)
            .position(|(a, b)| a != b),
        String::from_utf8_lossy(&zero.stderr)
    );
    let dumped: serde_json::Value = serde_json::from_slice(&zero.stdout)
        .unwrap_or_else(|e| panic!("{test}: dump --all --json is not JSON: {e}"));
    let maps = dumped.as_array().map_or(0, Vec::len);
    assert!(
        maps >= truth.len(),
        "{test}: {maps} maps dumped, the guest reported {}",
        truth.len()
    );
    let (listing, _) = run(test, &args(source, &["maps", "--json"]));
    let listing: serde_json::Value = serde_json::from_slice(&listing.stdout)
        .unwrap_or_else(|e| panic!("{test}: maps --json is not JSON: {e}"));
    check_listing(test, &listing, truth);
    let stderr = String::from_utf8_lossy(&zero.stderr);
    let (timing, warnings): (Vec<&str>, Vec<&str>) = stderr
        .lines()
        .partition(|l| l.starts_with("mapwalk: timing:"));
    format!(
        "{} bytes of JSON for {maps} maps in {zero_secs:.2} s without symbols, {syms_secs:.2} s \
         with --symbols; warnings: {warnings:?}; phases without symbols:\n    {}",
        zero.stdout.len(),
        timing.join("\n    ")
    )
}

/// The table decoded from `mem` against the guest's `/proc/kallsyms`. Returns a
/// summary.
fn check_table<M: PhysRead>(test: &str, report: &mapwalk_e2e::GuestReport, mem: &M) -> String {
    let found = find_vmcoreinfo(mem, &[])
        .unwrap_or_else(|e| panic!("{test}: find_vmcoreinfo: {e}"))
        .unwrap_or_else(|| panic!("{test}: no VMCOREINFO in memory"));
    let vmcoreinfo_pa = found.pa.0;
    let info = &found.vmcoreinfo;
    let loc = KsymtabLocation::from_vmcoreinfo(info).unwrap_or_else(|e| panic!("{test}: {e}"));
    let phys_base = info
        .number("phys_base")
        .unwrap_or_else(|| panic!("{test}: no NUMBER(phys_base)"));
    let image = KernelAddrs {
        direct_map: None,
        ..KernelAddrs::x86_64(0, 0, phys_base)
    };
    let view = KernelView::new(mem, Paging::X86_64(X86Paging::new(0, false)), image);
    let started = Instant::now();
    let table = Ksymtab::read(&view, &loc).unwrap_or_else(|e| panic!("{test}: {e}"));
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    let wanted = table.find(DESCRIBE_SYMBOLS);
    let find_ms = started.elapsed().as_secs_f64() * 1e3;
    // Each name the description looks for is found exactly when the guest's own
    // /proc/kallsyms has it (the arm64 names are not an x86_64 kernel's).
    for (name, got) in DESCRIBE_SYMBOLS.iter().zip(&wanted) {
        assert_eq!(
            got.as_ref().map(|s| s.addr),
            report.kallsyms.get(name).map(|s| s.addr),
            "{test}: {name}"
        );
    }
    assert!(wanted[0].is_some(), "{test}: map_idr");

    // The whole table: /proc/kallsyms lists the kernel image's symbols first, in the
    // table's order, then those of modules (with a `[module]`).
    let core: Vec<_> = report
        .kallsyms
        .symbols()
        .iter()
        .filter(|s| s.module.is_none())
        .collect();
    assert_eq!(table.len(), core.len(), "{test}: symbols vs /proc/kallsyms");
    for (ours, theirs) in table.iter().zip(&core) {
        assert_eq!(
            (ours.addr, ours.kind, ours.name.as_str()),
            (theirs.addr, theirs.kind, theirs.name.as_str()),
            "{test}: symbol {} of the table vs /proc/kallsyms",
            ours.index
        );
    }
    let sample = table.find(SAMPLE);
    for (name, got) in SAMPLE.iter().zip(&sample) {
        let want = report.kallsyms.get(name);
        assert_eq!(
            got.as_ref().map(|s| (s.addr, s.kind)),
            want.map(|s| (s.addr, s.kind)),
            "{test}: {name}"
        );
        assert!(got.is_some(), "{test}: {name} is not in the table");
    }
    let per_cpu = table
        .iter()
        .filter(|s| s.addr < mapwalk_core::kernel::X86_START_KERNEL_MAP)
        .count();
    if let AddressEncoding::AbsolutePercpu { .. } = table.encoding() {
        assert!(
            per_cpu > 0,
            "{test}: absolute per-CPU symbols, but none below the image"
        );
    }
    format!(
        "{} symbols ({} bytes of names, {:?}, {per_cpu} per-CPU), read and checked in \
         {read_ms:.1} ms, {} names found in {find_ms:.1} ms; VMCOREINFO at {:#x}",
        table.len(),
        table.names_len(),
        table.encoding(),
        DESCRIBE_SYMBOLS.len(),
        vmcoreinfo_pa
    )
}

fn zero_config(config: &GuestConfig) {
    let test = format!("real_kernel::zero::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    // Writers and exact value checks of the shared guests take turns.
    let _values = e2e::value_lock();
    let started = Instant::now();
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let layout = guest.ram_layout().unwrap_or_else(|e| panic!("{test}: {e}"));
    let dir = guest.dir().join(format!("zero-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));

    // No --layout either: a 3 GiB guest's file, read as one range, leaves out the RAM
    // the kernel has at 4 GiB; the CLI then takes QEMU's layout for the kernel's RAM
    // (its e820 table) and checks it by describing again.
    let source: Vec<OsString> = vec!["--ram".into(), guest.ram_path().into()];
    let identity = layout.ranges().len() == 1 && layout.ranges()[0].gpa.0 == 0;
    if !identity {
        let flat = RamFile::options()
            .open(guest.ram_path())
            .unwrap_or_else(|e| panic!("{test}: RamFile: {e}"));
        let mut spec = KernelSpec::new(SymbolSource::SymbolFile(syms.clone()));
        spec.btf = Some(BtfSource::GuestMemory);
        match describe::describe(flat, &spec, &MemoryHints::default()) {
            Err(DescribeError::RamLayout { missing, ram, .. }) => {
                let high: Vec<(u64, u64)> = layout
                    .ranges()
                    .iter()
                    .filter(|r| r.gpa.0 >= 1 << 32)
                    .map(|r| (r.gpa.0, r.len))
                    .collect();
                assert_eq!(missing, high, "{test}: the RAM a flat read leaves out");
                let file_len = std::fs::metadata(guest.ram_path()).unwrap().len();
                let derived = describe::ram_layout::qemu_layout(&ram, file_len)
                    .unwrap_or_else(|| panic!("{test}: no layout for {ram:x?}"));
                // Every range of QEMU's own layout lies where the derived one puts it.
                for r in layout.ranges() {
                    assert!(
                        derived.ranges().iter().any(|d| d.gpa.0 <= r.gpa.0
                            && r.gpa.0 + r.len <= d.gpa.0 + d.len
                            && d.offset + (r.gpa.0 - d.gpa.0) == r.offset),
                        "{test}: QEMU's range {r:?} is not where {derived:?} puts it"
                    );
                }
            }
            // KASLR put the kernel image in the part above 4 GiB: a flat read fails on
            // the first read there, before the RAM check (the CLI then tries the
            // layouts QEMU could have given the file, each checked by a description).
            Err(e) if e.to_string().contains("not backed by memory") => {
                eprintln!("{test}: a flat read fails before the RAM check: {e}");
            }
            other => panic!("{test}: a flat read of a split file: {other:?}"),
        }
        // The candidates for when a flat read fails before the RAM check: QEMU's own
        // layout (q35) is the first, and a description through it passes the check.
        let candidates = describe::ram_layout::qemu_candidates(
            std::fs::metadata(guest.ram_path()).unwrap().len(),
        );
        assert_eq!(
            candidates.first().map(|c| c.ranges()),
            Some(layout.ranges()),
            "{test}: the first candidate layout"
        );
        let first = RamFile::options()
            .layout(candidates[0].clone())
            .open(guest.ram_path())
            .unwrap_or_else(|e| panic!("{test}: RamFile: {e}"));
        let mut spec = KernelSpec::new(SymbolSource::GuestMemory);
        spec.btf = Some(BtfSource::GuestMemory);
        describe::describe(first, &spec, &MemoryHints::default())
            .unwrap_or_else(|e| panic!("{test}: described through the first candidate: {e}"));
        // The layout of another machine type, given: refused, not read.
        let file_len = std::fs::metadata(guest.ram_path()).unwrap().len();
        let bin = e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"));
        let out = Command::new(bin)
            .args(&source)
            .args(["--layout", &format!("0:0:{file_len:#x}"), "maps"])
            .output()
            .unwrap_or_else(|e| panic!("{test}: run mapwalk: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{test}: a wrong --layout: {stderr}"
        );
        // Refused by the RAM check, or (the kernel image placed in the part the layout
        // leaves out) by the first read there; never read, in one line.
        assert!(
            (stderr.contains("does not hold all the kernel's RAM")
                || stderr.contains("not backed by memory"))
                && stderr.lines().count() == 1
                && out.stdout.is_empty(),
            "{test}: a wrong --layout: {stderr}"
        );
    }
    let ram = RamFile::options()
        .layout(layout.clone())
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: RamFile: {e}"));

    // The running guest's file: the listing, with no kernel option.
    let (running, _) = run(test, &args(&source, &["maps", "--json"]));
    let running: serde_json::Value = serde_json::from_slice(&running.stdout)
        .unwrap_or_else(|e| panic!("{test}: maps --json of the running guest: {e}"));
    check_listing(test, &running, &truth);

    let paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let table = check_table(test, report, &ram);
    let ram_summary = same_without_symbols(test, &source, &syms, &truth);
    let cut_summary = if identity {
        super::truncated::truncated_files(test, report, &ram, guest.ram_path(), &dir)
    } else {
        "not cut (3 GiB)".to_owned()
    };
    let core_summary = if identity {
        let core = dir.join("core.elf");
        let mut paused = paused;
        paused
            .dump_guest_memory(&core)
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        drop(paused);
        let source = vec![OsString::from("--core"), core.clone().into()];
        let summary = same_without_symbols(test, &source, &syms, &truth);
        let _ = std::fs::remove_file(&core);
        summary
    } else {
        drop(paused);
        "no core (3 GiB)".to_owned()
    };
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: kernel {}: table: {table}\n  RAM file: {ram_summary}\n  ELF core: \
         {core_summary}\n  cut short: {cut_summary}\n  all in {:.1} s",
        guest.release(),
        started.elapsed().as_secs_f64()
    );
}
