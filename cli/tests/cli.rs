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

const SHOW_KEYS: [&str; 7] = [
    "id",
    "type",
    "name",
    "flags",
    "bytes_key",
    "bytes_value",
    "max_entries",
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

    // Human listing: bpftool's two lines per map.
    let human = run(&["maps"]);
    assert!(human.status.success());
    let text = String::from_utf8(human.stdout).unwrap();
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

#[test]
fn help_documents_the_exit_statuses() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "Exit status:",
        "0  the whole answer",
        "1  reserved",
        "2  error",
        "3  partial answer",
    ] {
        assert!(help.contains(line), "{line:?} not in {help}");
    }
    // A command line clap refuses is an error too.
    assert_eq!(run(&["dump"]).status.code(), Some(2));
}

/// A scratch directory, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mapwalk-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn input_files_that_cannot_be_read_whole_are_refused() {
    let dir = Scratch::new("inputs");
    let (ram, syms, fifo, big) = (
        dir.path("ram"),
        dir.path("kallsyms"),
        dir.path("fifo"),
        dir.path("big.kallsyms"),
    );
    std::fs::write(&ram, vec![0u8; 1 << 20]).unwrap();
    std::fs::write(&syms, "ffffffff81000000 T _text\n").unwrap();
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Sparse: its size alone is refused, nothing of it is read.
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(mapwalk::input::MAX_SYMBOLS_FILE + 1).unwrap();
    drop(f);
    let d = dir.0.to_str().unwrap();
    let cases: [(&[&str], &str, &str); 10] = [
        (&["--ram", &fifo, "--symbols", &syms], "--ram", "a FIFO"),
        (&["--core", &fifo, "--symbols", &syms], "--core", "a FIFO"),
        (&["--ram", d, "--symbols", &syms], "--ram", "a directory"),
        (
            &["--ram", "/dev/zero", "--symbols", &syms],
            "--ram",
            "a character device",
        ),
        (
            &["--ram", &ram, "--symbols", "/dev/zero"],
            "--symbols",
            "a character device",
        ),
        (&["--ram", &ram, "--symbols", d], "--symbols", "a directory"),
        (&["--ram", &ram, "--symbols", &fifo], "--symbols", "a FIFO"),
        (
            &["--ram", &ram, "--symbols", &syms, "--btf", "/dev/zero"],
            "--btf",
            "a character device",
        ),
        (
            &["--ram", &ram, "--vmlinux", "/dev/zero"],
            "--vmlinux",
            "a character device",
        ),
        (&["--core", &ram, "--vmlinux", &fifo], "--vmlinux", "a FIFO"),
    ];
    for (args, option, kind) in cases {
        let mut all = args.to_vec();
        all.push("maps");
        let (code, err) = status_and_stderr(&run_quickly(&all, 20));
        assert_eq!(code, Some(2), "{all:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{all:?}: {err}");
        assert!(
            err.starts_with(&format!("mapwalk: error: {option}: ")) && err.contains(kind),
            "{all:?}: {err}"
        );
    }
    // Too large: the file, its size and the cap.
    let (code, err) = status_and_stderr(&run_quickly(
        &["--ram", &ram, "--symbols", &big, "maps"],
        20,
    ));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let size = (mapwalk::input::MAX_SYMBOLS_FILE + 1).to_string();
    let cap = mapwalk::input::MAX_SYMBOLS_FILE.to_string();
    assert!(
        err.contains(&big) && err.contains(&size) && err.contains(&cap),
        "{err}"
    );
}

#[test]
fn json_is_asked_for_before_or_after_the_subcommand() {
    if !live_ready("json_is_asked_for_before_or_after_the_subcommand") {
        return;
    }
    let m = create(MapType::ARRAY, "mw_json_flag", 4, 4, 2);
    fill(&m, 2);
    let sel = format!("id:{}", m.id());
    let after = json_of(&run(&["dump", &sel, "--json"]), "dump --json");
    for args in [
        &["-j", "dump", &sel][..],
        &["--json", "dump", &sel],
        &["dump", "-j", &sel],
    ] {
        assert_eq!(json_of(&run(args), &format!("{args:?}")), after, "{args:?}");
    }
    let listing = json_of(&run(&["-j", "maps"]), "-j maps");
    assert!(
        listing
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == m.id()),
        "{listing}"
    );
}

