//! `snapshot`, `--snapshot`, `diff` and `watch`: on synthetic guests (snapshots taken
//! through the library, read by the binary), and `watch` on live maps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use mapwalk::btf::KernelBtf;
use mapwalk::describe::{Kernel, Symbols};
use mapwalk::dump::dump_all;
use mapwalk::render::{self, Format};
use mapwalk::snapshot::{CaptureOptions, Snapshot};
use mapwalk::source::{MapSource, MemorySource};
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::{KernelView, Kva, MapType, Pa};
use mapwalk_file::RamFile;

use super::*;

/// Raw BTF: `u32` (id 1) and `struct pair { u32 a; u32 b; }` (id 2).
fn pair_btf() -> Vec<u8> {
    let strings = b"\0u32\0pair\0a\0b\0";
    let mut types = Vec::new();
    let mut w = |v: u32| types.extend_from_slice(&v.to_le_bytes());
    // INT u32: name, info (kind 1), size, encoding/offset/bits.
    w(1);
    w(1 << 24);
    w(4);
    w(32);
    // STRUCT pair: name, info (kind 4, two members), size; members (name, type, bits).
    w(5);
    w((4 << 24) | 2);
    w(8);
    w(10);
    w(1);
    w(0);
    w(12);
    w(1);
    w(32);
    let mut b = Vec::new();
    b.extend_from_slice(&0xeb9fu16.to_le_bytes());
    b.extend_from_slice(&[1, 0]);
    for v in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&types);
    b.extend_from_slice(strings);
    b
}

/// A guest with an array, a hash, a per-CPU array and a BTF-typed array; `changed`
/// makes exactly the changes [`the_changes_are_exactly_those`] expects.
fn guest(changed: bool) -> SyntheticGuest {
    let mut b = GuestBuilder::x86_64(false).possible_cpus(2);
    let hash = if changed {
        MapSpec::hash(2, "hash", 4, 4, 8)
            .entry(b"k001", b"v001")
            .entry(b"k002", b"V002")
            .entry(b"k004", b"v004")
    } else {
        MapSpec::hash(2, "hash", 4, 4, 8)
            .entry(b"k001", b"v001")
            .entry(b"k002", b"v002")
            .entry(b"k003", b"v003")
    };
    b.add_map(MapSpec::array(1, "arr", 8, 3).with_values(move |k| {
        let v = if changed && k == 1 {
            99
        } else {
            u64::from(k + 5)
        };
        v.to_le_bytes().to_vec()
    }))
    .add_map(hash)
    .add_map(
        MapSpec::new(3, MapType::PERCPU_ARRAY, "parr", 4, 4, 2).with_cpu_values(
            2,
            move |k, cpu| {
                let last = if changed && k == 1 && cpu == 1 { 7 } else { 0 };
                vec![k as u8, cpu as u8, 0, last]
            },
        ),
    )
    .add_map({
        let mut s = MapSpec::array(6, "typed", 8, 1).with_values(move |_| {
            let b = if changed { 3u32 } else { 2 };
            [1u32.to_le_bytes(), b.to_le_bytes()].concat()
        });
        s.btf_ids = (1, 2);
        s
    })
    .add_prog(mapwalk_core::synth::ProgSpec::new(5, "known").maps(&[1, 2]));
    let mut g = b.build();
    // The typed map's `struct btf`, standalone, in free RAM.
    let raw = pair_btf();
    let l = g.layout.btf_object.unwrap();
    let dm = g.addrs.direct_map.unwrap().virt.0;
    let obj = g.ram.alloc(256, 64);
    let data = g.ram.alloc(raw.len() as u64, 8);
    g.ram.write(data, &raw);
    g.ram.write_u64(Pa(obj.0 + u64::from(l.data)), dm + data.0);
    g.ram
        .write_u32(Pa(obj.0 + u64::from(l.data_size)), raw.len() as u32);
    g.ram.write_u32(Pa(obj.0 + u64::from(l.id)), 42);
    let typed = g.maps.iter().find(|m| m.id == 6).unwrap().kva;
    let field = g.pa_of(Kva(typed.0 + u64::from(g.layout.bpf_map.btf)));
    g.ram.write_u64(field, dm + obj.0);
    g
}

