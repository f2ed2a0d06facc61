//! Every map type and the programs, against the ARRAY/HASH/per-CPU maps alone: what
//! reading the whole BPF state of a Debian 6.12 guest costs beside what a dump cost when
//! mapwalk read only those types.
//!
//! The real-kernel driver (`mapwalk-e2e`) boots the 6.12 guest of the real-kernel suite
//! (`GuestConfig::DEB13_KASLR_5LEVEL`: every map type user space can populate, programs,
//! a struct_ops, an arena) and pauses it for the run. Benchmarks (group `map_types`),
//! each a process spawned with stdout to `/dev/null`:
//!
//! - `base_dump_all`: `dump --all --json` by the baseline binary (`MAPWALK_BASE_BIN`),
//!   a `mapwalk` built from the commit before programs and the other map types were
//!   read (`benches/base-bin.sh`): it dumps the ARRAY, HASH, LRU_HASH and per-CPU maps
//!   and fails fast on the others (its exit status is not checked; what it dumped is
//!   printed once).
//! - `progs_and_dump_all`: `progs --json` then `dump --all --json` by this tree's release
//!   binary (`MAPWALK_BENCH_BIN`, else `target/release/mapwalk`): every program and every
//!   map of every type; beside it each of the two alone (`progs`, `dump_all`), and the
//!   phases of one `dump --all` (`MAPWALK_TIMING`) printed once.
//! - `dump_classic` and `progs_and_dump_all_lib`: the same two reads in this process
//!   over one description (this tree's library): the classic types' maps dumped one by
//!   one, and the programs listed with every map dumped.
//!
//! Without `MAPWALK_BASE_BIN` the process-level comparison is skipped, loudly.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mapwalk::describe::{describe, KernelSpec, MemoryHints, SymbolSource};
use mapwalk::dump::{dump_all, dump_map};
use mapwalk::render::Format;
use mapwalk::source::{MapSource, MapType, MemorySource};
use mapwalk_benches::WARM_UP;
use mapwalk_e2e::GuestConfig;
use mapwalk_file::RamFile;

/// The types mapwalk read before the other map types (what the baseline dumps): the
/// plain-data types, which `write` patches.
const CLASSIC: &[MapType] = mapwalk::source::VALUE_MAP_TYPES;

fn loud(what: &str) {
    eprintln!("\n========================================================================");
    eprintln!("map_types: {what}");
    eprintln!("========================================================================\n");
}

/// `BIN --ram RAM --symbols SYMS ARGS...` with stdout to `/dev/null`: whether it exited 0.
fn spawn(bin: &Path, ram: &Path, syms: &Path, args: &[&str]) -> bool {
    Command::new(bin)
        .arg("--ram")
        .arg(ram)
        .arg("--symbols")
        .arg(syms)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn mapwalk")
        .success()
}

