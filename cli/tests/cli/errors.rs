//! Exit statuses, refused inputs and errors that name their cause.

use super::*;

#[test]
fn help_documents_the_exit_statuses() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "Exit status:",
        "0  the whole answer",
        "1  differences found",
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
    // bpf() cannot list a queue without popping it: its dump is (wholly) partial.
    let q = create(MapType::QUEUE, "mw_partial_q", 0, 4, 4);
    let id = q.id();
    let sel = format!("id:{id}");
    let named = format!("map id {id} (mw_partial_q)");

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

#[test]
fn memory_that_is_no_linux_kernel_is_refused_in_one_line() {
    let dir = Scratch::new("not-linux");
    // Random bytes, zeros, and text: no VMCOREINFO anywhere, no kernel option given.
    let random: Vec<u8> = (0..4u32 << 20)
        .scan(0x9e37_79b9_u32, |s, _| {
            *s ^= *s << 13;
            *s ^= *s >> 17;
            *s ^= *s << 5;
            Some(*s as u8)
        })
        .collect();
    let text = "this is not the memory of a Linux kernel\n".repeat(100_000);
    for (name, bytes) in [
        ("random", random),
        ("zeros", vec![0u8; 4 << 20]),
        ("text", text.into_bytes()),
    ] {
        let path = dir.path(name);
        std::fs::write(&path, bytes).unwrap();
        let out = run(&["--ram", &path, "maps"]);
        let (code, stderr) = status_and_stderr(&out);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}: nothing on stdout");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        for part in [
            "no VMCOREINFO",
            "not a Linux kernel's memory",
            "--symbols FILE",
        ] {
            assert!(stderr.contains(part), "{name}: {part:?} not in {stderr}");
        }
    }
}

#[test]
fn a_long_search_shows_progress_on_a_terminal_only() {
    let dir = Scratch::new("progress");
    let path = dir.path("sparse");
    // 1 GiB of zeros (sparse): the VMCOREINFO search runs for seconds, finds nothing.
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let out = run(&["--ram", &path, "maps"]);
    let (code, stderr) = status_and_stderr(&out);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "no progress off a terminal: {stderr}"
    );
    // On a terminal (script(1) gives the run one): the bar, then the same error.
    let log = dir.path("typescript");
    let cmd = format!("{} --ram {path} maps", env!("CARGO_BIN_EXE_mapwalk"));
    let status = Command::new("script")
        .args(["-qec", &cmd, &log])
        .stdout(std::process::Stdio::null())
        .status();
    let Ok(status) = status else {
        // script(1) is in util-linux, on every Debian machine.
        panic!("script(1) cannot run");
    };
    assert_eq!(status.code(), Some(2));
    let shown = std::fs::read_to_string(&log).unwrap();
    assert!(
        shown.contains("mapwalk: probing page starts for VMCOREINFO [")
            || shown.contains("mapwalk: scanning memory for VMCOREINFO ["),
        "{shown}"
    );
    assert!(shown.contains("% of 1.00 GiB"), "{shown}");
    assert!(
        shown.contains("no VMCOREINFO was found in memory"),
        "{shown}"
    );
}

#[test]
fn maps_bpf_cannot_list_say_why_and_exit_3() {
    if !live_ready("maps_bpf_cannot_list_say_why_and_exit_3") {
        return;
    }
    for (t, key, why) in [
        (
            MapType::BLOOM_FILTER,
            0,
            "does not support listing its bit array (a lookup only tests whether a value is \
             in the filter)",
        ),
        (
            MapType::PERF_EVENT_ARRAY,
            4,
            "does not support lookups from user space (the kernel refuses them: ENOTSUPP)",
        ),
        (
            MapType::CGROUP_ARRAY,
            4,
            "does not support lookups from user space (the kernel refuses them: ENOTSUPP)",
        ),
    ] {
        let map = create(t, "mw_no_list", key, 4, 4);
        let out = run(&["dump", &format!("id:{}", map.id()), "--json"]);
        let (code, err) = status_and_stderr(&out);
        assert_eq!(code, Some(3), "{t}: {err}");
        assert!(err.contains(&format!("of type {t} {why}")), "{t}: {err}");
        // Never an empty map: the output says it is partial.
        let v: Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(v.as_array().unwrap().len(), 1, "{t}: {v}");
        assert_eq!(v[0]["partial"], true, "{t}: {v}");
    }
}
