//! A live 200,000-entry HASH map dumped as JSON to a file, end to end, by the release
//! `mapwalk` binary and by `bpftool -j map dump`, in the same run; and mapwalk's
//! phases timed alone in process (the `BPF_MAP_LOOKUP_BATCH` calls, the JSON
//! rendering), so that their shares of the end-to-end time are measured.
//!
//! The map: HASH, 8-byte keys and 8-byte values, no BTF (both tools print hex, the same
//! `[{"key":["0x..",..],"value":[..]},..]`), 200,000 entries filled with
//! `BPF_MAP_UPDATE_BATCH`. Its descriptor is held for the whole run.
//!
//! After criterion's benchmarks, which run one after another (so that on a loaded host
//! each sees a different load), two measurements that do not depend on the load
//! staying put: 10 pairs of end-to-end runs of both tools, interleaved (the ratio of
//! wall medians, and of the children's CPU time), and 20 in-process dumps done as the
//! CLI does them with a clock read around each phase of each batch (the shares of the
//! `BPF_MAP_LOOKUP_BATCH` calls, the rendering, the file writes and the file creation).
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
use std::time::{Duration, Instant, SystemTime};

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
        .args([
            "build",
            "--release",
            "-p",
            "mapwalk-cli",
            "--bin",
            "mapwalk",
        ])
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

/// CPU time (user + system) of this process's waited-for children so far, from
/// `/proc/self/stat` (`cutime`, `cstime`, in the kernel's 100 Hz `USER_HZ` ticks).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // cutime and cstime are fields 16 and 17, so 13 and 14 after the name.
    let ticks = f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// `bpftool` and `mapwalk` run back to back, `pairs` times (which goes first
/// alternates), so that both see the same load: wall and children's CPU time of each.
fn paired(pairs: u32, mut run: impl FnMut(bool)) -> [(Vec<f64>, Duration); 2] {
    let mut out = [(Vec::new(), Duration::ZERO), (Vec::new(), Duration::ZERO)];
    for i in 0..pairs {
        for tool in [i % 2 == 0, i % 2 != 0] {
            let (cpu, t) = (children_cpu(), Instant::now());
            run(tool);
            let (wall, cpu) = (t.elapsed(), children_cpu() - cpu);
            let slot = &mut out[usize::from(tool)];
            slot.0.push(wall.as_secs_f64());
            slot.1 += cpu;
        }
    }
    out
}

fn median_of(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A writer that counts the time spent in its `write`s (the file writes of a dump).
struct TimedWriter<W> {
    inner: W,
    spent: Duration,
}

impl<W: Write> Write for TimedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let t = Instant::now();
        let r = self.inner.write(buf);
        self.spent += t.elapsed();
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let t = Instant::now();
        let r = self.inner.flush();
        self.spent += t.elapsed();
        r
    }
}

/// Time of each phase of one in-process dump, as the CLI does it (4,096 elements per
/// `BPF_MAP_LOOKUP_BATCH`, rendering each batch as it arrives, 1 MiB writes to a
/// file), split per batch with a clock read around each phase (about 50 batches, so
/// the clock costs nothing).
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    /// Creating the file (truncating the previous dump) and the buffers (which take
    /// microseconds).
    setup: Duration,
    syscalls: Duration,
    render: Duration,
    write: Duration,
    total: Duration,
}

fn phased(map: &LiveMap, path: &Path) -> Phases {
    let total = Instant::now();
    let h = map.handle();
    let (kb, vb) = (h.key_bytes(), h.value_bytes().expect("a HASH map"));
    let cap = DumpOptions::default().batch_size;
    let n = cap as usize;
    let (mut keys, mut values) = (vec![0u8; kb * n], vec![0u8; vb * n]);
    let tb = h.batch_token_bytes();
    let (mut tin, mut tout) = (vec![0u8; tb], vec![0u8; tb]);
    let file = TimedWriter {
        inner: File::create(path).expect("file"),
        spent: Duration::ZERO,
    };
    let mut w = DumpWriter::new(file, Format::Json, None);
    let mut p = Phases {
        setup: total.elapsed(),
        ..Phases::default()
    };
    let mut first = true;
    loop {
        let t = Instant::now();
        let prev = if first { None } else { Some(&tin[..]) };
        let (count, done) = match h
            .lookup_batch(prev, &mut tout, &mut keys, &mut values, cap)
            .expect("batch")
        {
            sys::Batch::More(c) => (c, false),
            sys::Batch::Done(c) => (c, true),
            other => panic!("{other:?}"),
        };
        let t2 = Instant::now();
        p.syscalls += t2 - t;
        for (k, v) in keys
            .chunks_exact(kb)
            .zip(values.chunks_exact(vb))
            .take(count as usize)
        {
            w.entry(k, ValueRef::Single(v)).expect("render");
        }
        p.render += t2.elapsed();
        if done {
            break;
        }
        std::mem::swap(&mut tin, &mut tout);
        first = false;
    }
    let t = Instant::now();
    let file = w.finish().expect("finish");
    p.render += t.elapsed();
    p.write = file.spent;
    p.render -= p.write;
    p.total = total.elapsed();
    p
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

/// Whether a criterion name filter on the command line leaves none of this bench's
/// benchmarks (`cargo bench -p mapwalk-benches -- translate`): then the map, the
/// release build and the check are skipped. A substring test, not criterion's regex:
/// in doubt, it runs.
fn filtered_out() -> bool {
    const FLAGS: &[&str] = &[
        "--bench",
        "--noplot",
        "--test",
        "--list",
        "--quick",
        "--verbose",
        "--quiet",
        "--exact",
        "--ignored",
        "--discard-baseline",
        "--nocapture",
        "--show-output",
    ];
    const OURS: &[&str] = &[
        "live", "bpftool", "mapwalk", "batch", "dump", "render", "startup", "file",
    ];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with('-')
                && (*i == 0 || {
                    let prev = &args[i - 1];
                    !prev.starts_with("--") || FLAGS.contains(&prev.as_str())
                })
        })
        .map(|(_, a)| a)
        .collect();
    !filters.is_empty() && filters.iter().all(|f| !OURS.iter().any(|o| f.contains(o)))
}

