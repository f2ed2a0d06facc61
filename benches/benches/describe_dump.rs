//! A real guest, end to end: `mapwalk --ram FILE --symbols KALLSYMS dump --all --json`
//! as a process, and its phases in this process.
//!
//! The guest is either given, or booted here:
//!
//! - `MAPWALK_BENCH_RAM` (a guest's RAM file, best paused) and `MAPWALK_BENCH_SYMBOLS`
//!   (its `/proc/kallsyms`);
//! - otherwise the real-kernel driver (`mapwalk-e2e`) boots Debian 12's kernel (Linux 6.1)
//!   with `mapwalk.bulk=194`: 221 maps, one of them a single 3 MiB value (see
//!   `e2e/README.md` for what it needs; about two minutes to boot), and pauses
//!   it for the run.
//!
//! Benchmarks (group `describe_dump`):
//!
//! - `process` (and `process_devnull`, output to `/dev/null`): the release `mapwalk`
//!   binary (`MAPWALK_BENCH_BIN`, else
//!   `target/release/mapwalk` beside this bench; build it first with
//!   `cargo build --release -p mapwalk-cli`), spawned with stdout to a file: process start
//!   and exit included.
//! - `process_devnull_zero_config`: `process_devnull` without `--symbols` (the kernel's
//!   own symbol table read from memory, through the VMCOREINFO found in RAM).
//! - `describe`: opening the RAM file and describing the kernel (symbols, VMCOREINFO,
//!   paging, banner, BTF read from guest memory, layout); `describe_zero_config`, the
//!   same with no symbols given.
//! - `symbols`: the symbol text searched for the names a description needs.
//! - `btf_layout`: the layout from the kernel's raw BTF (the library's reader), next to
//!   `btf_index`, every type of the same bytes indexed (what rendering a split map BTF
//!   needs of the kernel's).
//! - `walk`: every map listed and every entry read, over a described kernel.
//! - `refresh`: what a VMM does at each pause: the translation cache forgotten, every
//!   map listed and every entry read, the description kept; next to
//!   `describe_and_dump`, describing again and dumping every map as JSON to a sink.
//! - `watch_sample`: one `watch` sample over the kept description (every map read into a
//!   snapshot and compared with the previous sample).
//! - `walk_render`: every entry rendered as `bpftool -j` JSON (hex only).
//! - `dump_all`: the whole dump as the CLI writes it (map objects, BTF-typed values),
//!   into memory; next to `format_only`, the same entries' bytes (read beforehand)
//!   formatted alone.
//!
//! `process` also prints the peak resident memory of one run (`MAPWALK_TIMING=mem`).

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mapwalk::describe::{describe, KernelSpec, MemoryHints, Symbols, DESCRIBE_SYMBOLS};
use mapwalk::dump::dump_all;
use mapwalk::render::{DumpWriter, Format};
use mapwalk::source::{MapSource, MemorySource};
use mapwalk_benches::WARM_UP;
use mapwalk_e2e::GuestConfig;
use mapwalk_file::RamFile;

/// The guest's RAM file and symbols, and the pause that keeps it still.
struct Input {
    ram: PathBuf,
    symbols: PathBuf,
    _paused: Option<mapwalk_e2e::Paused<'static>>,
}

fn loud(what: &str) {
    eprintln!("\n========================================================================");
    eprintln!("describe_dump: {what}");
    eprintln!("========================================================================\n");
}