#[test]
fn errors_name_the_map_and_the_likely_cause() {
    if !live_ready("errors_name_the_map_and_the_likely_cause") {
        return;
    }
    let (code, err) = status_and_stderr(&run(&["dump", "4000000333"]));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.trim_end(),
        "mapwalk: error: no map named 4000000333; did you mean id:4000000333?"
    );
    // A type whose values cannot be patched says so, and not that a key is missing.
    let _whole = whole_host();
    let rb = create(MapType::RINGBUF, "mw_write_rb", 0, 0, 4096);
    let (code, err) = status_and_stderr(&run(&[
        "write",
        &format!("id:{}", rb.id()),
        "--offset",
        "0",
        "--value",
        "00",
    ]));
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("of type ringbuf") && !err.contains("--key"),
        "{err}"
    );
}

#[test]
fn a_dump_that_cannot_be_whole_says_so_and_exits_3() {
    if !live_ready("a_dump_that_cannot_be_whole_says_so_and_exits_3") {
        return;
    }
    let _whole = whole_host();
    // A ring buffer has no entries a dump can walk: its dump is (wholly) partial.
    let rb = create(MapType::RINGBUF, "mw_partial_rb", 0, 0, 4096);
    let id = rb.id();
    let sel = format!("id:{id}");
    let named = format!("map id {id} (mw_partial_rb)");

    let out = run(&["dump", &sel, "--json"]);
    let (code, err) = status_and_stderr(&out);
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("mapwalk: incomplete: {named}: dumped in part: ")),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let last = v.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["partial"], true, "{v}");
    assert!(last["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");

    let out = run(&["dump", &sel]);
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text
        .trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    assert!(last.starts_with("Incomplete dump: "), "{text}");

    for json in [true, false] {
        let mut args = vec!["dump", "--all"];
        if json {
            args.push("--json");
        }
        let out = run(&args);
        let (code, err) = status_and_stderr(&out);
        assert_eq!(code, Some(3), "{args:?}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&format!("mapwalk: incomplete: {named}: dumped in part: "))),
            "{args:?}: {err}"
        );
        if json {
            let all: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
            let ours = all
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["id"] == id)
                .expect("the ring buffer in dump --all");
            assert_eq!(ours["partial"], true, "{ours}");
            assert!(ours["error"].is_string(), "{ours}");
        }
    }
}

