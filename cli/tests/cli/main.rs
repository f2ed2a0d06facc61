//! The `mapwalk` binary against `bpftool` on the live host.
//!
//! Needs root and bpftool: without them each test prints a loud `SKIPPED` line on
//! stderr and passes, except under `CI=true`, where it fails.

use std::os::fd::OwnedFd;
use std::process::{Command, Output};

use mapwalk_live::sys::{map_create, MapCreate};
use mapwalk_live::{LiveMap, MapType, Update};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mapwalk");

mod btf;
mod btf_table;
mod errors;
mod history;
mod lookup;
mod progs;
mod storage;

/// Whether the live tests can run here; prints SKIPPED (or panics under CI) when not.
fn live_ready(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    let bpftool = Command::new("bpftool").arg("version").output().is_ok();
    if root && bpftool {
        return true;
    }
    let why = if root {
        "bpftool is missing"
    } else {
        "not root"
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: cannot run under CI: {why}");
    }
    eprintln!("SKIPPED: {test}: {why} (the live CLI tests need root and bpftool)");
    false
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run mapwalk")
}

/// Held by the tests that dump every map of the host, and by those that create a map
/// that cannot be dumped whole (which would make the others' answers partial).
static WHOLE_HOST: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn whole_host() -> std::sync::MutexGuard<'static, ()> {
    WHOLE_HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// `run`, killed (and failed) when it takes longer than `secs`: for arguments that
/// must not wait on anything (a FIFO).
fn run_quickly(args: &[&str], secs: u64) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mapwalk");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed().as_secs() >= secs {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mapwalk {args:?} still running after {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The exit status and stderr of `out`.
fn status_and_stderr(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_of(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn bpftool(args: &[&str]) -> Value {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("bpftool");
    json_of(&out, &format!("bpftool {args:?}"))
}

fn create(t: MapType, name: &str, key: u32, value: u32, max: u32) -> LiveMap {
    let fd: OwnedFd = map_create(&MapCreate::new(t, name, key, value, max)).expect("map_create");
    LiveMap::from_fd(fd).expect("LiveMap")
}

fn ncpus() -> usize {
    mapwalk_live::cpus::possible()
        .expect("possible cpus")
        .count()
}

/// Fills `map` with `n` entries whose bytes depend on the key (and the CPU).
fn fill(map: &LiveMap, n: u32) {
    let info = map.info();
    for i in 0..n {
        let mut key = vec![0u8; info.key_size as usize];
        for (j, b) in key.iter_mut().enumerate() {
            *b = (i as usize * 7 + j * 3) as u8;
        }
        key[..4].copy_from_slice(&i.to_le_bytes());
        let value = |cpu: usize| -> Vec<u8> {
            (0..info.value_size as usize)
                .map(|j| (i as usize * 31 + j * 5 + cpu * 101 + 1) as u8)
                .collect()
        };
        if info.map_type.is_percpu() {
            let values: Vec<Vec<u8>> = (0..ncpus()).map(value).collect();
            let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            map.update_percpu(&key, &refs, Update::Any)
                .expect("update_percpu");
        } else {
            map.update(&key, &value(0), Update::Any).expect("update");
        }
    }
}

/// Entries without `formatted`, sorted by key (hash maps walk in bucket order, which
/// need not be the same for batches and for GET_NEXT_KEY).
fn normalized(v: &Value) -> Vec<Value> {
    let mut entries: Vec<Value> = v
        .as_array()
        .expect("dump is an array")
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.as_object_mut().expect("entry object").remove("formatted");
            e
        })
        .collect();
    entries.sort_by_key(|e| e["key"].to_string());
    entries
}

