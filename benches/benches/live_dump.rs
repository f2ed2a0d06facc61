//! A live 200,000-entry HASH map dumped as JSON to a file, end to end, by the release
//! `mapwalk` binary and by `bpftool -j map dump`, in the same run; and mapwalk's
//! phases timed alone in process (the `BPF_MAP_LOOKUP_BATCH` calls, the JSON
//! rendering), so that their shares of the end-to-end time are measured.
//!
//! The map: HASH, 8-byte keys and 8-byte values, no BTF (both tools print hex, the same
//! `[{"key":["0x..",..],"value":[..]},..]`), 200,000 entries filled with
//! `BPF_MAP_UPDATE_BATCH`. Its descriptor is held for the whole run.
//!
//! Needs root (creating maps, opening them by id) and `bpftool`; without either it
//! prints a loud SKIPPED line and exits. It runs
//! `cargo build --release -p mapwalk --bin mapwalk` itself first (or uses the binary
//! named by `MAPWALK_BIN`), and checks once that both tools' files hold the same
//! entries before anything is timed.
//!
//! ```sh
//! cargo bench -p mapwalk-benches --bench live_dump       # about 2 minutes
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::hint::black_box;
use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, SamplingMode, Throughput};
use mapwalk::render::{DumpWriter, Format};
use mapwalk_live::sys::{self, MapCreate};
use mapwalk_live::{DumpOptions, Entry, LiveMap, MapType, Value, ValueRef};

/// Entries in the map.
const ENTRIES: u32 = 200_000;
/// Key bytes.
const KEY: usize = 8;
/// Value bytes.
const VALUE: usize = 8;
/// Elements per `BPF_MAP_UPDATE_BATCH` call while filling.
const FILL_BATCH: usize = 10_000;
/// The criterion group of the dumps, and the directory of its results.
const GROUP: &str = "live_dump";
/// The group of the empty-map dumps (one process's fixed cost).
const STARTUP: &str = "live_dump_startup";

fn loud(msg: &str) {
    let _ = writeln!(io::stderr(), "\n!!!!!!!! live_dump: {msg} !!!!!!!!\n");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn find_bpftool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("bpftool"))
        .find(|p| p.is_file())
}

/// The release `mapwalk` binary: `MAPWALK_BIN`, or what
/// `cargo build --release -p mapwalk --bin mapwalk` reports it built.
fn mapwalk_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MAPWALK_BIN") {
        eprintln!("live_dump: using MAPWALK_BIN={}", Path::new(&p).display());
        return Ok(p.into());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    eprintln!(
        "live_dump: BUILDING THE RELEASE CLI: {cargo} build --release -p mapwalk --bin mapwalk \
         (set MAPWALK_BIN to time another binary)"
    );
    let out = Command::new(&cargo)
        .args(["build", "--release", "-p", "mapwalk", "--bin", "mapwalk"])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running {cargo}: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo build --release -p mapwalk: {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "mapwalk")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .ok_or_else(|| "cargo named no mapwalk executable".into())
}

/// Creates a HASH map of `ENTRIES` 8-byte keys and values and fills it in batches.
fn create_and_fill(name: &str, entries: u32) -> LiveMap {
    let spec = MapCreate::new(
        MapType::HASH,
        name,
        KEY as u32,
        VALUE as u32,
        entries.max(1),
    );
    let fd = sys::map_create(&spec).unwrap_or_else(|e| panic!("creating {spec:?}: {e}"));
    let map = LiveMap::from_fd(fd).expect("map info");
    let mut stored = 0u32;
    for start in (0..u64::from(entries)).step_by(FILL_BATCH) {
        let end = (start + FILL_BATCH as u64).min(u64::from(entries));
        // Spread keys (not 0..N) so that buckets fill as with real keys.
        let keys: Vec<u8> = (start..end)
            .flat_map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_ne_bytes())
            .collect();
        let values: Vec<u8> = (start..end)
            .flat_map(|i| (i ^ 0x5555_0000_aaaa).to_ne_bytes())
            .collect();
        stored += map
            .update_batch(&keys, &values)
            .expect("BPF_MAP_UPDATE_BATCH");
    }
    assert_eq!(stored, entries);
    map
}

