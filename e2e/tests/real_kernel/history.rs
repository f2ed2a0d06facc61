//! Snapshots, diffs and watch on a real guest, paused (QMP `stop`): a snapshot of its
//! RAM dumps byte for byte as the RAM does; two snapshots of the paused guest are
//! equal (`diff` exits 0) and two `watch` samples report no change; a value written
//! between two snapshots is the one change `diff` reports, with its BTF field, and
//! written back the snapshots are equal again; `watch --qmp` pauses the running guest
//! for each sample and reports each pause; `watch --json` across the same write
//! reports that one change and nothing more.
//!
//! Linux 6.1 and 6.12, on guests shared with the other tests of this binary (no boot
//! of their own); the original bytes go back before the guest runs again, so its
//! `/init` never sees the write.

use mapwalk_e2e::{self as e2e, GuestConfig};
use serde_json::Value;

use super::cli::Cli;

#[test]
fn deb12_kaslr_5level_snapshot_diff_watch() {
    snapshot_diff_watch(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_snapshot_diff_watch() {
    snapshot_diff_watch(&GuestConfig::DEB13_KASLR_5LEVEL);
}

fn snapshot_diff_watch(config: &GuestConfig) {
    let test = format!("real_kernel::history::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let one = truth
        .iter()
        .find(|m| m.name == "mw_one.bss")
        .unwrap_or_else(|| panic!("{test}: no mw_one.bss"));
    let dir = guest.dir().join(format!("history-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"]).unwrap();
    let cli = Cli::file("--ram", guest.ram_path(), &syms);
    let path = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    let ok = |args: &[&str]| {
        let out = cli.run(args);
        assert!(
            out.status.success(),
            "{test}: mapwalk {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let host = |args: &[&str]| {
        std::process::Command::new(e2e::inguest::host_mapwalk().unwrap())
            .args(args)
            .output()
            .unwrap()
    };

    let paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let (a, b) = (path("a.snap"), path("b.snap"));
    ok(&["snapshot", "-o", &a]);
    // The second one timed: the first may have waited for the binary to be built.
    let started = std::time::Instant::now();
    ok(&["snapshot", "-o", &b]);
    let snapshot_time = started.elapsed();
    let from_ram = ok(&["dump", "--all", "--json"]).stdout;
    let from_snap = host(&["--snapshot", &a, "dump", "--all", "--json"]);
    assert!(from_snap.status.success(), "{test}: {from_snap:?}");
    // A snapshot stores no kernel symbols (docs/stack-trace.md) and no kernel BTF
    // (docs/struct-ops.md): the same dump, but for the names of stack frames, which it
    // leaves null, and the decoded struct of STRUCT_OPS maps, which it leaves out
    // (saying so on stderr).
    let (named, unnamed) = (
        undecorate(&from_ram, true),
        undecorate(&from_snap.stdout, false),
    );
    let warned = String::from_utf8_lossy(&from_snap.stderr);
    assert!(
        warned.contains("struct_ops not decoded: a snapshot stores no kernel BTF"),
        "{test}: {warned}"
    );
    assert!(
        unnamed == named,
        "{test}: --snapshot dump --all --json differs from --ram ({} vs {} bytes)",
        from_snap.stdout.len(),
        from_ram.len()
    );
    let listed: Value = serde_json::from_slice(&from_ram).unwrap();
    assert!(listed.as_array().unwrap().len() >= truth.len());
    let same = host(&["diff", &a, &b]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{test}: {}",
        String::from_utf8_lossy(&same.stdout)
    );
    let watch = ok(&["watch", "--count", "2", "--interval", "10ms", "--json"]);
    let records: Vec<Value> = String::from_utf8(watch.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        2,
        "{test}: only the two sample records: {records:?}"
    );
    assert!(records.iter().all(|r| r["type"] == "sample"));
    let read_ms = records[1]["read_ms"].as_f64().unwrap();

    // One write between two snapshots: the one change.
    let old = &one.values[&0];
    let new: Vec<u8> = old[8..16].iter().map(|b| b ^ 0xa5).collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    ok(&[
        "write",
        "mw_one.bss",
        "--offset",
        "8",
        "--value",
        &hex(&new),
    ]);
    let c = path("c.snap");
    ok(&["snapshot", "-o", &c]);
    ok(&[
        "write",
        "mw_one.bss",
        "--offset",
        "8",
        "--value",
        &hex(&old[8..16]),
    ]);
    let d = path("d.snap");
    ok(&["snapshot", "-o", &d]);

    // watch --json across the same write: the one change record, nothing more.
    let mut child = std::process::Command::new(e2e::inguest::host_mapwalk().unwrap())
        .args(&cli.source)
        .arg("--symbols")
        .arg(&syms)
        .args(["watch", "--count", "2", "--interval", "3s", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["sample"], 1, "{test}: {first}");
    let written = std::time::Instant::now();
    ok(&[
        "write",
        "mw_one.bss",
        "--offset",
        "8",
        "--value",
        &hex(&new),
    ]);
    let write_took = written.elapsed();
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(child.wait().unwrap().success());
    assert!(
        write_took < std::time::Duration::from_millis(2500),
        "{test}: the write took {write_took:?}: too long to fall between the two samples"
    );
    let changed: Vec<&Value> = rest.iter().filter(|r| r["type"] != "sample").collect();
    assert_eq!(changed.len(), 1, "{test}: {rest:?}");
    assert_eq!(
        (
            changed[0]["type"].as_str(),
            changed[0]["op"].as_str(),
            &changed[0]["map"]
        ),
        (Some("change"), Some("changed"), &Value::from(one.id)),
        "{test}: {rest:?}"
    );
    assert_eq!(changed[0]["new"], diff_bytes(&want_after(old, &new)));
    ok(&[
        "write",
        "mw_one.bss",
        "--offset",
        "8",
        "--value",
        &hex(&old[8..16]),
    ]);
    drop(paused);
    let out = host(&["diff", &a, &c, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{test}: {out:?}");
    let diff: Value = serde_json::from_slice(&out.stdout).unwrap();
    let maps = diff["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 1, "{test}: {diff}");
    assert_eq!(maps[0]["id"], one.id);
    let changes = maps[0]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{test}: {diff}");
    assert_eq!(changes[0]["op"], "changed");
    assert_eq!(
        changes[0]["key"],
        serde_json::json!(["0x00", "0x00", "0x00", "0x00"])
    );
    let mut want = old.clone();
    want[8..16].copy_from_slice(&new);
    let got: Vec<u8> = changes[0]["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| u8::from_str_radix(&v.as_str().unwrap()[2..], 16).unwrap())
        .collect();
    assert_eq!(got, want, "{test}: the new value");
    // This guest's mw_one.bss has no BTF: no field names (the synthetic guests of the
    // CLI tests check them).
    assert_eq!(
        changes[0]["fields"],
        serde_json::json!([]),
        "{test}: {diff}"
    );
    assert_eq!(diff["same_boot"], true);
    let back = host(&["diff", &a, &d]);
    assert_eq!(back.status.code(), Some(0), "{test}: {back:?}");

    // watch with --qmp: the running guest paused for each sample, each pause reported,
    // and running again after.
    let qmp = guest.qmp_path();
    let qmp = qmp.to_str().unwrap();
    let args = [
        "--qmp",
        qmp,
        "watch",
        "mw_hash",
        "--count",
        "2",
        "--interval",
        "50ms",
        "--json",
    ];
    let watch = ok(&args);
    let pauses: Vec<f64> = String::from_utf8(watch.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "sample")
        .map(|r| r["pause_ms"].as_f64().unwrap_or(-1.0))
        .collect();
    assert_eq!(pauses.len(), 2, "{test}: {pauses:?}");
    assert!(pauses.iter().all(|&p| p > 0.0), "{test}: pauses {pauses:?}");
    let status = guest.hmp("info status").unwrap();
    assert!(
        status.contains("running"),
        "{test}: after watch --qmp: {status}"
    );
    let size = std::fs::metadata(&a).unwrap().len();
    eprintln!(
        "{test}: snapshot of {} maps in {:.2} s (process and description included), \
         {size} bytes ({} bytes of dump --all --json); a watch sample read in {read_ms} ms; \
         watch --qmp pauses {pauses:?} ms",
        listed.as_array().unwrap().len(),
        snapshot_time.as_secs_f64(),
        from_ram.len(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `old` with bytes 8..16 replaced by `new`.
fn want_after(old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut v = old.to_vec();
    v[8..16].copy_from_slice(new);
    v
}

/// Bytes as the JSON records show them.
fn diff_bytes(b: &[u8]) -> Value {
    b.iter().map(|x| format!("0x{x:02x}")).collect()
}

/// `dump --all --json` output with every stack frame's `"symbol"` null and every
/// entry's `"struct_ops"` removed; with `named`, checked to have named at least one
/// frame and decoded one struct_ops (and without, to have done neither).
fn undecorate(json: &[u8], named: bool) -> Value {
    let mut v: Value = serde_json::from_slice(json).expect("dump --all --json");
    let (mut names, mut decoded) = (0usize, 0usize);
    for map in v.as_array_mut().into_iter().flatten() {
        for e in map["entries"].as_array_mut().into_iter().flatten() {
            if let Some(o) = e.as_object_mut() {
                decoded += usize::from(o.remove("struct_ops").is_some());
            }
            for f in e["frames"].as_array_mut().into_iter().flatten() {
                if !f["symbol"].is_null() {
                    names += 1;
                }
                f["symbol"] = Value::Null;
            }
        }
    }
    assert_eq!(names > 0, named, "{names} named frames");
    assert_eq!(decoded > 0, named, "{decoded} decoded struct_ops");
    v
}