/// A text dump's entries as sorted blocks (each from a `key:` line to the next), and
/// its last line (`Found N element(s)`).
fn text_blocks(text: &str) -> (Vec<String>, String) {
    let mut blocks: Vec<String> = Vec::new();
    let mut last = String::new();
    for line in text.lines() {
        if line.starts_with("Found ") {
            last = line.to_owned();
        } else if line.starts_with("key:") || blocks.is_empty() {
            blocks.push(format!("{line}\n"));
        } else if let Some(b) = blocks.last_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks.sort();
    (blocks, last)
}

const SHOW_KEYS: [&str; 9] = [
    "id",
    "type",
    "name",
    "flags",
    "bytes_key",
    "bytes_value",
    "max_entries",
    "bytes_memlock",
    "frozen",
];

#[test]
fn dumps_and_listings_match_bpftool() {
    if !live_ready("dumps_and_listings_match_bpftool") {
        return;
    }
    let specs = [
        (MapType::ARRAY, "mw_array", 4, 8, 6, 6),
        (MapType::ARRAY, "mw_array_odd", 4, 3, 5, 5),
        // Key and value over 24 bytes together, and a value over 16: bpftool's layouts.
        (MapType::ARRAY, "mw_array_24", 4, 24, 3, 3),
        (MapType::ARRAY, "mw_array_40", 4, 40, 2, 2),
        (MapType::HASH, "mw_hash_k20", 20, 4, 8, 3),
        (MapType::PERCPU_ARRAY, "mw_pcpu_arr20", 4, 20, 2, 2),
        (MapType::HASH, "mw_hash", 4, 12, 64, 40),
        (MapType::HASH, "mw_hash_empty", 8, 8, 16, 0),
        (MapType::HASH, "mw_hash_k13", 13, 5, 32, 20),
        (MapType::LRU_HASH, "mw_lru", 8, 16, 128, 30),
        (MapType::PERCPU_ARRAY, "mw_pcpu_arr", 4, 12, 4, 4),
        (MapType::PERCPU_HASH, "mw_pcpu_hash", 4, 8, 32, 10),
        (MapType::LRU_PERCPU_HASH, "mw_lru_pcpu", 8, 3, 64, 9),
    ];
    let maps: Vec<LiveMap> = specs
        .iter()
        .map(|&(t, name, k, v, max, n)| {
            let m = create(t, name, k, v, max);
            fill(&m, n);
            m
        })
        .collect();

    // One map frozen: `frozen` 1 and bpftool's `frozen` line.
    let frozen = maps[1].id();
    let out = Command::new("bpftool")
        .args(["map", "freeze", "id", &frozen.to_string()])
        .output()
        .expect("bpftool map freeze");
    assert!(out.status.success(), "bpftool map freeze: {out:?}");
    let listing = json_of(&run(&["maps", "--json"]), "mapwalk maps --json");
    for m in &maps {
        let id = m.id();
        let ours = listing
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("map {id} missing from mapwalk maps --json"));
        let theirs = bpftool(&["map", "show", "id", &id.to_string()]);
        for k in SHOW_KEYS {
            assert_eq!(ours[k], theirs[k], "map {id} key {k}: {ours} vs {theirs}");
        }
        assert_eq!(ours["frozen"], u8::from(id == frozen), "map {id}");

        let sel = format!("id:{id}");
        let ours = json_of(&run(&["dump", &sel, "--json"]), "mapwalk dump --json");
        let theirs = bpftool(&["map", "dump", "id", &id.to_string()]);
        assert_eq!(
            normalized(&ours),
            normalized(&theirs),
            "map {id} ({:?}) dumps differ",
            m.info().map_type
        );
        assert_eq!(
            ours.as_array().unwrap().len(),
            theirs.as_array().unwrap().len()
        );

        // By name, and human output.
        let name = m.info().name.as_str().unwrap().to_owned();
        let by_name = json_of(&run(&["dump", &name, "--json"]), "dump by name");
        assert_eq!(normalized(&by_name), normalized(&ours));
        // bpftool's plain text, entry for entry (hash maps in their own order: compared
        // as sorted blocks, each starting at its `key:`).
        let human = run(&["dump", &sel]);
        assert!(human.status.success());
        let text = String::from_utf8(human.stdout).unwrap();
        let plain = Command::new("bpftool")
            .args(["map", "dump", "id", &id.to_string()])
            .output()
            .expect("bpftool");
        let plain = String::from_utf8(plain.stdout).unwrap();
        assert_eq!(
            text_blocks(&text),
            text_blocks(&plain),
            "map {id} ({:?}): text dumps differ:\n{text}\n--- bpftool:\n{plain}",
            m.info().map_type
        );
    }

    // Human listing: bpftool's lines per map, the frozen one's third line included.
    let human = run(&["maps"]);
    assert!(human.status.success());
    let text = String::from_utf8(human.stdout).unwrap();
    for id in [maps[0].id(), frozen] {
        let theirs = Command::new("bpftool")
            .args(["map", "show", "id", &id.to_string()])
            .output()
            .expect("bpftool map show");
        let theirs = String::from_utf8(theirs.stdout).unwrap();
        assert!(
            text.contains(&theirs),
            "map {id}: bpftool's lines\n{theirs}not in mapwalk's listing:\n{text}"
        );
    }
    let id = maps[0].id();
    assert!(
        text.contains(&format!(
            "{id}: array  name mw_array  flags 0x0\n\tkey 4B  value 8B  max_entries 6"
        )),
        "{text}"
    );

    // dump --all includes every map, each with its entries.
    let all = {
        let _whole = whole_host();
        json_of(&run(&["dump", "--all", "--json"]), "dump --all")
    };
    for m in &maps {
        let e = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == m.id())
            .expect("map in dump --all");
        assert!(e["entries"].is_array(), "{e}");
    }
}