fn main() {
    if filtered_out() {
        return;
    }
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

    let t = Instant::now();
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
    // One `watch` sample of this map alone (every entry read through the source and
    // compared with the previous sample): what watching it costs per sample.
    let live = mapwalk::source::LiveSource::new(DumpOptions::default());
    let mut watcher =
        mapwalk::watch::Watcher::new("live", vec![mapwalk::source::MapSelector::Id(map.id())]);
    g.bench_function("watch_sample", |b| {
        ran += 1;
        b.iter(|| {
            let (snap, read) = watcher.capture(black_box(&live)).expect("sample");
            assert_eq!(snap.maps[0].entries.len(), ENTRIES as usize);
            watcher.compare(snap, read).maps.len()
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

    drop(empty);

    // Shares of mapwalk's end-to-end time, from this run's medians (only when every
    // benchmark ran and was timed, so that no figure is an older run's).
    let cleanup = || {
        let _ = std::fs::remove_file(&mw_file);
        let _ = std::fs::remove_file(&bt_file);
    };
    if ran < 9 {
        cleanup();
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
        cleanup();
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

    // The figures above come from benchmarks run one after another: on a loaded host
    // the load moves between them. These come from runs interleaved in one loop.
    const PAIRS: u32 = 10;
    let [(mut mw_wall, mw_cpu), (mut bt_wall, bt_cpu)] = paired(PAIRS, |bpf| {
        if bpf {
            to_file(&bpftool, &bt_args, &bt_file);
        } else {
            to_file(&mapwalk, &mw_args, &mw_file);
        }
    });
    let ratios: Vec<f64> = bt_wall.iter().zip(&mw_wall).map(|(b, m)| b / m).collect();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &r| (lo.min(r), hi.max(r)));
    let (mwm, btm) = (median_of(&mut mw_wall), median_of(&mut bt_wall));
    eprintln!("\nlive_dump: {PAIRS} interleaved pairs of runs, to files");
    eprintln!(
        "  wall, median: bpftool {:.1} ms, mapwalk {:.1} ms: {:.2}x (per pair {lo:.2}x to {hi:.2}x)",
        btm * 1e3,
        mwm * 1e3,
        btm / mwm
    );
    eprintln!(
        "  CPU (user + system), mean: bpftool {:.1} ms, mapwalk {:.1} ms: {:.2}x",
        bt_cpu.as_secs_f64() * 1e3 / f64::from(PAIRS),
        mw_cpu.as_secs_f64() * 1e3 / f64::from(PAIRS),
        bt_cpu.as_secs_f64() / mw_cpu.as_secs_f64().max(1e-9)
    );
    let mut sum = Phases::default();
    const PHASED: u32 = 20;
    let cli_output = std::fs::read(&mw_file).expect("mapwalk's file");
    for i in 0..PHASED {
        let p = phased(&map, &mw_file);
        if i == 0 {
            assert!(
                std::fs::read(&mw_file).expect("phased file") == cli_output,
                "the phased dump writes what the CLI wrote"
            );
        }
        sum.setup += p.setup;
        sum.syscalls += p.syscalls;
        sum.render += p.render;
        sum.write += p.write;
        sum.total += p.total;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(PHASED);
    let share = |d: Duration| 100.0 * d.as_secs_f64() / sum.total.as_secs_f64();
    eprintln!("live_dump: {PHASED} in-process dumps to a file, each phase timed per batch (mean)");
    let rest = sum
        .total
        .saturating_sub(sum.setup + sum.syscalls + sum.render + sum.write);
    eprintln!("  total                          {:6.1} ms", ms(sum.total));
    for (what, d) in [
        ("BPF_MAP_LOOKUP_BATCH calls", sum.syscalls),
        ("rendering JSON", sum.render),
        ("file writes", sum.write),
        ("creating (truncating) the file", sum.setup),
        ("the rest (loop, clock reads)", rest),
    ] {
        eprintln!("  {what:<30} {:6.1} ms {:5.1}%", ms(d), share(d));
    }
    eprintln!(
        "  process start (empty map, median above) {:.1} ms: {:.1}% of mapwalk's paired median",
        st * 1e3,
        100.0 * st / mwm
    );
    cleanup();
}