/// Raw BTF: the types bpftool 7.1 was checked against (same blob loaded into the kernel
/// with BPF_BTF_LOAD; bpftool's `formatted` output equals the expectations below).
fn sample_btf() -> Vec<u8> {
    let mut strs = vec![0u8];
    let mut s = |name: &str| -> u32 {
        let off = strs.len() as u32;
        strs.extend_from_slice(name.as_bytes());
        strs.push(0);
        off
    };
    let mut types = Vec::new();
    let mut t = |name: u32, kind: u32, vlen: u32, kflag: u32, size: u32, extra: &[u32]| {
        for w in [name, (kind << 24) | (kflag << 31) | vlen, size]
            .iter()
            .chain(extra)
        {
            types.extend_from_slice(&w.to_le_bytes());
        }
    };
    let (int, ptr, array, strct, union, enm, typedef, cnst, var, datasec) =
        (1, 2, 3, 4, 5, 6, 8, 10, 14, 15);
    t(s("unsigned int"), int, 0, 0, 4, &[32]); // 1
    t(s("int"), int, 0, 0, 4, &[(1 << 24) | 32]); // 2
    t(s("char"), int, 0, 0, 1, &[(2 << 24) | 8]); // 3
    t(0, array, 0, 0, 0, &[3, 1, 8]); // 4: char[8]
    let (red, green, blue) = (s("RED"), s("GREEN"), s("BLUE"));
    t(s("color"), enm, 3, 0, 4, &[red, 0, green, 1, blue, 2]); // 5
    t(0, ptr, 0, 0, 2, &[]); // 6
    t(s("u32_t"), typedef, 0, 0, 1, &[]); // 7
    t(0, cnst, 0, 0, 7, &[]); // 8
    let m: Vec<u32> = [
        ("a", 8, 0),
        ("name", 4, 32),
        ("color", 5, 96),
        ("bf1", 1, (3 << 24) | 128),
        ("bf2", 2, (5 << 24) | 131),
        ("neg", 2, 160),
        ("p", 6, 192),
    ]
    .iter()
    .flat_map(|&(n, ty, off)| [s(n), ty, off])
    .collect();
    t(s("val"), strct, 7, 1, 32, &m); // 9
    t(s("_Bool"), int, 0, 0, 1, &[(4 << 24) | 8]); // 10
    t(s("counter"), var, 0, 0, 2, &[1]); // 11
    t(s("label"), var, 0, 0, 4, &[1]); // 12
    t(s(".bss"), datasec, 2, 0, 12, &[11, 0, 4, 12, 4, 8]); // 13
    t(0, array, 0, 0, 0, &[2, 1, 3]); // 14: int[3]
    let (ints, u) = (s("ints"), s("u"));
    t(s("pair"), union, 2, 0, 12, &[ints, 14, 0, u, 1, 0]); // 15
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9fu16.to_le_bytes());
    blob.extend_from_slice(&[1, 0]);
    for w in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strs.len() as u32,
    ] {
        blob.extend_from_slice(&w.to_le_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(&strs);
    blob
}

#[test]
fn btf_values_render_like_bpftool() {
    use mapwalk::render::typed::TypeRenderer;
    use mapwalk::render::{formatted, Types};
    use mapwalk::source::ValueRef;
    use serde_json::json;

    let btf = mapwalk::btf::parse(&sample_btf()).unwrap();
    let types = |key, value| Types {
        renderer: TypeRenderer::new(&btf),
        key,
        value,
    };
    let mut v = [0u8; 32];
    v[..4].copy_from_slice(&7u32.to_le_bytes());
    v[4..9].copy_from_slice(b"hello");
    v[12..16].copy_from_slice(&1u32.to_le_bytes());
    v[16] = 5 | ((-3i8 as u8 & 31) << 3);
    v[20..24].copy_from_slice(&(-42i32).to_le_bytes());
    v[24..32].copy_from_slice(&0xffff_8880_1234_5678u64.to_le_bytes());
    let f = formatted(&types(1, 9), &1u32.to_le_bytes(), ValueRef::Single(&v));
    let want = json!({"key":1,"value":{"a":7,"name":"hello","color":"GREEN","bf1":"0x5",
        "bf2":"0x1d","neg":-42,"p":18446612682375452280u64}});
    assert_eq!(f, want);
    // Key order is bpftool's (member order), not sorted.
    assert_eq!(f.to_string(), want.to_string());

    let mut v = [0u8; 32];
    v[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    v[4..6].copy_from_slice(&[1, 2]);
    v[12..16].copy_from_slice(&7u32.to_le_bytes());
    v[16] = 2 | (15 << 3);
    v[20..24].copy_from_slice(&i32::MAX.to_le_bytes());
    let f = formatted(&types(1, 9), &2u32.to_le_bytes(), ValueRef::Single(&v));
    assert_eq!(
        f,
        json!({"key":2,"value":{"a":4294967295u32,
            "name":["\u{1}","\u{2}","\u{0}","\u{0}","\u{0}","\u{0}","\u{0}","\u{0}"],
            "color":7,"bf1":"0x2","bf2":"0xf","neg":2147483647,"p":0}})
    );

    // A `.bss` map: no key type, a DATASEC value.
    let mut bss = (-5i32).to_le_bytes().to_vec();
    bss.extend_from_slice(b"abc\0\0\0\0\0");
    let f = formatted(&types(0, 13), &0u32.to_le_bytes(), ValueRef::Single(&bss));
    assert_eq!(
        f,
        json!({"value":{".bss":[{"counter":-5},{"label":"abc"}]}})
    );

    // A union (of an int array and an unsigned int), per CPU.
    let mut two = [0u8; 32];
    two[..12].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 3, 0, 0, 0]);
    let cpus = [0u32, 1];
    let f = formatted(
        &types(1, 15),
        &1u32.to_le_bytes(),
        ValueRef::per_cpu(&two, 16, 12, &cpus),
    );
    assert_eq!(
        f,
        json!({"key":1,"values":[
            {"cpu":0,"value":{"ints":[-1,2,3],"u":4294967295u32}},
            {"cpu":1,"value":{"ints":[0,0,0],"u":0}}]})
    );

    // People get pointers in hex.
    let p = TypeRenderer::new(&btf).hex_pointers(true);
    assert_eq!(p.render(6, &0x1234u64.to_le_bytes()), json!("0x1234"));
}

