//! Every memory path of `mapwalk-file` on real kernels, byte-exact against the guest's
//! own report, with one set of checks (translation, VMCOREINFO, BPF discovery, ARRAY,
//! hash and per-CPU maps):
//!
//! 1. the QEMU RAM file mapped by `mapwalk_file::RamFile` while the guest **runs** (no
//!    `stop`; the maps stand still, only key 0 of `mw_array` may change, to the value
//!    the write test of `bpf.rs` stores);
//! 2. the same `RamFile` while the guest is **paused** (QMP `stop` / `cont`);
//! 3. an **ELF core** written by QMP `dump-guest-memory` while paused, opened with
//!    `mapwalk_file::ElfCore`, its page walk rooted at the core's own CR3/CR4; and the
//!    `mapwalk` CLI on that core (`--core FILE --symbols FILE`), its listing and its
//!    `mw_hash` dump against the guest's report.
//!
//! The RAM file's layout comes from QMP `info mtree -f`, never from a constant: the
//! 3 GiB guest has RAM above 4 GiB, at file offset 2 GiB. VMCOREINFO is found in memory
//! (`find_vmcoreinfo`) and must agree with the guest.

use super::bpf::{btf_from_guest, check_maps, layout_from_btf, Key0, GUEST_MAPS};
use super::cli::{check_hash_dump, check_listing, Cli};
use super::htab::check_hash_maps;
use super::{
    check_against_iomem, check_banner, check_direct_map_walks, check_image_walks, kernel_view, MIB,
};
use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo, Vmcoreinfo};
use mapwalk::qmp::X86ControlRegs;
use mapwalk_core::{
    arch, Bpf, KernelLayout, KernelView, Kva, MapType, PhysRange, PhysRead, Translation,
};
use mapwalk_e2e::{self as e2e, Guest, GuestConfig, GuestMap};
use mapwalk_file::{ElfCore, RamFile};
use std::fmt::Write as _;
use std::fs;
use std::time::Instant;

const GIB: u64 = 1 << 30;

