//! More arm64 kernels under `qemu-system-aarch64 -M virt` (TCG), each booted once and
//! shared by its tests, each read from outside as the Linux 6.12 4 KiB LPA2 guest of
//! `real_kernel/arm64.rs` is (the guest's `/init` makes the maps and reads them back;
//! no in-guest `mapwalk`, to keep the boots short):
//!
//! - Debian 12's Linux 6.1 (4 KiB pages, 48-bit VAs, four levels, KASLR). Built without
//!   CONFIG_KALLSYMS_ALL: neither `/proc/kallsyms` nor the symbol table in memory has
//!   `map_idr`. Its symbols come from its link-time `System.map` (Debian's -dbg
//!   package), slid by the VMCOREINFO's `KERNELOFFSET`; so do the -dbg package's
//!   vmlinux's (`--vmlinux`). Zero configuration is refused
//!   with a message that names `--symbols` and `--vmlinux`, and so is a System.map of
//!   another build, or one whose slid `linux_banner` does not read as the banner.
//! - Debian 13's `arm64-16k` Linux 6.12 (16 KiB pages, 52-bit VAs with LPA2, KASLR).
//! - Debian 13's 4 KiB Linux 6.12 on `-cpu neoverse-n1` (no FEAT_LPA2: the 52-bit kernel
//!   falls back to 48-bit VAs) with `nokaslr`.
//!
//! Each: the library's description (paging, slide, the start of the kernel's code
//! where `/proc/iomem` puts `Kernel code`, every map id); `maps --json` and `progs
//! --json` (`prog_idr`; the guest's two socket filters) of the running guest; `dump --all --json` of the paused guest from the RAM file and from an ELF
//! core of the same pause, every entry byte for byte as the guest read it back; zero
//! configuration (6.12) printing the same bytes as with the guest's kallsyms.

use super::arm64::{arena_id, check_dump_all, kallsyms_file, run_cli, truth};
use super::cli::check_listing;
use super::storage::storage_truth;
use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo, Vmcoreinfo};
use mapwalk::describe::{describe, KernelSpec, MemoryHints, SymbolSource};
use mapwalk_core::{arch, Kva, Pa, Paging, Translation};
use mapwalk_e2e::arm64::{arm64_guest, Arm64Config, Arm64Guest, VIRT_RAM_BASE};
use mapwalk_file::RamFile;
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEB12: Arm64Config = Arm64Config::DEB12_ARM64_4K;
const K16: Arm64Config = Arm64Config::DEB13_ARM64_16K_LPA2;
const N1: Arm64Config = Arm64Config::DEB13_ARM64_4K_48BIT_NOKASLR;

/// What the description of a guest must settle on.
struct Expect {
    /// `/proc/version` starts with this.
    version: &'static str,
    /// VMCOREINFO `NUMBER(VA_BITS)` (the configured VA size).
    config_va_bits: u64,
    /// VMCOREINFO `PAGESIZE`.
    page_size: u64,
    /// VMCOREINFO `NUMBER(PHYS_OFFSET)`: where RAM starts, or lowered by `2^52 - 2^48`
    /// for a 52-bit kernel running with 48-bit VAs (its linear map then starts at
    /// `0xffff_0000_0000_0000`, not `-(1 << 52)`).
    phys_offset: u64,
    /// The paging: LPA2, VA bits, levels, start level, granule shift.
    paging: (bool, u32, u32, i32, u32),
    /// Whether KASLR moved the kernel (`KERNELOFFSET` not 0).
    kaslr: bool,
}

/// The guest's RAM file.
fn ram(test: &str, guest: &Arm64Guest) -> RamFile {
    RamFile::options()
        .layout(guest.ram_layout().unwrap())
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: RamFile: {e}"))
}

/// The VMCOREINFO found in the guest's RAM.
fn vmcoreinfo(test: &str, guest: &Arm64Guest) -> Vmcoreinfo {
    find_vmcoreinfo(&ram(test, guest), &[])
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .unwrap_or_else(|| panic!("{test}: no VMCOREINFO in RAM"))
        .vmcoreinfo
}

