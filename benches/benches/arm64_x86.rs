//! An arm64 guest beside an x86_64 guest of the same size with the same maps: describing
//! and dumping each, side by side.
//!
//! Both are booted by the real-kernel driver (`mapwalk-e2e`; see `e2e/README.md`) and
//! paused for the run: Debian 13's Linux 6.12 on `qemu-system-aarch64 -M virt -cpu max`
//! (4 KiB pages, 52-bit VAs with LPA2: five levels of tables; RAM at `0x4000_0000`) and
//! on `qemu-system-x86_64 -cpu max` (5-level paging), each 512 MiB with 2 vCPUs and the
//! eleven maps of the guest's `/init`.
//!
//! Benchmarks (group `arm64_x86`), each `/arm64` and `/x86_64`:
//!
//! - `describe_and_dump`: opening the RAM file, describing the kernel from its kallsyms
//!   (VMCOREINFO search, paging, banner, BTF from memory, layout) and `dump --all
//!   --json` into a sink;
//! - `refresh_walk`: the description kept, translations forgotten, every entry of every
//!   map read (what a VMM pays per pause; the page walks weigh most here).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mapwalk::describe::{describe, KernelSpec, MemoryHints, SymbolSource};
use mapwalk::dump::dump_all;
use mapwalk::render::Format;
use mapwalk::source::{MapSource, MemorySource};
use mapwalk_benches::WARM_UP;
use mapwalk_e2e::arm64::{arm64_guest, Arm64Config};
use mapwalk_e2e::GuestConfig;
use mapwalk_file::{Layout, RamFile};

/// One guest to measure: its RAM file, layout and symbols.
struct Side {
    name: &'static str,
    ram: PathBuf,
    layout: Option<Layout>,
    symbols: PathBuf,
}

impl Side {
    fn open(&self) -> RamFile {
        let mut o = RamFile::options();
        if let Some(l) = &self.layout {
            o = o.layout(l.clone());
        }
        o.open(&self.ram).expect("open the RAM file")
    }

    fn source(&self) -> MemorySource<RamFile> {
        let kernel =
            describe(self.open(), &spec(&self.symbols), &MemoryHints::default()).expect("describe");
        MemorySource::new(kernel)
    }
}

fn spec(symbols: &Path) -> KernelSpec {
    KernelSpec::new(SymbolSource::SymbolFile(symbols.to_path_buf()))
}

fn write_symbols(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("bench-kallsyms");
    std::fs::write(&path, text).expect("write the guest's kallsyms");
    path
}

/// Every entry of every map: the entries read.
fn walk(src: &MemorySource<RamFile>) -> u64 {
    let mut entries = 0u64;
    for m in &src.maps().expect("maps") {
        let _ = src.for_each_entry(m, &mut |_, _| {
            entries += 1;
            std::ops::ControlFlow::Continue(())
        });
    }
    entries
}

fn arm64_x86(c: &mut Criterion) {
    let Some(arm) = arm64_guest("arm64_x86", &Arm64Config::DEB13_ARM64_4K_LPA2_PLAIN) else {
        eprintln!("arm64_x86: no arm64 guest could be booted (see above): NOTHING IS MEASURED");
        return;
    };
    let Some(x86) = mapwalk_e2e::guest("arm64_x86", &GuestConfig::DEB13_KASLR_5LEVEL) else {
        eprintln!("arm64_x86: no x86_64 guest could be booted (see above): NOTHING IS MEASURED");
        return;
    };
    let sides = [
        Side {
            name: "arm64",
            ram: arm.ram_path().to_path_buf(),
            layout: Some(arm.ram_layout().expect("layout")),
            symbols: write_symbols(arm.dir(), &arm.report().sections["kallsyms"]),
        },
        Side {
            name: "x86_64",
            ram: x86.ram_path().to_path_buf(),
            layout: None,
            symbols: write_symbols(x86.dir(), &x86.report().sections["kallsyms"]),
        },
    ];
    let _arm_paused = arm.pause().expect("pause the arm64 guest");
    let _x86_paused = x86.pause().expect("pause the x86_64 guest");

    let mut g = c.benchmark_group("arm64_x86");
    g.warm_up_time(WARM_UP);
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    for side in &sides {
        let entries = walk(&side.source());
        eprintln!("arm64_x86/{}: {entries} entries", side.name);
        g.bench_function(format!("describe_and_dump/{}", side.name), |b| {
            b.iter(|| {
                let src = black_box(side).source();
                dump_all(&src, Format::Json, &mut std::io::sink(), &mut |_| {}).expect("dump")
            })
        });
        let src = side.source();
        g.bench_function(format!("refresh_walk/{}", side.name), |b| {
            b.iter(|| {
                src.refresh();
                walk(black_box(&src))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, arm64_x86);
criterion_main!(benches);