/// Runs `program args > out`; panics unless it succeeds.
fn to_file(program: &Path, args: &[&str], out: &Path) {
    let file = File::create(out).expect("output file");
    let st = Command::new(program)
        .args(args)
        .stdout(file)
        .stderr(Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    assert!(st.success(), "{} {args:?}: {st}", program.display());
}

/// A dump file's entries, keyed by their `"key"` array (as JSON text).
fn entries_of(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read(path).expect("reading a dump");
    let json: serde_json::Value = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let list = json.as_array().expect("a JSON array of entries");
    let map: BTreeMap<_, _> = list
        .iter()
        .map(|e| (e["key"].to_string(), e.clone()))
        .collect();
    assert_eq!(map.len(), list.len(), "{}: a key twice", path.display());
    map
}

/// What one process of the CLI does in process: stream the batches into the renderer,
/// to `out`.
fn dump_render<W: Write>(map: &LiveMap, out: W) -> W {
    let mut w = DumpWriter::new(out, Format::Json, None);
    map.for_each_entry(DumpOptions::default(), |k, v| {
        w.entry(k, v).expect("render");
        ControlFlow::Continue(())
    })
    .expect("dump");
    w.finish().expect("finish")
}

/// Renders already-dumped entries as the CLI does.
fn render<W: Write>(entries: &[Entry], out: W) -> W {
    let mut w = DumpWriter::new(out, Format::Json, None);
    for e in entries {
        let v = match &e.value {
            Value::Single(v) => ValueRef::Single(v),
            Value::PerCpu(_) => unreachable!("a HASH map"),
        };
        w.entry(&e.key, v).expect("render");
    }
    w.finish().expect("finish")
}

/// Criterion's result directory for this run, as criterion itself finds it.
fn criterion_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return h.into();
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(&t).join("criterion");
    }
    // <target>/release/deps/live_dump-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|e| e.ancestors().nth(3).map(|t| t.join("criterion")))
        .unwrap_or_else(|| "target/criterion".into())
}

/// The median of a benchmark, in seconds, if criterion wrote it after `since` (in
/// this run: `--test` and `--profile-time` write none).
fn median(group_dir: &Path, name: &str, since: SystemTime) -> Option<f64> {
    let p = group_dir.join(name).join("new/estimates.json");
    if std::fs::metadata(&p).and_then(|m| m.modified()).ok()? < since {
        return None;
    }
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
    j["median"]["point_estimate"].as_f64().map(|ns| ns * 1e-9)
}