/// The library's description with `symbols` against the guest's own report: the
/// VMCOREINFO's geometry, the paging state, the slide, the root, the start of the
/// kernel's code (`code`: its name and runtime address; `_text` on 6.12, `_stext` on
/// 6.1, which maps and reserves the image from there) where `/proc/iomem` puts
/// `Kernel code`, every map id. Returns the slide.
fn check_describe(
    test: &str,
    guest: &Arm64Guest,
    symbols: SymbolSource,
    code: (&str, u64),
    expect: &Expect,
) -> u64 {
    let (code_name, code_va) = code;
    let report = guest.report();
    assert!(
        report.version().starts_with(expect.version) && report.version().contains("arm64"),
        "{test}: {}",
        report.version()
    );
    let info = vmcoreinfo(test, guest);
    let offset = info
        .kernel_offset()
        .unwrap_or_else(|| panic!("{test}: no KERNELOFFSET in the VMCOREINFO"));
    assert_eq!(
        (
            info.number("VA_BITS"),
            info.number("PHYS_OFFSET"),
            info.page_size(),
            offset != 0,
        ),
        (
            Some(expect.config_va_bits),
            Some(expect.phys_offset),
            Some(expect.page_size),
            expect.kaslr
        ),
        "{test}: VMCOREINFO (VA_BITS, PHYS_OFFSET, PAGESIZE, KASLR)"
    );
    let spec = KernelSpec::new(symbols);
    let kernel = describe(ram(test, guest), &spec, &MemoryHints::default())
        .unwrap_or_else(|e| panic!("{test}: describe: {e}"));
    assert!(kernel.warnings.is_empty(), "{test}: {:?}", kernel.warnings);
    let Paging::Aarch64(p) = *kernel.view.paging() else {
        panic!("{test}: not aarch64 paging: {:?}", kernel.view.paging());
    };
    assert_eq!(
        (
            p.lpa2(),
            p.va_bits(),
            p.levels(),
            p.start_level(),
            p.granule_shift()
        ),
        expect.paging,
        "{test}: paging {p:?}"
    );
    let voffset = info.number("kimage_voffset").unwrap();
    let swapper = info
        .symbol("swapper_pg_dir")
        .unwrap_or_else(|| panic!("{test}: no SYMBOL(swapper_pg_dir)"));
    assert_eq!(p.root(), Pa(swapper.wrapping_sub(voffset)), "{test}: root");
    assert_eq!(
        kernel.symbols.lookup(code_name),
        Some(Kva(code_va)),
        "{test}: {code_name}"
    );
    let code = report.iomem("Kernel code");
    let Ok(Translation::Mapped(m)) =
        arch::translate(kernel.view.mem(), kernel.view.paging(), Kva(code_va))
    else {
        panic!("{test}: {code_name} {code_va:#x} does not translate");
    };
    assert_eq!(
        (m.pa.0, m.pa.0.wrapping_add(voffset)),
        (code[0].0, code_va),
        "{test}: {code_name} vs Kernel code {code:x?} and kimage_voffset"
    );
    let ids: Vec<u32> = kernel
        .bpf()
        .collect_maps()
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .maps
        .iter()
        .map(|m| m.id)
        .collect();
    let mut want: Vec<u32> = truth(test, guest).iter().map(|m| m.id).collect();
    want.extend(arena_id(guest.report()));
    want.sort_unstable();
    assert_eq!(ids, want, "{test}: map ids");
    kernel.slide
}

/// The CLI's source arguments for the guest's RAM file, then `symbols` (`--symbols
/// FILE`, or nothing for zero configuration).
fn ram_args(guest: &Arm64Guest, symbols: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--ram".into(),
        guest.ram_path().into(),
        "--layout".into(),
        guest.layout_arg().into(),
    ];
    if let Some(path) = symbols {
        args.push("--symbols".into());
        args.push(path.into());
    }
    args
}

fn json(test: &str, bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{test}: not JSON ({e})"))
}