/// The memory path on a real Debian guest (QEMU/TCG, see `e2e/README.md`):
/// `--ram FILE --symbols FILE` lists the maps the guest's `/init` made and dumps them
/// as the guest itself reported them; `write` patches an ARRAY value in guest RAM.
/// Boots a guest (seconds to a minute), hence ignored by default:
/// `cargo test -p mapwalk-cli --test cli -- --ignored`.
#[test]
#[ignore = "boots a QEMU guest; run with --ignored"]
fn memory_path_matches_the_guest() {
    use mapwalk_e2e::{self as e2e, GuestConfig};

    let test = "cli::memory_path_matches_the_guest";
    let config = GuestConfig::DEB12_KASLR_5LEVEL;
    let Some(guest) = e2e::guest(test, &config) else {
        return;
    };
    let report = guest.report();
    let dir = std::env::temp_dir().join(format!("mapwalk-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"]).unwrap();
    let truth = report.bpf_maps().unwrap();
    let mut paused = guest.pause().unwrap();
    let ram = guest.ram_path().to_str().unwrap().to_owned();
    let syms = syms.to_str().unwrap().to_owned();
    let mem = |args: &[&str]| {
        let mut all = vec!["--ram", ram.as_str(), "--symbols", syms.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };

    let listing = json_of(&mem(&["maps", "--json"]), "memory maps --json");
    let hex = |b: &[u8]| -> Value { b.iter().map(|x| format!("0x{x:02x}")).collect() };
    let mut compared = Vec::new();
    for g in &truth {
        let ours = listing
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == g.id)
            .unwrap_or_else(|| panic!("{test}: map {} ({}) not listed", g.id, g.name));
        assert_eq!(ours["bytes_key"], g.key_size, "{ours}");
        assert_eq!(ours["bytes_value"], g.value_size, "{ours}");
        assert_eq!(ours["max_entries"], g.max_entries, "{ours}");
        assert_eq!(ours["flags"], g.flags, "{ours}");
        assert_eq!(
            ours["type"],
            MapType(g.map_type)
                .name()
                .map_or(json!(g.map_type), |n| json!(n))
        );

        let t = MapType(g.map_type);
        if !matches!(
            t,
            MapType::ARRAY
                | MapType::HASH
                | MapType::LRU_HASH
                | MapType::PERCPU_ARRAY
                | MapType::PERCPU_HASH
                | MapType::LRU_PERCPU_HASH
        ) {
            continue;
        }
        let sel = format!("id:{}", g.id);
        let dump = json_of(&mem(&["dump", &sel, "--json"]), "memory dump --json");
        let mut want: Vec<Value> = if !g.values.is_empty() {
            g.values
                .iter()
                .map(|(k, v)| json!({"key": hex(&k.to_le_bytes()), "value": hex(v)}))
                .collect()
        } else if !g.hash_values.is_empty() {
            g.hash_values
                .iter()
                .map(|(k, v)| json!({"key": hex(k), "value": hex(v)}))
                .collect()
        } else {
            g.percpu_values
                .iter()
                .map(|(k, cpus)| {
                    let values: Vec<Value> = cpus
                        .iter()
                        .map(|(cpu, v)| json!({"cpu": cpu, "value": hex(v)}))
                        .collect();
                    json!({"key": hex(k), "values": values})
                })
                .collect()
        };
        want.sort_by_key(|e| e["key"].to_string());
        let got = normalized(&dump);
        if want.is_empty() {
            continue;
        }
        assert_eq!(got, want, "{test}: map {} ({}) {t}", g.id, g.name);
        compared.push(t);
    }
    eprintln!("{test}: dumps equal the guest's own for {compared:?}");
    for t in [
        MapType::ARRAY,
        MapType::HASH,
        MapType::PERCPU_ARRAY,
        MapType::PERCPU_HASH,
    ] {
        assert!(compared.contains(&t), "{test}: no {t} map compared");
    }

    // A write into an ARRAY value, and back.
    let arr = truth
        .iter()
        .find(|g| g.map_type == MapType::ARRAY.0 && g.value_size >= 2 && !g.values.is_empty())
        .expect("an ARRAY map");
    let sel = format!("id:{}", arr.id);
    let before = arr.values[&0].clone();
    let out = mem(&["write", &sel, "--offset", "0", "--value", "c3 5a"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = json_of(&mem(&["dump", &sel, "--json"]), "dump after write");
    assert_eq!(dump[0]["value"][0], "0xc3");
    assert_eq!(dump[0]["value"][1], "0x5a");
    let restore = render_hex(&before[..2]);
    let out = mem(&["write", &sel, "--offset", "0", "--value", &restore]);
    assert!(out.status.success());
    let size = arr.value_size.to_string();
    let out = mem(&["write", &sel, "--offset", &size, "--value", "00"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of bounds"));

    // The same guest as an ELF core (QEMU dump-guest-memory): the same maps and dumps;
    // writes are refused.
    let core = dir.join("guest.core");
    paused
        .qmp()
        .execute(
            "dump-guest-memory",
            Some(json!({"paging": false, "protocol": format!("file:{}", core.display())})),
        )
        .unwrap();
    let core = core.to_str().unwrap().to_owned();
    let from_core = |args: &[&str]| {
        let mut all = vec!["--core", core.as_str(), "--symbols", syms.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };
    let core_listing = json_of(&from_core(&["maps", "--json"]), "core maps --json");
    assert_eq!(core_listing, listing);
    let all_ram = json_of(&mem(&["dump", "--all", "--json"]), "ram dump --all");
    let all_core = json_of(&from_core(&["dump", "--all", "--json"]), "core dump --all");
    assert_eq!(all_core, all_ram);
    let out = from_core(&["write", &sel, "--offset", "0", "--value", "00"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn render_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `lookup` and `getnext` against `bpftool map lookup` / `map getnext` on the same
/// maps: the same JSON for every key of an array, a hash and a per-CPU array; next keys
/// of the array in its order; a missing key an error (exit 2).
#[test]
fn lookup_and_getnext_match_bpftool() {
    if !live_ready("lookup_and_getnext_match_bpftool") {
        return;
    }
    let maps = [
        create(MapType::ARRAY, "mw_lk_array", 4, 12, 5),
        create(MapType::HASH, "mw_lk_hash", 8, 6, 16),
        create(MapType::PERCPU_ARRAY, "mw_lk_pcpu", 4, 8, 3),
    ];
    fill(&maps[0], 5);
    fill(&maps[1], 7);
    fill(&maps[2], 3);
    let hex_args = |key: &[u8]| -> Vec<String> { key.iter().map(|b| b.to_string()).collect() };
    for m in &maps {
        let id = m.id().to_string();
        let sel = format!("id:{id}");
        let dump = json_of(&run(&["dump", &sel, "--json"]), "dump");
        let entries = dump.as_array().unwrap();
        assert!(!entries.is_empty());
        for e in entries {
            let key: Vec<u8> = e["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| u8::from_str_radix(&b.as_str().unwrap()[2..], 16).unwrap())
                .collect();
            let key_hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let ours = json_of(
                &run(&["lookup", &sel, "--key", &key_hex, "--json"]),
                "lookup",
            );
            let mut args = vec!["map".to_owned(), "lookup".into(), "id".into(), id.clone()];
            args.push("key".into());
            args.extend(hex_args(&key));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let theirs = bpftool(&args);
            assert_eq!(ours, theirs, "map {id} key {key_hex}");
            assert_eq!(&ours, e, "lookup equals the dump's entry");
        }
    }
    // getnext through the array, as the kernel orders it.
    let id = maps[0].id().to_string();
    let sel = format!("id:{id}");
    let first = json_of(&run(&["getnext", &sel, "--json"]), "getnext");
    assert_eq!(first["key"], Value::Null);
    assert_eq!(first["next_key"], json!(["0x00", "0x00", "0x00", "0x00"]));
    let ours = json_of(
        &run(&["getnext", &sel, "--key", "02000000", "--json"]),
        "getnext",
    );
    let theirs = bpftool(&["map", "getnext", "id", &id, "key", "2", "0", "0", "0"]);
    assert_eq!(ours, theirs);
    let last = run(&["getnext", &sel, "--key", "04000000"]);
    assert_eq!(last.status.code(), Some(2), "no key after the last");
    let missing = run(&[
        "lookup",
        &format!("id:{}", maps[1].id()),
        "--key",
        "ffffffffffffffff",
    ]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8(missing.stderr).unwrap();
    assert!(err.contains("has no entry at key ff ff"), "{err}");
}