fn main() {
    if !is_root() {
        loud("SKIPPED: not root (creating BPF maps and opening them by id needs CAP_BPF and CAP_SYS_ADMIN)");
        return;
    }
    let Some(bpftool) = find_bpftool() else {
        loud("SKIPPED: bpftool is not installed (apt-get install bpftool)");
        return;
    };
    let mapwalk = match mapwalk_binary() {
        Ok(p) => p,
        Err(e) => {
            loud(&format!("SKIPPED: no release mapwalk binary: {e}"));
            return;
        }
    };
    eprintln!("live_dump: mapwalk binary {}", mapwalk.display());

    let t = std::time::Instant::now();
    let map = create_and_fill("mw_bench_dump", ENTRIES);
    let empty = create_and_fill("mw_bench_empty", 0);
    eprintln!(
        "live_dump: map id {} filled with {ENTRIES} entries in {:.3} s (empty map id {})",
        map.id(),
        t.elapsed().as_secs_f64(),
        empty.id()
    );
    let (id, empty_id) = (map.id().to_string(), empty.id().to_string());
    let mw_sel = format!("id:{id}");
    let mw_empty = format!("id:{empty_id}");
    let mw_args = ["dump", mw_sel.as_str(), "--json"];
    let bt_args = ["-j", "map", "dump", "id", id.as_str()];
    let mw_empty_args = ["dump", mw_empty.as_str(), "--json"];
    let bt_empty_args = ["-j", "map", "dump", "id", empty_id.as_str()];

    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let mw_file = tmp.join(format!("live_dump-{pid}-mapwalk.json"));
    let bt_file = tmp.join(format!("live_dump-{pid}-bpftool.json"));

    // The comparison is honest only if both write the same entries.
    to_file(&mapwalk, &mw_args, &mw_file);
    to_file(&bpftool, &bt_args, &bt_file);
    let (ours, theirs) = (entries_of(&mw_file), entries_of(&bt_file));
    assert_eq!(ours.len(), ENTRIES as usize, "mapwalk's entry count");
    assert!(ours == theirs, "mapwalk's and bpftool's dumps differ");
    let mw_bytes = std::fs::metadata(&mw_file).map(|m| m.len()).unwrap_or(0);
    let bt_bytes = std::fs::metadata(&bt_file).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "live_dump: checked: both files hold the same {ENTRIES} entries \
         (mapwalk {mw_bytes} bytes, bpftool {bt_bytes} bytes)"
    );
    let dumped = map.dump(DumpOptions::default()).expect("dump").entries;
    assert_eq!(dumped.len(), ENTRIES as usize);
    assert_eq!(
        render(&dumped, Vec::new()),
        std::fs::read(&mw_file).expect("mapwalk's file"),
        "the in-process renderer writes what the CLI wrote"
    );

    let dir = criterion_dir();
    let started = SystemTime::now();
    let mut c = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    let mut g = c.benchmark_group(GROUP);
    // Iterations of 10 ms to 1 s: one flat sample of a few iterations each, 10 samples.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(6))
        .throughput(Throughput::Elements(u64::from(ENTRIES)));
    let mut ran = 0;
    g.bench_function("bpftool_to_file", |b| {
        ran += 1;
        b.iter(|| to_file(&bpftool, &bt_args, &bt_file));
    });
    g.bench_function("mapwalk_to_file", |b| {
        ran += 1;
        b.iter(|| to_file(&mapwalk, &mw_args, &mw_file));
    });
    g.bench_function("mapwalk_in_process_to_file", |b| {
        ran += 1;
        b.iter(|| {
            let f = BufWriter::with_capacity(1 << 16, File::create(&mw_file).expect("file"));
            drop(dump_render(&map, f));
        });
    });
    g.bench_function("batch_lookups", |b| {
        ran += 1;
        b.iter(|| {
            let mut n = 0u64;
            map.for_each_entry(DumpOptions::default(), |k, v| {
                black_box((k, v));
                n += 1;
                ControlFlow::Continue(())
            })
            .expect("dump");
            assert_eq!(n, u64::from(ENTRIES));
        });
    });
    g.bench_function("dump_owned", |b| {
        ran += 1;
        b.iter(|| black_box(map.dump(DumpOptions::default()).expect("dump")));
    });
    g.bench_function("render_json", |b| {
        ran += 1;
        let mut buf = Vec::with_capacity(mw_bytes as usize + 4096);
        b.iter(|| {
            buf.clear();
            buf = render(black_box(&dumped), std::mem::take(&mut buf));
        });
    });
    g.finish();
    // The fixed cost of one process: start, open the map by id, one empty dump.
    let mut g = c.benchmark_group(STARTUP);
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g.bench_function("mapwalk", |b| {
        ran += 1;
        b.iter(|| to_file(&mapwalk, &mw_empty_args, &mw_file));
    });
    g.bench_function("bpftool", |b| {
        ran += 1;
        b.iter(|| to_file(&bpftool, &bt_empty_args, &bt_file));
    });
    g.finish();
    c.final_summary();

    let _ = std::fs::remove_file(&mw_file);
    let _ = std::fs::remove_file(&bt_file);
    drop((map, empty));

    // Shares of mapwalk's end-to-end time, from this run's medians (only when every
    // benchmark ran and was timed, so that no figure is an older run's).
    if ran < 8 {
        return;
    }
    let get = |g: &str, n: &str| median(&dir.join(g), n, started);
    let (
        Some(bt),
        Some(mw),
        Some(inproc),
        Some(batch),
        Some(owned),
        Some(rend),
        Some(st),
        Some(bst),
    ) = (
        get(GROUP, "bpftool_to_file"),
        get(GROUP, "mapwalk_to_file"),
        get(GROUP, "mapwalk_in_process_to_file"),
        get(GROUP, "batch_lookups"),
        get(GROUP, "dump_owned"),
        get(GROUP, "render_json"),
        get(STARTUP, "mapwalk"),
        get(STARTUP, "bpftool"),
    )
    else {
        return;
    };
    let row = |what: &str, t: f64| {
        eprintln!("  {what:<44} {:8.1} ms {:6.1}%", t * 1e3, 100.0 * t / mw);
    };
    eprintln!(
        "\nlive_dump: medians of this run, {ENTRIES} entries of {KEY}+{VALUE} bytes \
         (% of mapwalk end to end)"
    );
    row("bpftool -j map dump > file", bt);
    row("mapwalk dump --json > file", mw);
    row("  in process: batch lookups, render, write", inproc);
    row("  batch lookups alone (the syscalls)", batch);
    row("  rendering alone (to memory)", rend);
    row("  process start, empty map", st);
    row("  (dump into owned entries: not the CLI's way)", owned);
    row("bpftool process start, empty map", bst);
    eprintln!("  bpftool / mapwalk: {:.2}x", bt / mw);
}