#[test]
fn deb12_kaslr_5level_memory_paths() {
    memory_paths(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb12_nokaslr_4level_memory_paths() {
    memory_paths(&GuestConfig::DEB12_NOKASLR_4LEVEL);
}

#[test]
fn deb13_kaslr_5level_memory_paths() {
    memory_paths(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_4level_smp4_memory_paths() {
    memory_paths(&GuestConfig::DEB12_KASLR_4LEVEL_SMP4);
}

/// Linux 6.12 without KASLR, 4-level paging, 3 GiB (RAM above 4 GiB), one vCPU.
#[test]
fn deb13_nokaslr_4level_3g_smp1_memory_paths() {
    memory_paths(&GuestConfig::DEB13_NOKASLR_4LEVEL_3G_SMP1);
}

/// Linux 6.1 with KASLR, 5-level paging, 3 GiB (RAM above 4 GiB), one vCPU.
#[test]
fn deb12_kaslr_5level_3g_smp1_memory_paths() {
    memory_paths(&GuestConfig::DEB12_KASLR_5LEVEL_3G_SMP1);
}

/// Sorted physical ranges with adjacent ones merged, as `(start, end)`.
fn merged(ranges: &[PhysRange]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = ranges
        .iter()
        .map(|r| (r.start.0, r.start.0 + r.len))
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if last.1 == lo => last.1 = hi,
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// What the paths share: the guest, its report, and what the first path learned.
struct Checks<'a> {
    test: String,
    guest: &'a Guest,
    config: &'a GuestConfig,
    expected: Vec<GuestMap>,
    cpus: u32,
    /// One past the highest guest-physical RAM address: the direct map's extent.
    phys_end: u64,
    /// The BTF bytes and the layout resolved from them, by the first path.
    btf: Option<(Vec<u8>, KernelLayout)>,
    /// `phys_base` as the first path resolved it.
    phys_base: Option<u64>,
}

impl Checks<'_> {
    /// Every check through `mem`, the page walk rooted at `regs`. Returns a summary.
    fn run<M: PhysRead>(&mut self, path: &str, mem: &M, regs: X86ControlRegs) -> String {
        let started = Instant::now();
        let test = format!("{} [{path}]", self.test);
        let test = test.as_str();
        let report = self.guest.report();
        let syms = &report.kallsyms;
        let sym = |name: &str| {
            syms.lookup(name)
                .unwrap_or_else(|| panic!("{test}: the guest's kallsyms has no {name}"))
        };
        assert_eq!(
            regs.la57(),
            self.config.five_level,
            "{test}: CR4={:#x}: LA57",
            regs.cr4
        );
        let (view, phys_base, _) = kernel_view(test, syms, regs, mem, self.phys_end);
        assert_eq!(
            *self.phys_base.get_or_insert(phys_base),
            phys_base,
            "{test}: phys_base differs between paths"
        );

        // Translation.
        check_against_iomem(test, report, &view);
        check_banner(test, report, &view, sym("linux_banner"));
        check_image_walks(test, syms, &view);
        check_direct_map_walks(test, report, &view, self.phys_end);

        // VMCOREINFO, found in memory.
        let found = find_vmcoreinfo(mem, &[])
            .unwrap_or_else(|e| panic!("{test}: find_vmcoreinfo: {e}"))
            .unwrap_or_else(|| panic!("{test}: no VMCOREINFO in memory"));
        let vmci = &found.vmcoreinfo;
        assert_eq!(
            vmci.osrelease(),
            Some(self.guest.release()),
            "{test}: OSRELEASE"
        );
        assert_eq!(
            vmci.symbol("init_top_pgt"),
            Some(sym("init_top_pgt")),
            "{test}: SYMBOL(init_top_pgt) vs kallsyms"
        );
        assert_eq!(
            vmci.number("phys_base"),
            Some(phys_base),
            "{test}: NUMBER(phys_base) vs resolve_phys_base"
        );
        assert_eq!(
            vmci.number("pgtable_l5_enabled"),
            Some(u64::from(self.config.five_level)),
            "{test}: NUMBER(pgtable_l5_enabled)"
        );

        // BPF maps: the BTF byte-exact across paths, resolved once.
        let raw = btf_from_guest(test, syms, &view);
        let btf_len = raw.len();
        let (first_btf, layout) = self
            .btf
            .get_or_insert_with(|| {
                let layout = layout_from_btf(test, &raw);
                (raw.clone(), layout)
            })
            .clone();
        assert!(first_btf == raw, "{test}: the BTF differs between paths");
        let map_idr = Kva(sym("map_idr"));
        check_maps(
            test,
            &view,
            &layout,
            map_idr,
            &self.expected,
            Key0::OriginalOrWritten,
        );
        check_hash_maps(
            test,
            syms,
            &view,
            &layout,
            &self.expected,
            self.cpus,
            self.guest.release(),
        );
        let high = above_4g(
            test,
            &view,
            &layout,
            map_idr,
            &self.expected,
            self.phys_end > 4 * GIB,
        );
        format!(
            "{path}: CR3={:#x} CR4={:#x} phys_base={phys_base:#x}; VMCOREINFO at {:#x} \
             ({:?}, {} bytes read); BTF {btf_len} bytes; {} maps; {high}; {:.1} s",
            regs.cr3,
            regs.cr4,
            found.pa.0,
            found.method,
            found.bytes_read,
            self.expected.len(),
            started.elapsed().as_secs_f64()
        )
    }
}

/// Where the maps lie, by the page walk: how many `struct bpf_map` objects and ARRAY
/// value pages are above 4 GiB physical. With RAM above 4 GiB (`ZONE_NORMAL` is all
/// there), at least one must be.
fn above_4g<M: PhysRead>(
    test: &str,
    view: &KernelView<M>,
    layout: &KernelLayout,
    map_idr: Kva,
    expected: &[GuestMap],
    has_high_ram: bool,
) -> String {
    let pa_of = |kva: Kva| match arch::translate(view.mem(), view.paging(), kva) {
        Ok(Translation::Mapped(m)) => m.pa.0,
        other => panic!("{test}: walk {kva:?}: {other:?}"),
    };
    let bpf = Bpf::new(view, layout, map_idr);
    let (mut objects, mut objects_high) = (0, 0);
    let mut pages = std::collections::BTreeSet::new();
    for want in expected {
        let info = bpf
            .map_by_id(want.id)
            .unwrap_or_else(|e| panic!("{test}: map_by_id({}): {e}", want.id))
            .unwrap_or_else(|| panic!("{test}: no map {}", want.id));
        objects += 1;
        if pa_of(info.kva) >= 4 * GIB {
            objects_high += 1;
        }
        if want.map_type == MapType::ARRAY.0 {
            let array = bpf.array(&info).unwrap();
            for key in 0..want.max_entries {
                let kva = array.value_kva(key).unwrap();
                pages.insert(pa_of(kva) & !0xfff);
            }
        }
    }
    let pages_high = pages.iter().filter(|&&pa| pa >= 4 * GIB).count();
    if has_high_ram {
        assert!(
            objects_high + pages_high > 0,
            "{test}: RAM above 4 GiB, but no map object or ARRAY value page there"
        );
    }
    format!(
        "above 4 GiB: {objects_high} of {objects} bpf_map objects, {pages_high} of {} ARRAY \
         value pages",
        pages.len()
    )
}

fn memory_paths(config: &GuestConfig) {
    let test = format!("real_kernel::dump::{}", config.name);
    let Some(guest) = e2e::guest(&test, config) else {
        return;
    };
    // Writers and exact value checks of the shared guests take turns.
    let _values = e2e::value_lock();
    let started = Instant::now();
    let report = guest.report();
    let expected = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    for name in GUEST_MAPS {
        assert!(
            expected.iter().any(|m| m.name == name),
            "{test}: the guest did not report map {name}"
        );
    }
    let cpus = report
        .bpf_possible_cpus()
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_eq!(cpus, config.smp, "{test}: possible CPUs vs -smp");

    // The RAM file's layout, from QEMU's flat view of guest memory.
    let layout = guest.ram_layout().unwrap_or_else(|e| panic!("{test}: {e}"));
    let file_len = fs::metadata(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", guest.ram_path().display()))
        .len();
    assert_eq!(
        file_len,
        u64::from(config.mem_mib) * MIB,
        "{test}: RAM file"
    );
    assert!(layout.file_end() <= file_len, "{test}: layout {layout:?}");
    let ram_ranges = merged(layout.phys_ranges());
    let phys_end = ram_ranges.last().unwrap().1;
    let identity = layout.ranges().iter().all(|r| r.gpa.0 == r.offset);
    let top = layout.ranges().last().unwrap();
    if file_len <= 2 * GIB {
        assert!(
            identity,
            "{test}: {file_len:#x}-byte RAM, layout {layout:?}"
        );
        assert_eq!(phys_end, file_len, "{test}: layout {layout:?}");
    } else {
        // q35 splits: the top of RAM is past 4 GiB and ends the file.
        assert!(
            !identity && top.gpa.0 >= 4 * GIB && top.offset + top.len == file_len,
            "{test}: {file_len:#x}-byte RAM, layout {layout:?}"
        );
        assert!(
            report.system_ram().iter().any(|&(_, hi)| hi > 4 * GIB),
            "{test}: the guest has no System RAM above 4 GiB: {:x?}",
            report.system_ram()
        );
    }
    let ram = RamFile::options()
        .layout(layout.clone())
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: RamFile: {e}"));

    let mut checks = Checks {
        test: test.clone(),
        guest,
        config,
        expected,
        cpus,
        phys_end,
        btf: None,
        phys_base: None,
    };
    let mut summary = String::new();

    // 1. The RAM file of the running guest.
    let status = guest
        .hmp("info status")
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    assert!(
        status.contains("running"),
        "{test}: the guest is not running: {status}"
    );
    let regs = guest.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
    writeln!(summary, "  {}", checks.run("running RAM file", &ram, regs)).unwrap();

    // 2. The same file, guest paused; 3. an ELF dump taken in the same pause.
    let core_path = guest.dir().join("core.elf");
    let (qmp_regs, dump_secs) = {
        let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        let regs = paused.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
        writeln!(summary, "  {}", checks.run("paused RAM file", &ram, regs)).unwrap();
        let dump_started = Instant::now();
        let dumped = paused.dump_guest_memory(&core_path);
        if let Err(e) = dumped {
            let _ = fs::remove_file(&core_path);
            panic!("{test}: {e}");
        }
        (regs, dump_started.elapsed().as_secs_f64())
    };
    // The CLI on the same core (`--core FILE --symbols FILE`: placed by the core's own
    // CPU state): its listing and its dump of `mw_hash` as the guest reported them.
    let syms = guest.dir().join(format!("kallsyms-{}", std::process::id()));
    let cli_outputs = fs::write(&syms, &report.sections["kallsyms"]).map(|()| {
        let cli = Cli::file("--core", &core_path, &syms);
        let listing = cli.json(&test, &["maps", "--json"]);
        let hash = cli.json(&test, &["dump", "mw_hash", "--json"]);
        (listing, hash)
    });
    let _ = fs::remove_file(&syms);
    // The mapping outlives the file's name: remove it before any check can fail.
    let core = ElfCore::open(&core_path);
    let _ = fs::remove_file(&core_path);
    let core = core.unwrap_or_else(|e| panic!("{test}: ElfCore: {e}"));
    let (listing, hash_dump) = cli_outputs.unwrap_or_else(|e| panic!("{test}: kallsyms: {e}"));
    check_listing(&test, &listing, &checks.expected);
    let hash = checks
        .expected
        .iter()
        .find(|m| m.name == "mw_hash")
        .unwrap();
    check_hash_dump(&test, &hash_dump, hash);
    assert!(
        core.is_64bit() && core.machine() == 62,
        "{test}: ELF class/machine"
    );
    // Every RAM range of the flat view is one PT_LOAD; the core has more (the BIOS
    // ROM below 4 GiB is RAM-backed too, but not in the RAM file).
    let core_ranges = merged(core.ranges());
    for &(lo, hi) in &ram_ranges {
        assert!(
            core_ranges.iter().any(|&(a, b)| a <= lo && hi <= b),
            "{test}: RAM {lo:#x}..{hi:#x} (info mtree -f) not in the core's PT_LOADs \
             {core_ranges:x?}"
        );
    }
    let outside: Vec<(u64, u64)> = core_ranges
        .iter()
        .copied()
        .filter(|&(a, b)| !ram_ranges.iter().any(|&(lo, hi)| a < hi && lo < b))
        .collect();
    let vcpus = core.vcpus();
    assert_eq!(
        vcpus.len(),
        config.smp as usize,
        "{test}: vCPUs in the core"
    );
    let cpu0 = vcpus[0]
        .qemu
        .unwrap_or_else(|| panic!("{test}: no QEMU CPU-state note for vCPU 0"));
    assert_eq!(
        (cpu0.cr3(), cpu0.cr4()),
        (qmp_regs.cr3, qmp_regs.cr4),
        "{test}: vCPU 0 CR3/CR4 in the core vs QMP"
    );
    let core_regs = X86ControlRegs {
        cr0: cpu0.cr[0],
        cr3: cpu0.cr3(),
        cr4: cpu0.cr4(),
    };
    let note = core
        .vmcoreinfo_note()
        .map(Vmcoreinfo::parse)
        .map_or("no VMCOREINFO note".to_owned(), |v| {
            format!("VMCOREINFO note for {:?}", v.osrelease())
        });
    let line = checks.run("ELF core", &core, core_regs);
    writeln!(
        summary,
        "  {line}; dump {:.1} s, {} MiB, {} PT_LOADs (outside the RAM file: {outside:x?}), \
         {} vCPUs, {note}",
        dump_secs,
        core.file_len() / MIB,
        core.segments().len(),
        vcpus.len()
    )
    .unwrap();

    eprintln!(
        "{test}: kernel {}, RAM layout {:?}, all paths in {:.1} s:\n{summary}",
        guest.release(),
        layout.ranges(),
        started.elapsed().as_secs_f64()
    );
}