/// The CLI with `--symbols symbols` against the guest: the running guest's listing of
/// maps and of programs;
/// in one pause, `dump --all --json` from the RAM file, an ELF core's listing and
/// dump, and (when `zero`) the listing and dump with no kernel option, which must be
/// the same bytes.
fn check_cli(test: &str, guest: &Arm64Guest, symbols: &Path, zero: bool) {
    let truth = truth(test, guest);
    let with = |source: Vec<OsString>, rest: &[&str]| {
        let mut args = source;
        args.extend(rest.iter().map(Into::into));
        run_cli(test, &args)
    };
    let listing = json(
        test,
        &with(ram_args(guest, Some(symbols)), &["maps", "--json"]),
    );
    check_listing(test, &listing, &truth);
    assert_eq!(
        listing.as_array().map(Vec::len),
        Some(truth.len() + usize::from(arena_id(guest.report()).is_some())),
        "{test}: maps --json lists other maps than the guest made: {listing}"
    );
    // The programs (from prog_idr), as the guest's own bpf() reported them.
    let progs: Vec<Value> = guest
        .report()
        .sections
        .get("bpf-progs")
        .unwrap_or_else(|| panic!("{test}: the guest wrote no bpf-progs section"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| super::progs::expected(test, l))
        .collect();
    assert_eq!(progs.len(), 2, "{test}: the guest's programs: {progs:?}");
    let listed = json(
        test,
        &with(ram_args(guest, Some(symbols)), &["progs", "--json"]),
    );
    let listed = listed.as_array().cloned().unwrap_or_default();
    for want in &progs {
        let got = listed.iter().find(|p| p["id"] == want["id"]);
        assert_eq!(got, Some(want), "{test}: progs --json: {listed:?}");
    }
    // With the programs of the struct_ops map (`structops.c`), the guest's only ones.
    let struct_ops_progs = super::progs::struct_ops_progs(guest.report());
    assert_eq!(
        listed.len(),
        progs.len() + struct_ops_progs,
        "{test}: progs --json: {listed:?}"
    );
    let core_path = guest.dir().join(format!("core-{}.elf", std::process::id()));
    let core_args = || -> Vec<OsString> {
        vec![
            "--core".into(),
            core_path.clone().into(),
            "--symbols".into(),
            symbols.into(),
        ]
    };
    let (dump, paused_maps, core_dump, core_listing, zero_out) = {
        let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        let dump = with(ram_args(guest, Some(symbols)), &["dump", "--all", "--json"]);
        let paused_maps = with(ram_args(guest, Some(symbols)), &["maps", "--json"]);
        let zero_out = zero.then(|| {
            (
                with(ram_args(guest, None), &["maps", "--json"]),
                with(ram_args(guest, None), &["dump", "--all", "--json"]),
            )
        });
        if let Err(e) = paused.dump_guest_memory(&core_path) {
            let _ = std::fs::remove_file(&core_path);
            panic!("{test}: {e}");
        }
        drop(paused);
        let core_dump = with(core_args(), &["dump", "--all", "--json"]);
        let core_listing = with(core_args(), &["maps", "--json"]);
        let _ = std::fs::remove_file(&core_path);
        (dump, paused_maps, core_dump, core_listing, zero_out)
    };
    let storage = storage_truth(test, guest.report());
    check_dump_all(
        test,
        &json(test, &dump),
        &truth,
        &storage,
        None,
        arena_id(guest.report()),
    );
    assert!(core_dump == dump, "{test}: --core dump vs --ram dump");
    assert!(
        core_listing == paused_maps,
        "{test}: --core listing vs --ram listing"
    );
    if let Some((zero_maps, zero_dump)) = zero_out {
        assert!(
            zero_maps == paused_maps,
            "{test}: maps --json differs without --symbols"
        );
        assert!(
            zero_dump == dump,
            "{test}: dump --all --json differs without --symbols"
        );
    }
}

/// The host's `mapwalk` with `args`, which must fail: its stderr.
fn cli_refused(test: &str, args: &[OsString]) -> String {
    let bin = mapwalk_e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("{test}: {e}"));
    let out = Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{test}: run {}: {e}", bin.display()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && out.stdout.is_empty(),
        "{test}: mapwalk {args:?} did not refuse ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{test}: not one line: {stderr}"
    );
    stderr
}

/// Debian 12's System.map, which the tests of that guest need.
fn system_map<'g>(test: &str, guest: &'g Arm64Guest) -> &'g Path {
    guest.system_map().unwrap_or_else(|| {
        panic!(
            "{test}: setup.sh gave no System.map for {}",
            guest.release()
        )
    })
}

/// The link-time address of `name` in a `System.map` text.
fn map_addr(map: &str, name: &str) -> Option<u64> {
    map.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (addr, _, n) = (f.next()?, f.next()?, f.next()?);
        (n == name).then(|| u64::from_str_radix(addr, 16).ok())?
    })
}

const DEB12_EXPECT: Expect = Expect {
    version: "Linux version 6.1.",
    config_va_bits: 48,
    page_size: 4096,
    phys_offset: VIRT_RAM_BASE,
    paging: (false, 48, 4, 0, 12),
    kaslr: true,
};