#[test]
fn suffix_selects_a_map() {
    if !live_ready("suffix_selects_a_map") {
        return;
    }
    let m = create(MapType::ARRAY, "mwsfx_q7.bss", 4, 16, 1);
    fill(&m, 1);
    let out = json_of(&run(&["dump", "x_q7.bss", "--json"]), "dump by suffix");
    let expected = bpftool(&["map", "dump", "id", &m.id().to_string()]);
    assert_eq!(normalized(&out), normalized(&expected));
}

#[test]
fn write_changes_a_value_and_refuses_out_of_bounds() {
    if !live_ready("write_changes_a_value_and_refuses_out_of_bounds") {
        return;
    }
    let arr = create(MapType::ARRAY, "mw_write_arr", 4, 8, 4);
    fill(&arr, 4);
    let sel = format!("id:{}", arr.id());
    let before = arr.lookup_index(1).unwrap().unwrap();
    let out = run(&[
        "write",
        &sel,
        "--key",
        "01 00 00 00",
        "--offset",
        "2",
        "--value",
        "aabb",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = arr.lookup_index(1).unwrap().unwrap();
    let mut want = before.single().unwrap().to_vec();
    want[2..4].copy_from_slice(&[0xaa, 0xbb]);
    assert_eq!(after.single().unwrap(), &want[..]);

    // Default key 0, hex offset.
    let out = run(&["write", &sel, "--offset", "0x7", "--value", "0x5a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        arr.lookup_index(0).unwrap().unwrap().single().unwrap()[7],
        0x5a
    );

    // Out of bounds: refused, nothing written, one clear line.
    let snapshot = arr.dump(Default::default()).unwrap().entries;
    for (offset, value) in [
        ("7", "0102"),
        ("8", "01"),
        ("0", "00 01 02 03 04 05 06 07 08"),
    ] {
        let out = run(&[
            "write", &sel, "--key", "01000000", "--offset", offset, "--value", value,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("out of bounds"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    assert_eq!(arr.dump(Default::default()).unwrap().entries, snapshot);

    // A hash map: the key must exist; a per-CPU map: every CPU's copy is patched.
    let hash = create(MapType::HASH, "mw_write_hash", 4, 4, 8);
    fill(&hash, 2);
    let hsel = format!("id:{}", hash.id());
    let out = run(&[
        "write", &hsel, "--key", "05000000", "--offset", "0", "--value", "01",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no entry"));
    let out = run(&[
        "write", &hsel, "--key", "01000000", "--offset", "3", "--value", "ee",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        hash.lookup(&1u32.to_le_bytes())
            .unwrap()
            .unwrap()
            .single()
            .unwrap()[3],
        0xee
    );

    let pcpu = create(MapType::PERCPU_ARRAY, "mw_write_pcpu", 4, 4, 2);
    fill(&pcpu, 2);
    let psel = format!("id:{}", pcpu.id());
    let out = run(&["write", &psel, "--offset", "1", "--value", "7f"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = pcpu.lookup_index(0).unwrap().unwrap();
    assert!(v.per_cpu().unwrap().iter().all(|c| c.bytes[1] == 0x7f));
}

#[test]
fn unknown_maps_and_bad_arguments_fail_with_one_line() {
    if !live_ready("unknown_maps_and_bad_arguments_fail_with_one_line") {
        return;
    }
    for args in [
        &["dump", "mw_no_such_map_anywhere"][..],
        &["dump", "id:4000000000"],
        &[
            "write",
            "mw_no_such_map_anywhere",
            "--offset",
            "0",
            "--value",
            "00",
        ],
        &[
            "--ram",
            "/nonexistent/ram",
            "--symbols",
            "/nonexistent/syms",
            "maps",
        ],
        &["--symbols", "/nonexistent/syms", "maps"],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("mapwalk: error: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let err = String::from_utf8(run(&["dump", "mw_no_such_map_anywhere"]).stderr).unwrap();
    assert!(err.contains("no map \"mw_no_such_map_anywhere\""), "{err}");
    let err =
        String::from_utf8(run(&["--ram", "/nonexistent/ram", "--symbols", "/x", "maps"]).stderr)
            .unwrap();
    assert!(err.contains("/nonexistent/ram"), "{err}");
    // With JSON, as `bpftool -j`: the error on stdout as `{"error": ...}` too.
    let out = run(&["dump", "mw_no_such_map_anywhere", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let json = json_of_any(&out.stdout);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        json["error"].as_str(),
        err.trim_end().strip_prefix("mapwalk: error: "),
        "{json} / {err}"
    );
}

fn json_of_any(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}
