//! A `watch` sample of a 206-map synthetic guest, beside a fresh `dump --all --json`
//! of the same guest per sample.
//!
//! The guest has as many maps as the 206-map Debian guest of the real-kernel tests:
//! 15 PERCPU_ARRAYs (16 entries of 16 bytes on 4 CPUs), 80 HASHes (256 entries,
//! 16-byte keys, 32-byte values), 111 ARRAYs (64 entries of 64 bytes); its RAM is a
//! file in the temporary directory, read through a `MemorySource` over a kernel
//! described once.
//!
//! - `sample`: `Watcher::capture` (refresh, every map and entry copied) and
//!   `Watcher::compare` with the previous sample (nothing changed: every entry looked
//!   up and compared) — what one `watch` sample costs once the kernel is described;
//! - `capture`: the read alone with no previous sample to take unchanged entries
//!   from (every entry copied: a first sample);
//! - `walk`: every entry of every map handed to a callback that only counts bytes:
//!   the floor under `capture`, which also copies each key and value;
//! - `dump_all_json`: `dump::dump_all` to JSON into memory, the work a fresh `mapwalk
//!   dump --all --json` does per sample after describing the kernel (a fresh process
//!   also describes the kernel each time: 0.2-0.3 s on a real guest, not counted here).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mapwalk::btf::KernelBtf;
use mapwalk::describe::{Kernel, Symbols};
use mapwalk::dump::dump_all;
use mapwalk::render::Format;
use mapwalk::source::{MapSource, MemorySource};
use mapwalk::watch::Watcher;
use mapwalk_benches::{SplitMix64, WARM_UP};
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::{KernelView, MapType, Pa};
use mapwalk_file::RamFile;

/// Maps in the guest.
const MAPS: u32 = 206;

/// The guest, and how many entries its maps hold.
fn guest() -> (SyntheticGuest, usize) {
    let mut entries = 0;
    let mut rng = SplitMix64::new(0x7761_7463);
    let mut b = GuestBuilder::x86_64(false)
        .possible_cpus(4)
        .ram_size(64 << 20);
    for id in 1..=MAPS {
        let name = format!("m{id}");
        let spec = match id % 13 {
            0 => {
                entries += 16;
                MapSpec::new(id, MapType::PERCPU_ARRAY, &name, 4, 16, 16)
                    .with_cpu_values(4, |k, cpu| vec![(k + cpu) as u8; 16])
            }
            1..=5 => {
                entries += 256;
                let mut s = MapSpec::hash(id, &name, 16, 32, 512);
                for _ in 0..256 {
                    let k = rng.next_u64().to_le_bytes();
                    s = s.entry(&[k, k].concat(), &[k, k, k, k].concat());
                }
                s
            }
            _ => {
                entries += 64;
                MapSpec::array(id, &name, 64, 64).with_values(|k| vec![k as u8; 64])
            }
        };
        b.add_map(spec);
    }
    (b.build(), entries)
}

fn source(g: &SyntheticGuest, path: &std::path::Path) -> MemorySource<RamFile> {
    assert_eq!(g.ram.base(), Pa(0));
    std::fs::write(path, g.ram.bytes()).expect("RAM file");
    let file = RamFile::options().open(path).expect("RAM file");
    MemorySource::new(Kernel {
        view: KernelView::new(file, g.paging, g.addrs),
        layout: g.layout,
        btf: KernelBtf::new(Vec::new()),
        symbols: Symbols::default(),
        map_idr: g.map_idr,
        prog_idr: Some(g.prog_idr),
        per_cpu_offset: Some(g.symbols.per_cpu_offset),
        nr_cpu_ids: Some(g.symbols.nr_cpu_ids),
        release: Some("6.1.0-synth".into()),
        warnings: Vec::new(),
        vmcoreinfo: None,
        phys_base: g.phys_base,
        page_offset_base: g.addrs.direct_map.expect("direct map").virt.0,
        slide: 0,
    })
}

fn watch(c: &mut Criterion) {
    let (g, expected) = guest();
    let path = std::env::temp_dir().join(format!("mapwalk-bench-watch-{}", std::process::id()));
    let src = source(&g, &path);

    // Check once: every map, every entry, and a second sample with no change.
    let mut w = Watcher::new("bench", Vec::new());
    let (snap, read) = w.capture(&src).expect("sample");
    assert_eq!(snap.maps.len(), MAPS as usize);
    let entries = snap.entry_count();
    assert_eq!(entries, expected);
    let first = w.compare(snap, read);
    assert!(first.diff.is_none());
    let (snap, read) = w.capture(&src).expect("sample");
    let second = w.compare(snap, read);
    assert!(second.diff.as_ref().expect("a diff").is_equal());
    let mut json = Vec::new();
    let summary = dump_all(&src, Format::Json, &mut json, &mut |_| {}).expect("dump");
    assert!(summary.is_whole());
    assert_eq!(summary.entries as usize, entries);
    eprintln!(
        "watch bench: {} maps, {entries} entries, dump --all --json {} bytes",
        src.maps().expect("maps").len(),
        json.len()
    );

    let mut group = c.benchmark_group("watch/206");
    group.warm_up_time(WARM_UP);
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    group.bench_function("sample", |b| {
        b.iter(|| {
            let (snap, read) = w.capture(black_box(&src)).expect("sample");
            w.compare(snap, read).maps.len()
        });
    });
    group.bench_function("capture", |b| {
        b.iter(|| w.capture(black_box(&src)).expect("sample").0.maps.len());
    });
    group.bench_function("walk", |b| {
        b.iter(|| {
            src.refresh();
            let mut bytes = 0usize;
            for m in src.maps().expect("maps") {
                src.for_each_entry(&m, &mut |k, _| {
                    bytes += k.len();
                    std::ops::ControlFlow::Continue(())
                })
                .expect("walk");
            }
            bytes
        });
    });
    group.bench_function("dump_all_json", |b| {
        let mut out = Vec::with_capacity(json.len());
        b.iter(|| {
            out.clear();
            dump_all(black_box(&src), Format::Json, &mut out, &mut |_| {}).expect("dump");
            out.len()
        });
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, watch);
criterion_main!(benches);