#[test]
fn deb12_arm64_4k_describe_with_system_map() {
    let test = "real_kernel::arm64_kernels::deb12_arm64_4k_describe_with_system_map";
    let Some(guest) = arm64_guest(test, &DEB12) else {
        return;
    };
    // The premise: no data symbols in the guest's own kallsyms (nor _text: it starts
    // at _stext).
    let kallsyms = &guest.report().kallsyms;
    assert!(
        kallsyms.lookup("map_idr").is_none() && kallsyms.lookup("_stext").is_some(),
        "{test}: the guest's kallsyms has map_idr, or no _stext"
    );
    let map_path = system_map(test, guest);
    let map = std::fs::read_to_string(map_path).unwrap();
    let link = |name: &str| {
        map_addr(&map, name).unwrap_or_else(|| panic!("{test}: no {name} in System.map"))
    };
    // How far the kernel moved, by the guest's own _stext.
    let stext = kallsyms.lookup("_stext").unwrap();
    let moved = stext.wrapping_sub(link("_stext"));
    let slide = check_describe(
        test,
        guest,
        SymbolSource::SymbolFile(map_path.to_path_buf()),
        ("_stext", stext),
        &DEB12_EXPECT,
    );
    // Slid by the VMCOREINFO's KERNELOFFSET, which moved _stext from its link-time
    // address to where the guest's kallsyms puts it.
    let info = vmcoreinfo(test, guest);
    assert_eq!(
        (Some(slide), slide),
        (info.kernel_offset(), moved),
        "{test}: slide"
    );
    // The -dbg package's vmlinux (beside the System.map): its symbols slid the same,
    // its .BTF, its banner equal to the one in memory.
    let vmlinux = map_path.with_file_name("vmlinux");
    let slide = check_describe(
        test,
        guest,
        SymbolSource::Vmlinux(vmlinux),
        ("_stext", stext),
        &DEB12_EXPECT,
    );
    assert_eq!(slide, moved, "{test}: --vmlinux slide");
}

#[test]
fn deb12_arm64_4k_cli_with_system_map() {
    let test = "real_kernel::arm64_kernels::deb12_arm64_4k_cli_with_system_map";
    let Some(guest) = arm64_guest(test, &DEB12) else {
        return;
    };
    check_cli(test, guest, system_map(test, guest), false);
}

#[test]
fn deb12_arm64_4k_refusals() {
    let test = "real_kernel::arm64_kernels::deb12_arm64_4k_refusals";
    let Some(guest) = arm64_guest(test, &DEB12) else {
        return;
    };
    // Zero configuration: the symbol table in memory has no data symbols.
    let mut args = ram_args(guest, None);
    args.push("maps".into());
    let err = cli_refused(test, &args);
    for want in [
        "CONFIG_KALLSYMS_ALL",
        "no map_idr",
        "--symbols",
        "--vmlinux",
    ] {
        assert!(err.contains(want), "{test}: no {want:?} in: {err}");
    }
    // The guest's kallsyms: the same lack, by name.
    let syms = kallsyms_file(test, guest, "refusals");
    let mut args = ram_args(guest, Some(&syms));
    args.push("maps".into());
    let err = cli_refused(test, &args);
    let _ = std::fs::remove_file(&syms);
    assert!(err.contains("map_idr"), "{test}: {err}");
    // A System.map of another build (every address 2 MiB further): refused by the
    // VMCOREINFO's symbols, naming the option.
    let map = std::fs::read_to_string(system_map(test, guest)).unwrap();
    let err = refused_with(test, guest, &map, |_| 2 << 20);
    assert!(
        err.contains("--symbols") && err.contains("do not match") && err.contains("slides tried"),
        "{test}: {err}"
    );
    // One whose every name the VMCOREINFO checks agrees, but not linux_banner's: what
    // the slid address reads is not the banner.
    let err = refused_with(test, guest, &map, |name| {
        if name == "linux_banner" {
            0x100
        } else {
            0
        }
    });
    assert!(
        err.contains("--symbols")
            && err.contains("linux_banner at 0xffff8")
            && err.contains("not \"Linux version \""),
        "{test}: {err}"
    );
}

/// The CLI's refusal (`maps`) of `map` with each kernel-image address moved by
/// `by(name)`: its one line.
fn refused_with(test: &str, guest: &Arm64Guest, map: &str, by: impl Fn(&str) -> u64) -> String {
    let moved: String = map
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, ' ').collect();
            match (f.as_slice(), u64::from_str_radix(f[0], 16)) {
                ([_, kind, name], Ok(a)) if a >> 63 == 1 => {
                    format!("{:016x} {kind} {name}\n", a + by(name))
                }
                _ => format!("{l}\n"),
            }
        })
        .collect();
    let other: PathBuf = guest
        .dir()
        .join(format!("System.map-other-{}", std::process::id()));
    std::fs::write(&other, moved).unwrap();
    let mut args = ram_args(guest, Some(&other));
    args.push("maps".into());
    let err = cli_refused(test, &args);
    let _ = std::fs::remove_file(&other);
    eprintln!("{test}: refused: {}", err.trim_end());
    err
}

