//! The KVM backend's region-backed guest memory (`mapwalk_kvm::GuestRam`) over QEMU's
//! RAM files, its regions laid out as QEMU lays them (from `info mtree -f`: 512 MiB
//! flat; 3 GiB on q35 with RAM above 4 GiB): a whole `dump --all --json` through the
//! library must be byte-identical to the file backend's (`mapwalk_file::RamFile` with
//! the same layout), on Linux 6.1 and 6.12. A second dump after a refresh (what a VMM
//! does at each pause, the description kept) must be identical too.

use mapwalk::describe::{self, BtfSource, KernelSpec, MemoryHints, SymbolSource};
use mapwalk::dump::{dump_all, DumpSummary};
use mapwalk::render::Format;
use mapwalk::source::{GuestWrite, MemorySource};
use mapwalk_core::PhysRead;
use mapwalk_e2e::{self as e2e, GuestConfig};
use mapwalk_file::RamFile;
use mapwalk_kvm::GuestRam;

#[test]
fn deb12_kaslr_5level_kvm_regions_dump_as_the_file_backend() {
    same_dump(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_kvm_regions_dump_as_the_file_backend() {
    same_dump(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_5level_3g_kvm_regions_dump_as_the_file_backend() {
    same_dump(&GuestConfig::DEB12_KASLR_5LEVEL_3G_SMP1);
}

#[test]
fn deb13_nokaslr_4level_3g_kvm_regions_dump_as_the_file_backend() {
    same_dump(&GuestConfig::DEB13_NOKASLR_4LEVEL_3G_SMP1);
}

/// The whole JSON dump of `mem`, and its summary.
fn dump<M: PhysRead + GuestWrite>(
    test: &str,
    mem: M,
    spec: &KernelSpec,
) -> (MemorySource<M>, Vec<u8>, DumpSummary) {
    let kernel = describe::describe(mem, spec, &MemoryHints::default())
        .unwrap_or_else(|e| panic!("{test}: describe: {e}"));
    let src = MemorySource::new(kernel);
    let mut out = Vec::new();
    let summary = dump_all(&src, Format::Json, &mut out, &mut |w| {
        panic!("{test}: warning: {w}")
    })
    .unwrap_or_else(|e| panic!("{test}: dump: {e}"));
    (src, out, summary)
}

fn same_dump(config: &GuestConfig) {
    let test = format!("real_kernel::kvm::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let dir = guest.dir().join(format!("kvm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"]).unwrap();
    let mut spec = KernelSpec::new(SymbolSource::SymbolFile(syms));
    spec.btf = Some(BtfSource::GuestMemory);
    let layout = guest.ram_layout().unwrap_or_else(|e| panic!("{test}: {e}"));
    let regions = layout.ranges().len();

    // The write tests of the same guest change values in RAM and wait for the guest
    // (running) to see them: take turns with them, then hold the guest still.
    let _values = e2e::value_lock();
    let _paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let file = RamFile::options()
        .layout(layout.clone())
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let ram = std::fs::File::open(guest.ram_path()).unwrap();
    let kvm = GuestRam::map_file(&ram, &layout, false).unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_eq!(kvm.ranges(), file.ranges(), "{test}: regions");

    let (_, by_file, file_summary) = dump(test, file, &spec);
    let (src, by_kvm, kvm_summary) = dump(test, kvm, &spec);
    assert_eq!(file_summary, kvm_summary, "{test}: summaries");
    assert!(
        by_file == by_kvm,
        "{test}: the KVM backend's dump ({} bytes) differs from the file backend's ({} \
         bytes), first at byte {:?}",
        by_kvm.len(),
        by_file.len(),
        by_file.iter().zip(&by_kvm).position(|(a, b)| a != b)
    );
    // The arena of `e2e/guest/arena.c` (6.12) has no line in `bpf-maps`.
    let arenas = report
        .section("bpf-arena")
        .map_or(0, |s| s.lines().filter(|l| l.starts_with("ARENA ")).count());
    assert_eq!(
        kvm_summary.maps,
        truth.len() + arenas,
        "{test}: maps dumped"
    );
    assert!(
        by_kvm.len() > 1 << 20,
        "{test}: only {} bytes",
        by_kvm.len()
    );

    // A refresh, as at the VMM's next pause: the same description, the same bytes.
    src.refresh();
    let mut again = Vec::new();
    dump_all(&src, Format::Json, &mut again, &mut |w| {
        panic!("{test}: {w}")
    })
    .unwrap();
    assert!(again == by_kvm, "{test}: the dump after a refresh differs");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: {} regions, {} maps, {} entries, {} bytes of JSON, equal to the file \
         backend's ({} maps failed on both: {:?})",
        regions,
        kvm_summary.maps,
        kvm_summary.entries,
        by_kvm.len(),
        kvm_summary.failed.len(),
        kvm_summary
            .failed
            .iter()
            .map(|(id, _)| id)
            .collect::<Vec<_>>()
    );
}