fn map_types(c: &mut Criterion) {
    let config = GuestConfig::DEB13_KASLR_5LEVEL;
    let Some(guest) = mapwalk_e2e::guest("map_types", &config) else {
        loud("no guest could be booted (see above): NOTHING IS MEASURED");
        return;
    };
    let syms = guest.dir().join("bench-map-types-kallsyms");
    let text = guest.report().section("kallsyms").unwrap_or_default();
    std::fs::write(&syms, text).expect("write the guest's kallsyms");
    let _paused = guest.pause().expect("pause the guest");
    let ram = guest.ram_path().to_path_buf();

    let kernel = describe(
        RamFile::open(&ram).expect("open the RAM file"),
        &KernelSpec::new(SymbolSource::SymbolFile(syms.clone())),
        &MemoryHints::default(),
    )
    .expect("describe");
    let src = MemorySource::new(kernel);
    let maps = src.maps().expect("maps");
    let classic: Vec<_> = maps
        .iter()
        .filter(|m| CLASSIC.contains(&m.map_type))
        .copied()
        .collect();
    let progs = src.progs().expect("progs");
    let mut types: Vec<u32> = maps.iter().map(|m| m.map_type.0).collect();
    types.sort_unstable();
    types.dedup();
    eprintln!(
        "map_types: kernel {}, {} maps of {} types ({} of the classic types), {} programs",
        src.kernel().release.as_deref().unwrap_or("?"),
        maps.len(),
        types.len(),
        classic.len(),
        progs.progs.len()
    );
    assert!(!classic.is_empty() && maps.len() > classic.len() && !progs.progs.is_empty());

    let mut g = c.benchmark_group("map_types");
    g.warm_up_time(WARM_UP);
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);

    match (
        std::env::var_os("MAPWALK_BASE_BIN"),
        mapwalk_benches::release_binary(),
    ) {
        (Some(base), Some(bin)) => {
            let base = PathBuf::from(base);
            let whole = spawn(&base, &ram, &syms, &["dump", "--all", "--json"]);
            let out = Command::new(&base)
                .arg("--ram")
                .arg(&ram)
                .arg("--symbols")
                .arg(&syms)
                .args(["dump", "--all", "--json"])
                .stderr(Stdio::null())
                .output()
                .expect("spawn the baseline");
            let dumped: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            let with_entries = dumped.as_array().map_or(0, |a| {
                a.iter()
                    .filter(|m| m["entries"].as_array().is_some_and(|e| !e.is_empty()))
                    .count()
            });
            eprintln!(
                "map_types: the baseline's dump --all: exit {}, {} maps with entries",
                if whole { "0" } else { "non-zero" },
                with_entries
            );
            assert!(
                spawn(&bin, &ram, &syms, &["progs", "--json"])
                    && spawn(&bin, &ram, &syms, &["dump", "--all", "--json"]),
                "this tree's mapwalk reads the whole guest"
            );
            g.bench_function("base_dump_all", |b| {
                b.iter(|| spawn(&base, &ram, &syms, &["dump", "--all", "--json"]))
            });
            // Where a run's time goes, once.
            let timed = Command::new(&bin)
                .arg("--ram")
                .arg(&ram)
                .arg("--symbols")
                .arg(&syms)
                .args(["dump", "--all", "--json"])
                .env("MAPWALK_TIMING", "1")
                .stdout(Stdio::null())
                .output()
                .expect("spawn mapwalk");
            eprintln!(
                "map_types: dump --all phases:\n{}",
                String::from_utf8_lossy(&timed.stderr)
            );
            g.bench_function("dump_all", |b| {
                b.iter(|| spawn(&bin, &ram, &syms, &["dump", "--all", "--json"]))
            });
            g.bench_function("progs", |b| {
                b.iter(|| spawn(&bin, &ram, &syms, &["progs", "--json"]))
            });
            g.bench_function("progs_and_dump_all", |b| {
                b.iter(|| {
                    spawn(&bin, &ram, &syms, &["progs", "--json"])
                        && spawn(&bin, &ram, &syms, &["dump", "--all", "--json"])
                })
            });
        }
        (base, bin) => loud(&format!(
            "MAPWALK_BASE_BIN is {}, the release binary {}: the process comparison is NOT \
             MEASURED (benches/base-bin.sh builds the baseline; cargo build --release -p \
             mapwalk-cli this tree's)",
            if base.is_some() { "set" } else { "NOT SET" },
            if bin.is_some() { "found" } else { "NOT FOUND" },
        )),
    }

    let mut sink = std::io::sink();
    let mut warn = |w: &str| panic!("map_types: {w}");
    g.bench_function("dump_classic", |b| {
        b.iter(|| {
            for m in &classic {
                black_box(dump_map(&src, m, Format::Json, &mut sink, &mut warn).expect("dump"));
            }
        })
    });
    g.bench_function("progs_and_dump_all_lib", |b| {
        b.iter(|| {
            black_box(src.progs().expect("progs"));
            let s = dump_all(&src, Format::Json, &mut sink, &mut warn).expect("dump --all");
            assert!(s.is_whole(), "{:?}", s.problems());
        })
    });
    g.finish();
}

criterion_group!(benches, map_types);
criterion_main!(benches);