const K16_EXPECT: Expect = Expect {
    version: "Linux version 6.12.",
    config_va_bits: 52,
    page_size: 16384,
    phys_offset: VIRT_RAM_BASE,
    paging: (true, 52, 4, 0, 14),
    kaslr: true,
};

#[test]
fn deb13_arm64_16k_lpa2_describe() {
    let test = "real_kernel::arm64_kernels::deb13_arm64_16k_lpa2_describe";
    let Some(guest) = arm64_guest(test, &K16) else {
        return;
    };
    let syms = kallsyms_file(test, guest, "describe");
    let text = guest.report().kallsyms.lookup("_text").unwrap();
    let slide = check_describe(
        test,
        guest,
        SymbolSource::SymbolFile(syms.clone()),
        ("_text", text),
        &K16_EXPECT,
    );
    assert_eq!(slide, 0, "{test}: a runtime kallsyms is not slid");
    // Zero configuration: the same paging and maps from the kernel's own table.
    let slide = check_describe(
        test,
        guest,
        SymbolSource::GuestMemory,
        ("_text", text),
        &K16_EXPECT,
    );
    let _ = std::fs::remove_file(&syms);
    assert_eq!(slide, 0, "{test}: zero configuration slide");
}

#[test]
fn deb13_arm64_16k_lpa2_cli() {
    let test = "real_kernel::arm64_kernels::deb13_arm64_16k_lpa2_cli";
    let Some(guest) = arm64_guest(test, &K16) else {
        return;
    };
    let syms = kallsyms_file(test, guest, "cli");
    check_cli(test, guest, &syms, true);
    let _ = std::fs::remove_file(&syms);
}

const N1_EXPECT: Expect = Expect {
    version: "Linux version 6.12.",
    config_va_bits: 52,
    page_size: 4096,
    phys_offset: VIRT_RAM_BASE.wrapping_sub((1 << 52) - (1 << 48)),
    paging: (false, 48, 4, 0, 12),
    kaslr: false,
};

#[test]
fn deb13_arm64_4k_48bit_nokaslr_describe() {
    let test = "real_kernel::arm64_kernels::deb13_arm64_4k_48bit_nokaslr_describe";
    let Some(guest) = arm64_guest(test, &N1) else {
        return;
    };
    assert!(
        guest.report().cmdline().contains("nokaslr"),
        "{test}: {}",
        guest.report().cmdline()
    );
    let syms = kallsyms_file(test, guest, "describe");
    let text = guest.report().kallsyms.lookup("_text").unwrap();
    let slide = check_describe(
        test,
        guest,
        SymbolSource::SymbolFile(syms.clone()),
        ("_text", text),
        &N1_EXPECT,
    );
    assert_eq!(slide, 0, "{test}: slide");
    let slide = check_describe(
        test,
        guest,
        SymbolSource::GuestMemory,
        ("_text", text),
        &N1_EXPECT,
    );
    let _ = std::fs::remove_file(&syms);
    assert_eq!(slide, 0, "{test}: zero configuration slide");
}

#[test]
fn deb13_arm64_4k_48bit_nokaslr_cli() {
    let test = "real_kernel::arm64_kernels::deb13_arm64_4k_48bit_nokaslr_cli";
    let Some(guest) = arm64_guest(test, &N1) else {
        return;
    };
    let syms = kallsyms_file(test, guest, "cli");
    check_cli(test, guest, &syms, true);
    let _ = std::fs::remove_file(&syms);
}