/// The guest's RAM in a file, and a memory source over it.
fn source(g: &SyntheticGuest, path: &Path) -> MemorySource<RamFile> {
    assert_eq!(g.ram.base(), Pa(0));
    std::fs::write(path, g.ram.bytes()).unwrap();
    let file = RamFile::options().open(path).unwrap();
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
        page_offset_base: g.addrs.direct_map.unwrap().virt.0,
        slide: 0,
    })
}

/// A scratch directory, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("mapwalk-history-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the snapshot of `src` to `path`.
fn save(src: &dyn MapSource, path: &str) -> Snapshot {
    let opts = CaptureOptions {
        progs: true,
        ..CaptureOptions::default()
    };
    let snap = Snapshot::capture(src, "ram:test", &opts).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    snap.write_to(&mut f).unwrap();
    snap
}

fn dump_of(src: &dyn MapSource, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    let summary = dump_all(src, format, &mut out, &mut |w| panic!("warning {w}")).unwrap();
    assert!(summary.is_whole(), "{:?}", summary.problems());
    out
}

#[test]
fn a_snapshot_dumps_as_its_source_did() {
    let dir = Dir::new("dump");
    let src = source(&guest(false), &dir.0.join("ram"));
    let file = dir.path("a.snap");
    let snap = save(&src, &file);
    assert_eq!(snap.maps.len(), 4);
    assert_eq!(snap.btfs.len(), 1, "the typed map's BTF is kept");
    let with = |args: &[&str]| {
        let mut all = vec!["--snapshot", file.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };
    let out = with(&["dump", "--all", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let direct = dump_of(&src, Format::Json);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(direct.clone()).unwrap()
    );
    // The typed value is rendered through the kept BTF.
    let v: Value = serde_json::from_slice(&direct).unwrap();
    assert_eq!(
        v[3]["entries"][0]["formatted"]["value"],
        json!({"a": 1, "b": 2})
    );
    let out = with(&["dump", "--all"]);
    assert_eq!(out.stdout, dump_of(&src, Format::Human));
    // One map, and the listing.
    let out = with(&["dump", "hash", "--json"]);
    let mut one = Vec::new();
    let meta = src
        .find(&mapwalk::source::MapSelector::parse("hash"))
        .unwrap();
    mapwalk::dump::dump_map(&src, &meta, Format::Json, &mut one, &mut |_| {}).unwrap();
    assert_eq!(out.stdout, one);
    let listing: Vec<Value> = src
        .maps()
        .unwrap()
        .iter()
        .map(|m| render::map_json_state(m, &src.state(m)))
        .collect();
    assert_eq!(json_of(&with(&["maps", "--json"]), "maps"), json!(listing));
    // The programs, as the source lists them.
    let progs = src.progs().unwrap();
    assert_eq!(progs.progs.len(), 1);
    assert_eq!(progs.progs[0].map_ids(), [1, 2]);
    let listed: Vec<Value> = progs.progs.iter().map(mapwalk::progs::prog_json).collect();
    assert_eq!(json_of(&with(&["progs", "--json"]), "progs"), json!(listed));
    assert_eq!(listed[0]["name"], "known");
    // A snapshot is read-only.
    let out = with(&["write", "arr", "--offset", "0", "--value", "00"]);
    let (code, err) = status_and_stderr(&out);
    assert_eq!(code, Some(2));
    assert!(err.contains("read-only"), "{err}");
}

/// The change records of map `name` in a `diff --json`, as (op, key as text).
fn changes(diff: &Value, name: &str) -> Vec<(String, String)> {
    let map = diff["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {diff}"));
    map["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let key: Vec<u8> = c["key"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| u8::from_str_radix(&b.as_str().unwrap()[2..], 16).unwrap())
                .collect();
            (c["op"].as_str().unwrap().to_owned(), format!("{key:?}"))
        })
        .collect()
}