fn input() -> Option<Input> {
    match (
        std::env::var_os("MAPWALK_BENCH_RAM"),
        std::env::var_os("MAPWALK_BENCH_SYMBOLS"),
    ) {
        (Some(ram), Some(symbols)) => {
            return Some(Input {
                ram: ram.into(),
                symbols: symbols.into(),
                _paused: None,
            })
        }
        (ram, symbols) => loud(&format!(
            "MAPWALK_BENCH_RAM is {}, MAPWALK_BENCH_SYMBOLS is {}: booting a guest with \
             the real-kernel driver (`mapwalk-e2e`) instead",
            if ram.is_some() { "set" } else { "NOT SET" },
            if symbols.is_some() { "set" } else { "NOT SET" },
        )),
    }
    let config = GuestConfig::DEB12_KASLR_4LEVEL_BULK;
    let Some(guest) = mapwalk_e2e::guest("describe_dump", &config) else {
        loud("no guest could be booted (see above): NOTHING IS MEASURED");
        return None;
    };
    let symbols = guest.dir().join("bench-kallsyms");
    let text = guest.report().section("kallsyms").unwrap_or_default();
    std::fs::write(&symbols, text).expect("write the guest's kallsyms");
    let paused = guest.pause().expect("pause the guest");
    Some(Input {
        ram: guest.ram_path().to_path_buf(),
        symbols,
        _paused: Some(paused),
    })
}

fn spec(symbols: &Path) -> KernelSpec {
    KernelSpec::new(mapwalk::describe::SymbolSource::SymbolFile(
        symbols.to_path_buf(),
    ))
}

fn source(input: &Input) -> MemorySource<RamFile> {
    let ram = RamFile::open(&input.ram).expect("open the RAM file");
    let kernel = describe(ram, &spec(&input.symbols), &MemoryHints::default()).expect("describe");
    MemorySource::new(kernel)
}

/// Every entry of every map: (maps, entries, key and value bytes).
fn walk(src: &MemorySource<RamFile>) -> (usize, u64, u64) {
    let maps = src.maps().expect("maps");
    let (mut entries, mut bytes) = (0u64, 0u64);
    for m in &maps {
        // A map type the walkers do not read is not an error of the bench.
        let _ = src.for_each_entry(m, &mut |k, v| {
            entries += 1;
            bytes += k.len() as u64;
            match v {
                mapwalk::source::ValueRef::Single(v) => bytes += v.len() as u64,
                mapwalk::source::ValueRef::PerCpu(p) => {
                    bytes += p.iter().map(|(_, v)| v.len() as u64).sum::<u64>()
                }
            }
            std::ops::ControlFlow::Continue(())
        });
    }
    (maps.len(), entries, bytes)
}

/// Every entry of every map copied out of guest memory: (map, key, value bytes or
/// per-CPU copies), for `format_only`.
type Copied = Vec<(
    mapwalk::source::MapInfo,
    Vec<(Vec<u8>, Vec<u8>, Option<(usize, Vec<u32>)>)>,
)>;

fn copy_out(src: &MemorySource<RamFile>) -> Copied {
    let mut out = Copied::new();
    for m in src.maps().expect("maps") {
        let mut entries = Vec::new();
        let _ = src.for_each_entry(&m, &mut |k, v| {
            match v {
                mapwalk::source::ValueRef::Single(v) => {
                    entries.push((k.to_vec(), v.to_vec(), None))
                }
                mapwalk::source::ValueRef::PerCpu(p) => {
                    let cpus: Vec<u32> = p.iter().map(|(c, _)| c).collect();
                    let bytes: Vec<u8> = p.iter().flat_map(|(_, v)| v.to_vec()).collect();
                    entries.push((k.to_vec(), bytes, Some((m.value_size as usize, cpus))));
                }
            }
            std::ops::ControlFlow::Continue(())
        });
        out.push((m, entries));
    }
    out
}

/// The same bytes as `dump_all`'s entries, formatted alone (no guest memory read): the
/// floor of a whole dump.
fn format_only(copied: &Copied, out: &mut Vec<u8>) -> usize {
    out.clear();
    for (_, entries) in copied {
        let mut w = DumpWriter::new(&mut *out, Format::Json, None);
        for (k, v, percpu) in entries {
            let value = match percpu {
                None => mapwalk::source::ValueRef::Single(v),
                Some((size, cpus)) => mapwalk::source::ValueRef::per_cpu(v, *size, *size, cpus),
            };
            w.entry(k, value).expect("write to memory");
        }
        w.finish().expect("write to memory");
    }
    out.len()
}