/// `--pid PID --qmp SOCKET`: the guest's RAM read out of the QEMU process (its regions
/// from QMP's memory tree and `gpa2hva`), the arm64 kernel found through the VMCOREINFO
/// in that memory. In a pause of the test's own, `maps` and `dump --all` equal the RAM
/// file's, and the guest is still paused after (mapwalk leaves a guest it found paused
/// as it was); on the running guest, mapwalk pauses it for the read and lets it run
/// again.
#[test]
fn deb13_arm64_4k_48bit_nokaslr_pid() {
    let test = "real_kernel::arm64_kernels::deb13_arm64_4k_48bit_nokaslr_pid";
    let Some(guest) = arm64_guest(test, &N1) else {
        return;
    };
    let syms = kallsyms_file(test, guest, "pid");
    let pid_args = |rest: &[&str]| -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--pid".into(),
            guest.qemu_pid().to_string().into(),
            "--qmp".into(),
            guest.qmp_path().into(),
            "--symbols".into(),
            syms.clone().into(),
        ];
        args.extend(rest.iter().map(Into::into));
        args
    };
    let with = |mut args: Vec<OsString>, rest: &[&str]| {
        args.extend(rest.iter().map(Into::into));
        run_cli(test, &args)
    };
    {
        let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        let ram_dump = with(ram_args(guest, Some(&syms)), &["dump", "--all", "--json"]);
        let ram_maps = with(ram_args(guest, Some(&syms)), &["maps", "--json"]);
        let pid_dump = run_cli(test, &pid_args(&["dump", "--all", "--json"]));
        let pid_maps = run_cli(test, &pid_args(&["maps", "--json"]));
        assert!(
            pid_dump == ram_dump,
            "{test}: --pid dump --all differs from --ram ({} vs {} bytes)",
            pid_dump.len(),
            ram_dump.len()
        );
        assert_eq!(json(test, &pid_maps), json(test, &ram_maps), "{test}: maps");
        assert_eq!(
            paused.qmp().running().ok(),
            Some(false),
            "{test}: mapwalk let a guest it found paused run"
        );
    }
    let listing = json(test, &run_cli(test, &pid_args(&["maps", "--json"])));
    check_listing(test, &listing, &truth(test, guest));
    let status = guest
        .hmp("info status")
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    assert!(
        status.contains("running"),
        "{test}: the guest mapwalk paused does not run again: {status}"
    );
    let _ = std::fs::remove_file(&syms);
}

/// The page-table root from the vCPU: TTBR1_EL1 read through QEMU's gdbstub (in a pause
/// of the test's own) and given as `--ttbr1`: the same `dump --all` as from
/// swapper_pg_dir; a TTBR1 one page off is refused, naming the root as given.
#[test]
fn deb13_arm64_16k_lpa2_ttbr1_from_the_vcpu() {
    let test = "real_kernel::arm64_kernels::deb13_arm64_16k_lpa2_ttbr1_from_the_vcpu";
    let Some(guest) = arm64_guest(test, &K16) else {
        return;
    };
    let syms = kallsyms_file(test, guest, "ttbr1");
    let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let ttbr1 = mapwalk_e2e::gdb::read_register(&guest.gdb_path(), "TTBR1_EL1")
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    // Detaching the debugger let the guest run: stand it still again.
    paused
        .qmp()
        .stop()
        .unwrap_or_else(|e| panic!("{test}: QMP stop: {e}"));
    eprintln!("{test}: TTBR1_EL1 {ttbr1:#x}");
    assert_ne!(ttbr1, 0, "{test}: TTBR1_EL1");
    let with = |extra: &[String], rest: &[&str]| {
        let mut args = ram_args(guest, Some(&syms));
        args.extend(extra.iter().map(Into::into));
        args.extend(rest.iter().map(Into::into));
        args
    };
    let dump = ["dump", "--all", "--json"];
    let from_swapper = run_cli(test, &with(&[], &dump));
    let from_vcpu = run_cli(
        test,
        &with(&["--ttbr1".into(), format!("{ttbr1:#x}")], &dump),
    );
    assert!(
        from_vcpu == from_swapper,
        "{test}: dump --all with --ttbr1 {ttbr1:#x} differs ({} vs {} bytes)",
        from_vcpu.len(),
        from_swapper.len()
    );
    let off = ttbr1.wrapping_add(0x4000);
    let refused = cli_refused(
        test,
        &with(&["--ttbr1".into(), format!("{off:#x}")], &["maps"]),
    );
    assert!(
        refused.contains("(given) do not map the kernel"),
        "{test}: --ttbr1 {off:#x}: {refused}"
    );
    // A CR3 is no root of an arm64 kernel.
    let refused = cli_refused(
        test,
        &with(&["--cr3".into(), format!("{ttbr1:#x}")], &["maps"]),
    );
    assert!(
        refused.contains("is no page-table root of this kernel, which is arm64"),
        "{test}: --cr3: {refused}"
    );
    drop(paused);
    let _ = std::fs::remove_file(&syms);
}