#[test]
fn the_changes_are_exactly_those() {
    let dir = Dir::new("diff");
    let a = dir.path("a.snap");
    let b = dir.path("b.snap");
    save(&source(&guest(false), &dir.0.join("ram-a")), &a);
    save(&source(&guest(true), &dir.0.join("ram-b")), &b);

    let out = run(&["diff", &a, &b, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["equal"], false);
    assert_eq!(d["same_boot"], true);
    assert_eq!(d["maps"].as_array().unwrap().len(), 4, "{d}");
    let k = |i: u32| format!("{:?}", i.to_le_bytes().to_vec());
    let s = |t: &[u8]| format!("{:?}", t.to_vec());
    assert_eq!(changes(&d, "arr"), [("changed".into(), k(1))]);
    assert_eq!(
        changes(&d, "hash"),
        [
            ("changed".into(), s(b"k002")),
            ("removed".into(), s(b"k003")),
            ("added".into(), s(b"k004")),
        ]
    );
    assert_eq!(changes(&d, "parr"), [("changed".into(), k(1))]);
    assert_eq!(changes(&d, "typed"), [("changed".into(), k(0))]);
    let maps = d["maps"].as_array().unwrap();
    let parr = maps.iter().find(|m| m["name"] == "parr").unwrap();
    assert_eq!(
        parr["changes"][0]["new"][1],
        json!({"cpu": 1, "value": ["0x01", "0x01", "0x00", "0x07"]})
    );
    let typed = maps.iter().find(|m| m["name"] == "typed").unwrap();
    assert_eq!(
        typed["changes"][0]["fields"],
        json!([{"field": ".b", "old": 2, "new": 3}])
    );
    for key in ["maps_added", "maps_removed", "ambiguous", "incomplete"] {
        assert_eq!(d[key], json!([]), "{key}");
    }

    // The text, one map; equal snapshots.
    let out = run(&["diff", &a, &b, "typed"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("map id 6 (typed) array: 0 added, 0 removed, 1 changed (entries 1 -> 1)"),
        "{text}"
    );
    assert!(text.contains("      .b: 2 -> 3"), "{text}");
    assert!(!text.contains("hash"), "{text}");
    let out = run(&["diff", &a, &a]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("equal: 4 maps compared"));
    // A snapshot against a source now (here: the other snapshot as the source).
    let out = run(&["--snapshot", &b, "diff", &a, "hash", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(changes(&d, "hash").len(), 3);
    assert_eq!(d["maps"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_snapshots_are_one_line_errors() {
    let dir = Dir::new("bad");
    let good = dir.path("good.snap");
    save(&source(&guest(false), &dir.0.join("ram")), &good);
    let bytes = std::fs::read(&good).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "cut.snap",
            bytes[..bytes.len() - 10].to_vec(),
            "snapshot truncated",
        ),
        (
            "junk.snap",
            b"not a snapshot at all".to_vec(),
            "not a mapwalk snapshot",
        ),
        (
            "newer.snap",
            [&bytes[..8], &[9, 0], &bytes[10..]].concat(),
            "snapshot format version 9 is newer than this mapwalk reads (1)",
        ),
        (
            "flipped.snap",
            {
                let mut b = bytes.clone();
                let mid = 20 + (b.len() - 20) / 2;
                b[mid] ^= 0xff;
                b
            },
            "snapshot ",
        ),
    ];
    for (name, data, want) in cases {
        let path = dir.path(name);
        std::fs::write(&path, data).unwrap();
        for args in [
            vec!["--snapshot", path.as_str(), "dump", "--all"],
            vec!["diff", good.as_str(), path.as_str()],
        ] {
            let (code, err) = status_and_stderr(&run(&args));
            assert_eq!(code, Some(2), "{name} {args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{name}: {err}");
            assert!(err.contains(want) && err.contains(name), "{name}: {err}");
        }
    }
    // A directory or a FIFO is refused before it is opened.
    let fifo = dir.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for other in [dir.0.to_str().unwrap(), fifo.as_str()] {
        let (code, err) = status_and_stderr(&run_quickly(&["diff", &good, other], 10));
        assert_eq!(code, Some(2), "{other}: {err}");
        assert!(err.starts_with("mapwalk: error: snapshot: "), "{err}");
    }
    // diff needs two snapshots without a source.
    let (code, err) = status_and_stderr(&run(&["diff", &good]));
    assert_eq!(code, Some(2));
    assert!(err.contains("diff needs two snapshots"), "{err}");
}

/// `watch --json` on a live hash: the one entry added between two samples is the one
/// change reported; the plain line mode says the same without a terminal.
#[test]
fn watch_reports_the_entry_added_between_samples() {
    let test = "history::watch_reports_the_entry_added_between_samples";
    if !live_ready(test) {
        return;
    }
    let map = create(MapType::HASH, "mw_watch", 4, 8, 16);
    map.update(&1u32.to_le_bytes(), &[1; 8], Update::Any)
        .unwrap();
    let sel = format!("id:{}", map.info().id);
    for json in [true, false] {
        let mut args = vec!["watch", sel.as_str(), "--interval", "400ms", "--count", "3"];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        // After the first sample, before the second.
        let key = if json { 2u32 } else { 3 };
        map.update(&key.to_le_bytes(), &[key as u8; 8], Update::Any)
            .unwrap();
        let rest: Vec<String> = lines.map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        if json {
            let first: Value = serde_json::from_str(&first).unwrap();
            assert_eq!(
                (first["type"].as_str(), first["sample"].as_u64()),
                (Some("sample"), Some(1))
            );
            assert_eq!(first["maps"][0]["entries"], 1);
            let recs: Vec<Value> = rest
                .iter()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let changes: Vec<&Value> = recs.iter().filter(|r| r["type"] == "change").collect();
            assert_eq!(changes.len(), 1, "{rest:?}");
            assert_eq!(changes[0]["op"], "added");
            assert_eq!(changes[0]["key"], json!(["0x02", "0x00", "0x00", "0x00"]));
            assert_eq!(changes[0]["value"], json!(vec!["0x02"; 8]));
            let samples: Vec<&Value> = recs.iter().filter(|r| r["type"] == "sample").collect();
            assert_eq!(samples.len(), 2);
            assert_eq!(samples[1]["maps"][0]["entries"], 2);
        } else {
            assert!(first.starts_with("sample 1 at "), "{first}");
            assert!(first.contains(": 1 maps, 2 entries, 0 changes"), "{first}");
            let adds: Vec<&String> = rest.iter().filter(|l| l.starts_with("  + key")).collect();
            assert_eq!(adds.len(), 1, "{rest:?}");
            assert_eq!(adds[0], "  + key 03 00 00 00: 03 03 03 03 03 03 03 03");
            assert!(
                !rest
                    .iter()
                    .any(|l| l.starts_with("  - ") || l.starts_with("  ~ ")),
                "{rest:?}"
            );
        }
    }
}

/// `mapwalk snapshot` of the live host: the maps read back from the file dump as the
/// host does, and a snapshot compared with the host unchanged is equal.
#[test]
fn a_live_snapshot_dumps_as_the_host() {
    let test = "history::a_live_snapshot_dumps_as_the_host";
    if !live_ready(test) {
        return;
    }
    let dir = Dir::new("live");
    let map = create(MapType::PERCPU_HASH, "mw_snap", 8, 12, 32);
    fill(&map, 5);
    let sel = format!("id:{}", map.info().id);
    let file = dir.path("host.snap");
    let out = run(&["snapshot", "-o", &file]);
    let (code, err) = status_and_stderr(&out);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.starts_with("mapwalk: saved "), "{err}");
    let from_file = run(&["--snapshot", &file, "dump", &sel, "--json"]);
    let from_host = run(&["dump", &sel, "--json"]);
    assert_eq!(from_file.stdout, from_host.stdout);
    assert_eq!(json_of(&from_file, "dump").as_array().unwrap().len(), 5);
    let out = run(&["--live", "diff", &file, &sel]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A key `fill` did not make.
    let values: Vec<Vec<u8>> = (0..ncpus()).map(|_| vec![0u8; 12]).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    map.update_percpu(&[0u8; 8], &refs, Update::Any).unwrap();
    let out = run(&["--live", "diff", &file, &sel, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        changes(&d, "mw_snap"),
        [("added".into(), format!("{:?}", vec![0u8; 8]))]
    );
}

/// A tmux server of the test's own, killed at the end.
struct Tmux(String);

impl Tmux {
    fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .expect("tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "w"]).stdout).into_owned()
    }

    /// Waits (at most 10 s) until the screen shows `text`; the screen.
    fn wait_for(&self, text: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                started.elapsed().as_secs() < 10,
                "no {text:?} on the screen:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The full-screen `watch` as a person sees it: under tmux at 110x24, two live maps,
/// an entry added to the second; selecting it (down) shows that entry highlighted
/// among its latest changes; `p` pauses, `q` quits.
#[test]
fn the_terminal_view_shows_the_changed_entry() {
    let test = "history::the_terminal_view_shows_the_changed_entry";
    if !live_ready(test) {
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: no tmux under CI"
        );
        eprintln!("SKIPPED: {test}: tmux is missing");
        return;
    }
    let first = create(MapType::ARRAY, "mw_tui_a", 4, 8, 2);
    let second = create(MapType::HASH, "mw_tui_b", 4, 8, 8);
    second
        .update(&1u32.to_le_bytes(), &[1; 8], Update::Any)
        .unwrap();
    let (a, b) = (first.info().id, second.info().id);
    let tmux = Tmux(format!("mapwalk-test-{}", std::process::id()));
    let line = format!("{BIN} watch id:{a} id:{b} --interval 200ms");
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "w",
        "-x",
        "110",
        "-y",
        "24",
        &line,
    ]);
    assert!(out.status.success(), "{out:?}");
    let screen = tmux.wait_for("sample 2,");
    assert!(
        screen.contains("mw_tui_a") && screen.contains("mw_tui_b"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("latest changes of map id {a} (mw_tui_a)")),
        "{screen}"
    );
    second
        .update(&2u32.to_le_bytes(), &[2; 8], Update::Any)
        .unwrap();
    tmux.cmd(&["send-keys", "-t", "w", "Down"]);
    let screen = tmux.wait_for("+ key 02 00 00 00: 02 02 02 02 02 02 02 02");
    assert!(
        screen.contains(&format!("latest changes of map id {b} (mw_tui_b)")),
        "{screen}"
    );
    // The map row: two entries now.
    let row = screen
        .lines()
        .find(|l| l.contains("mw_tui_b") && l.contains("hash"))
        .unwrap_or_else(|| panic!("{screen}"));
    let cells: Vec<&str> = row
        .trim_matches(|c| c == '│' || c == ' ')
        .split_whitespace()
        .collect();
    assert_eq!(
        cells[..4],
        [b.to_string().as_str(), "mw_tui_b", "hash", "2"],
        "{row}"
    );
    tmux.cmd(&["send-keys", "-t", "w", "p"]);
    tmux.wait_for("[paused: p resumes]");
    tmux.cmd(&["send-keys", "-t", "w", "q"]);
    let started = std::time::Instant::now();
    while tmux.cmd(&["has-session", "-t", "w"]).status.success() {
        assert!(
            started.elapsed().as_secs() < 10,
            "q did not quit:\n{}",
            tmux.screen()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