/// Every map's entries rendered as JSON into `out`; the bytes written.
fn walk_render(src: &MemorySource<RamFile>, out: &mut Vec<u8>) -> usize {
    out.clear();
    for m in &src.maps().expect("maps") {
        let mut w = DumpWriter::new(&mut *out, Format::Json, None);
        let _ = src.for_each_entry(m, &mut |k, v| {
            w.entry(k, v).expect("write to memory");
            std::ops::ControlFlow::Continue(())
        });
        w.finish().expect("write to memory");
    }
    out.len()
}

fn describe_dump(c: &mut Criterion) {
    let Some(input) = input() else { return };
    let src = source(&input);
    let (maps, entries, bytes) = walk(&src);
    eprintln!(
        "describe_dump: {} ({} maps, {entries} entries, {bytes} key and value bytes), \
         kernel {}",
        input.ram.display(),
        maps,
        src.kernel().release.as_deref().unwrap_or("?")
    );
    assert!(maps > 0 && entries > 0, "the guest has maps with entries");

    let mut g = c.benchmark_group("describe_dump");
    g.warm_up_time(WARM_UP);
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);

    match mapwalk_benches::release_binary() {
        Some(bin) => {
            let out_path =
                std::env::temp_dir().join(format!("mapwalk-bench-{}.json", std::process::id()));
            // `mapwalk --ram FILE --symbols FILE dump --all --json`, stdout to `out`.
            let dump_all_cmd = |out: Stdio| {
                let mut cmd = Command::new(&bin);
                cmd.arg("--ram")
                    .arg(&input.ram)
                    .arg("--symbols")
                    .arg(&input.symbols)
                    .args(["dump", "--all", "--json"])
                    .stdout(out)
                    .stderr(Stdio::null());
                cmd
            };
            let spawn = |out: Stdio| {
                let status = dump_all_cmd(out).status().expect("spawn mapwalk");
                assert!(status.success(), "mapwalk failed: {status}");
            };
            // No kernel option: the symbols from the kernel's own table in memory,
            // found through the VMCOREINFO found in RAM.
            let zero_config = || {
                let status = Command::new(&bin)
                    .arg("--ram")
                    .arg(&input.ram)
                    .args(["dump", "--all", "--json"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("spawn mapwalk");
                assert!(status.success(), "mapwalk without symbols failed: {status}");
            };
            let run = || {
                spawn(
                    std::fs::File::create(&out_path)
                        .expect("output file")
                        .into(),
                )
            };
            // The same to /dev/null: the process without the file system's share.
            let run_null = || spawn(Stdio::null());
            run();
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&out_path).expect("read output"))
                    .expect("mapwalk wrote JSON");
            assert_eq!(
                json.as_array().map(Vec::len),
                Some(maps),
                "one object a map"
            );
            g.bench_function("process", |b| b.iter(run));
            g.bench_function("process_devnull", |b| b.iter(run_null));
            g.bench_function("process_devnull_zero_config", |b| b.iter(zero_config));
            // Peak memory of one run, as the process itself reports it.
            let out = std::fs::File::create(&out_path).expect("output file");
            let report = dump_all_cmd(out.into())
                .env("MAPWALK_TIMING", "mem")
                .stderr(Stdio::piped())
                .output()
                .expect("spawn mapwalk");
            let stderr = String::from_utf8_lossy(&report.stderr);
            // The last report is the one at exit (VmHWM there is the peak of the run).
            let memory = stderr.lines().rfind(|l| l.starts_with("mapwalk: memory:"));
            eprintln!(
                "describe_dump: process peak memory: {}; output {} bytes",
                memory.unwrap_or("(not reported)"),
                std::fs::metadata(&out_path).map(|m| m.len()).unwrap_or(0)
            );
            let _ = std::fs::remove_file(&out_path);
        }
        None => loud(
            "no release mapwalk binary (cargo build --release -p mapwalk-cli, or set \
             MAPWALK_BENCH_BIN): `process` NOT MEASURED",
        ),
    }

    g.bench_function("describe", |b| {
        b.iter(|| {
            let ram = RamFile::open(black_box(&input.ram)).expect("open");
            describe(ram, &spec(&input.symbols), &MemoryHints::default()).expect("describe")
        })
    });

    g.bench_function("describe_zero_config", |b| {
        b.iter(|| {
            let ram = RamFile::open(black_box(&input.ram)).expect("open");
            let mut spec = KernelSpec::new(mapwalk::describe::SymbolSource::GuestMemory);
            spec.btf = Some(mapwalk::describe::BtfSource::GuestMemory);
            describe(ram, &spec, &MemoryHints::default()).expect("describe without symbols")
        })
    });

    let text = std::fs::read(&input.symbols).expect("read the symbols");
    g.bench_function("symbols", |b| {
        b.iter(|| {
            let mut s = Symbols::from_text(black_box(text.clone())).expect("symbols");
            s.prefetch(DESCRIBE_SYMBOLS).expect("prefetch");
            s.lookup("map_idr").expect("map_idr")
        })
    });

    let raw = src.kernel().btf.raw().to_vec();
    assert_eq!(
        mapwalk::btf::layout_from_bytes(&raw)
            .expect("layout")
            .layout,
        src.kernel().layout
    );
    g.bench_function("btf_layout", |b| {
        b.iter(|| mapwalk::btf::layout_from_bytes(black_box(&raw)).expect("layout"))
    });
    g.bench_function("btf_index", |b| {
        b.iter(|| mapwalk::btf::parse(black_box(&raw)).expect("BTF"))
    });

    g.bench_function("walk", |b| b.iter(|| walk(black_box(&src))));
    // What a VMM does at each pause: the description kept, the translations forgotten,
    // every map listed and every entry read.
    g.bench_function("refresh", |b| {
        b.iter(|| {
            src.refresh();
            walk(black_box(&src))
        })
    });
    // What `watch` does per sample over the kept description: every map read into a
    // snapshot (unchanged maps keep the previous sample's entries) and compared.
    let mut watcher = mapwalk::watch::Watcher::new("bench", Vec::new());
    g.bench_function("watch_sample", |b| {
        b.iter(|| {
            src.refresh();
            let (snap, read) = watcher.capture(black_box(&src)).expect("sample");
            watcher.compare(snap, read).maps.len()
        })
    });
    // ...against describing again and dumping every map as JSON (to a sink).
    g.bench_function("describe_and_dump", |b| {
        b.iter(|| {
            let ram = RamFile::open(black_box(&input.ram)).expect("open");
            let kernel =
                describe(ram, &spec(&input.symbols), &MemoryHints::default()).expect("describe");
            let src = MemorySource::new(kernel);
            dump_all(&src, Format::Json, &mut std::io::sink(), &mut |_| {}).expect("dump")
        })
    });
    let mut out = Vec::new();
    g.bench_function("walk_render", |b| {
        b.iter(|| walk_render(black_box(&src), &mut out))
    });
    // The whole dump as the CLI writes it (maps, BTF-typed values), into memory...
    let mut dumped = Vec::new();
    dump_all(&src, Format::Json, &mut dumped, &mut |_| {}).expect("dump");
    g.bench_function("dump_all", |b| {
        b.iter(|| {
            dumped.clear();
            dump_all(black_box(&src), Format::Json, &mut dumped, &mut |_| {}).expect("dump")
        })
    });
    // ...next to formatting the same entries' bytes alone, read beforehand.
    let copied = copy_out(&src);
    g.bench_function("format_only", |b| {
        b.iter(|| format_only(black_box(&copied), &mut out))
    });
    g.finish();
    std::io::stderr().flush().ok();
}

criterion_group!(benches, describe_dump);
criterion_main!(benches);
