//! Shared helpers: privilege checks, loud skips, map creation, bpftool.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::OnceLock;

use mapwalk_live::sys::{self, MapCreate};
use mapwalk_live::{LiveMap, MapType, Value};

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Prints a loud SKIPPED line, or panics under `CI=true`.
pub fn skip(test: &str, missing: &str) {
    let msg = format!("SKIPPED {test}: {missing}");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg} (CI=true: a skip is a failure)");
    }
    // Straight to the stderr handle: the harness captures `eprintln!` of passing tests,
    // and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "\n!!!!!!!! {msg} !!!!!!!!\n");
}

/// `true` when the test can run as root; otherwise skips (see [`skip`]).
pub fn need_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    skip(
        test,
        "not root (creating BPF maps and opening them by id needs CAP_BPF and CAP_SYS_ADMIN)",
    );
    false
}

fn find_bpftool() -> Option<String> {
    for p in [
        "/usr/sbin/bpftool",
        "/usr/bin/bpftool",
        "/sbin/bpftool",
        "/usr/local/sbin/bpftool",
    ] {
        if std::path::Path::new(p).exists() {
            return Some(p.to_owned());
        }
    }
    None
}

/// The bpftool binary, installed with apt-get when missing and root.
pub fn bpftool() -> Option<&'static str> {
    static TOOL: OnceLock<Option<String>> = OnceLock::new();
    TOOL.get_or_init(|| {
        if let Some(p) = find_bpftool() {
            return Some(p);
        }
        if !is_root() {
            return None;
        }
        eprintln!("bpftool missing: running apt-get install -y bpftool");
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "-q", "bpftool"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .is_ok_and(|s| s.success())
        };
        if !install() {
            let _ = Command::new("apt-get").args(["update", "-q"]).status();
            install();
        }
        find_bpftool()
    })
    .as_deref()
}

/// Root and bpftool, or a skip.
pub fn need_root_and_bpftool(test: &str) -> Option<&'static str> {
    if !need_root(test) {
        return None;
    }
    let tool = bpftool();
    if tool.is_none() {
        skip(test, "bpftool is missing and could not be installed");
    }
    tool
}

/// Creates a map and opens it as a [`LiveMap`] (which holds the only descriptor).
pub fn create(spec: &MapCreate<'_>) -> LiveMap {
    let fd: OwnedFd = sys::map_create(spec).unwrap_or_else(|e| panic!("creating {spec:?}: {e}"));
    LiveMap::from_fd(fd).expect("map info")
}

/// A deterministic, non-trivial byte pattern.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn hex_list(v: &serde_json::Value) -> Vec<u8> {
    v.as_array()
        .expect("a list of hex strings")
        .iter()
        .map(|h| {
            let s = h.as_str().expect("hex string");
            u8::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex byte")
        })
        .collect()
}

/// `bpftool -j map dump id N`, as key → value.
pub fn bpftool_dump(tool: &str, id: u32) -> BTreeMap<Vec<u8>, Value> {
    let out = Command::new(tool)
        .args(["-j", "map", "dump", "id", &id.to_string()])
        .output()
        .expect("running bpftool");
    assert!(
        out.status.success(),
        "bpftool map dump id {id} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    let mut map = BTreeMap::new();
    for e in json.as_array().expect("a JSON array") {
        let key = hex_list(&e["key"]);
        let value = if let Some(values) = e.get("values") {
            Value::PerCpu(
                values
                    .as_array()
                    .expect("per-CPU values")
                    .iter()
                    .map(|c| mapwalk_live::CpuValue {
                        cpu: u32::try_from(c["cpu"].as_u64().expect("cpu")).expect("cpu"),
                        bytes: hex_list(&c["value"]),
                    })
                    .collect(),
            )
        } else {
            Value::Single(hex_list(&e["value"]))
        };
        assert!(
            map.insert(key, value).is_none(),
            "bpftool printed a key twice"
        );
    }
    map
}

/// A human name for a map type in messages.
pub fn type_name(t: MapType) -> String {
    t.to_string()
}
