//! `mapwalk::describe` on real kernels: the paused guest's RAM file (through
//! `mapwalk_file::RamFile`), the guest's `/proc/kallsyms` written to a file, BTF from
//! guest memory; once with CR3/CR4 from QMP, once with nothing but memory (the symbols
//! place the kernel), once by the VMCOREINFO found in RAM. Map discovery must then find the maps the guest
//! reported. A kallsyms of another boot (another KASLR slide) or another kernel must be
//! refused.

use super::bpf::GUEST_MAPS;
use mapwalk::describe::vmcoreinfo::{find_vmcoreinfo, Vmcoreinfo};
use mapwalk::describe::{
    describe, describe_with, BtfSource, DescribeError, Kernel, KernelSpec, MemoryHints,
    SymbolSource,
};
use mapwalk_core::kernel::KernelRead;
use mapwalk_core::{Kva, Paging, PhysRead};
use mapwalk_e2e::{self as e2e, GuestConfig, GuestReport};
use mapwalk_file::RamFile;
use std::path::PathBuf;
use std::time::Instant;

#[test]
fn deb12_kaslr_5level_describe() {
    describe_guest(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb12_nokaslr_4level_describe() {
    describe_guest(&GuestConfig::DEB12_NOKASLR_4LEVEL);
}

#[test]
fn deb13_kaslr_5level_describe() {
    describe_guest(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_4level_smp4_describe() {
    describe_guest(&GuestConfig::DEB12_KASLR_4LEVEL_SMP4);
}

/// The guest's kallsyms, written to a file of its own (one per call: tests running at
/// the same time write the same guest's kallsyms, and a file rewritten in place reads
/// empty for a moment).
fn kallsyms_file(test: &str, config: &GuestConfig, report: &GuestReport) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("mapwalk-describe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}.kallsyms", config.name));
    std::fs::write(&path, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: write {}: {e}", path.display()));
    path
}

fn spec(kallsyms: PathBuf) -> KernelSpec {
    KernelSpec {
        btf: Some(BtfSource::GuestMemory),
        ..KernelSpec::new(SymbolSource::SymbolFile(kallsyms))
    }
}

/// `Linux version <release> ...` -> `<release>`.
fn release_of(version: &str) -> &str {
    version.split_whitespace().nth(2).unwrap_or("")
}

fn check<M: PhysRead>(test: &str, how: &str, report: &GuestReport, k: &Kernel<M>) {
    let sym = |name: &str| report.kallsyms.lookup(name).map(Kva);
    assert_eq!(
        k.release.as_deref(),
        Some(release_of(report.version())),
        "{test} ({how}): release"
    );
    assert_eq!(k.map_idr, sym("map_idr").unwrap(), "{test} ({how})");
    assert_eq!(k.per_cpu_offset, sym("__per_cpu_offset"), "{test} ({how})");
    assert_eq!(k.nr_cpu_ids, sym("nr_cpu_ids"), "{test} ({how})");
    assert_eq!(
        k.slide, 0,
        "{test} ({how}): a runtime kallsyms has no slide"
    );
    // The view reads what the symbols say: phys_base and page_offset_base variables.
    assert_eq!(
        k.view.read_kernel_u64(sym("phys_base").unwrap()).unwrap(),
        k.phys_base,
        "{test} ({how})"
    );
    assert_eq!(
        k.view
            .read_kernel_u64(sym("page_offset_base").unwrap())
            .unwrap(),
        k.page_offset_base,
        "{test} ({how})"
    );
    let expected = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let list = k
        .bpf()
        .collect_maps()
        .unwrap_or_else(|e| panic!("{test} ({how}): walk map_idr: {e}"));
    assert!(list.errors.is_empty(), "{test} ({how}): {:?}", list.errors);
    for want in &expected {
        let got = list
            .maps
            .iter()
            .find(|m| m.id == want.id)
            .unwrap_or_else(|| panic!("{test} ({how}): map {} ({}) not found", want.id, want.name));
        assert_eq!(
            (
                got.name.as_str(),
                got.map_type.0,
                got.key_size,
                got.value_size,
                got.max_entries
            ),
            (
                Some(want.name.as_str()),
                want.map_type,
                want.key_size,
                want.value_size,
                want.max_entries
            ),
            "{test} ({how}): map {}",
            want.name
        );
    }
    for name in GUEST_MAPS {
        assert!(
            k.bpf().find_by_name(name).unwrap().is_some(),
            "{test} ({how}): {name}"
        );
    }
    let cpus = k
        .possible_cpus()
        .unwrap()
        .resolve(&k.view)
        .unwrap_or_else(|e| panic!("{test} ({how}): nr_cpu_ids: {e}"));
    assert_eq!(
        cpus,
        report.bpf_possible_cpus().unwrap(),
        "{test} ({how}): nr_cpu_ids"
    );
}

fn describe_guest(config: &GuestConfig) {
    let test = format!("real_kernel::describe::{}", config.name);
    let Some(guest) = e2e::guest(&test, config) else {
        return;
    };
    let report = guest.report();
    let kallsyms = kallsyms_file(&test, config, report);

    let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let regs = paused.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
    let open = || {
        RamFile::open(guest.ram_path())
            .unwrap_or_else(|e| panic!("{test}: open {}: {e}", guest.ram_path().display()))
    };

    let started = Instant::now();
    let hints = MemoryHints {
        vmcoreinfo: None,
        cr3: Some(regs.cr3),
        cr4: Some(regs.cr4),
    };
    let with_regs = describe(open(), &spec(kallsyms.clone()), &hints)
        .unwrap_or_else(|e| panic!("{test}: describe with CR3/CR4: {e}"));
    eprintln!(
        "{test}: described with CR3/CR4 in {:.2} s: phys_base={:#x} page_offset_base={:#x} \
         vmcoreinfo={} warnings={:?}",
        started.elapsed().as_secs_f64(),
        with_regs.phys_base,
        with_regs.page_offset_base,
        with_regs.vmcoreinfo.is_some(),
        with_regs.warnings
    );
    check(&test, "CR3/CR4", report, &with_regs);

    // CR3/CR4 and no VMCOREINFO (an empty one: do not search): phys_base by the walk,
    // 5-level from CR4, the banner the only check.
    let no_info = MemoryHints {
        vmcoreinfo: Some(Vmcoreinfo::default()),
        ..hints.clone()
    };
    let walked = describe(open(), &spec(kallsyms.clone()), &no_info)
        .unwrap_or_else(|e| panic!("{test}: describe with CR3/CR4, no VMCOREINFO: {e}"));
    check(&test, "CR3/CR4, no VMCOREINFO", report, &walked);
    assert!(walked.vmcoreinfo.is_none());
    assert_eq!(
        (walked.phys_base, walked.page_offset_base),
        (with_regs.phys_base, with_regs.page_offset_base),
        "{test}: walked and VMCOREINFO agree"
    );

    // Nothing but memory: the symbols place the kernel (`phys_base` found by its own
    // value), with no search for VMCOREINFO.
    let started = Instant::now();
    let mut searches = 0;
    let alone = describe_with(
        open(),
        &spec(kallsyms.clone()),
        &MemoryHints::default(),
        |_| searches += 1,
    )
    .unwrap_or_else(|e| panic!("{test}: describe from memory alone: {e}"));
    eprintln!(
        "{test}: described from memory alone in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    check(&test, "memory alone", report, &alone);
    assert_eq!(searches, 1, "{test}: the symbols alone place the kernel");
    assert!(alone.vmcoreinfo.is_none());
    let Paging::X86_64(p) = alone.view.paging() else {
        panic!()
    };
    assert_eq!(
        p.five_level(),
        regs.la57(),
        "{test}: 5-level from the variable"
    );
    let root = report.kallsyms.lookup("init_top_pgt").unwrap();
    assert_eq!(
        p.root().0,
        root.wrapping_sub(mapwalk_core::kernel::X86_START_KERNEL_MAP)
            .wrapping_add(alone.phys_base),
        "{test}: the root is init_top_pgt"
    );
    assert_eq!(
        (alone.phys_base, alone.page_offset_base),
        (with_regs.phys_base, with_regs.page_offset_base),
        "{test}: both ways agree"
    );

    // The VMCOREINFO in RAM agrees, and describes the kernel as well.
    let info = find_vmcoreinfo(&open(), &[])
        .unwrap_or_else(|e| panic!("{test}: search for VMCOREINFO: {e}"))
        .expect("VMCOREINFO was found")
        .vmcoreinfo;
    assert_eq!(info.osrelease(), Some(release_of(report.version())));
    assert_eq!(info.number("phys_base"), Some(alone.phys_base));
    assert_eq!(info.symbol("init_top_pgt"), Some(root));
    let by_info = MemoryHints {
        vmcoreinfo: Some(info),
        ..MemoryHints::default()
    };
    let from_info = describe(open(), &spec(kallsyms.clone()), &by_info)
        .unwrap_or_else(|e| panic!("{test}: describe by VMCOREINFO: {e}"));
    check(&test, "VMCOREINFO", report, &from_info);
    let Paging::X86_64(p) = from_info.view.paging() else {
        panic!()
    };
    assert_eq!(
        p.five_level(),
        regs.la57(),
        "{test}: 5-level from VMCOREINFO"
    );
    assert_eq!(
        (from_info.phys_base, from_info.page_offset_base),
        (with_regs.phys_base, with_regs.page_offset_base),
        "{test}: VMCOREINFO agrees"
    );
    drop(paused);
}

/// `memory`'s RAM described with `symbols`' kallsyms must fail, with and without CR3.
fn refused(test: &str, memory: &GuestConfig, symbols: &GuestConfig) {
    let (Some(mguest), Some(sguest)) = (e2e::guest(test, memory), e2e::guest(test, symbols)) else {
        return;
    };
    let (mrep, srep) = (mguest.report(), sguest.report());
    let (mt, st) = (
        mrep.kallsyms.lookup("_text").unwrap(),
        srep.kallsyms.lookup("_text").unwrap(),
    );
    if mt == st {
        eprintln!("{test}: both boots drew the same slide ({mt:#x}): nothing to test");
        return;
    }
    let other = kallsyms_file(test, symbols, srep);
    let mut paused = mguest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let regs = paused.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
    let open = || RamFile::open(mguest.ram_path()).unwrap();

    let err = describe(open(), &spec(other.clone()), &MemoryHints::default())
        .err()
        .unwrap_or_else(|| panic!("{test}: the other boot's kallsyms was accepted"));
    eprintln!("{test}: memory alone: {err}");
    assert!(
        matches!(err, DescribeError::Mismatch { .. }),
        "{test}: want a mismatch, got {err}"
    );
    let hints = MemoryHints {
        vmcoreinfo: None,
        cr3: Some(regs.cr3),
        cr4: Some(regs.cr4),
    };
    let no_info = MemoryHints {
        vmcoreinfo: Some(Vmcoreinfo::default()),
        ..hints.clone()
    };
    for (how, hints) in [("CR3/CR4", hints), ("CR3/CR4, no VMCOREINFO", no_info)] {
        let err = describe(open(), &spec(other.clone()), &hints)
            .err()
            .unwrap_or_else(|| panic!("{test}: the other boot's kallsyms was accepted ({how})"));
        eprintln!("{test}: {how}: {err}");
        // Refused: as a mismatch, a failed walk, or (for some pairs of slides, with no
        // VMCOREINFO to slide by) an image symbol the other boot's file does not place
        // in this memory.
        assert!(
            matches!(
                err,
                DescribeError::Mismatch { .. }
                    | DescribeError::Kernel { .. }
                    | DescribeError::MissingSymbol(_)
            ),
            "{test}: {how}: want a mismatch, got {err}"
        );
        assert!(err.to_string().contains("symbols"), "{test}: {how}: {err}");
    }
    drop(paused);
}

#[test]
fn deb12_kallsyms_of_another_boot_is_refused() {
    refused(
        "real_kernel::describe::another_boot",
        &GuestConfig::DEB12_KASLR_5LEVEL,
        &GuestConfig::DEB12_KASLR_4LEVEL_SMP4,
    );
}

#[test]
fn deb13_memory_with_deb12_kallsyms_is_refused() {
    refused(
        "real_kernel::describe::another_kernel",
        &GuestConfig::DEB13_KASLR_5LEVEL,
        &GuestConfig::DEB12_NOKASLR_4LEVEL,
    );
}
