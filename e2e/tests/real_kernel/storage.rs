//! Local-storage maps from outside, on 6.1 and 6.12: the guest's `/init`
//! (`e2e/guest/storage.c`) makes a TASK_STORAGE, INODE_STORAGE and SK_STORAGE map (and
//! on 6.12 a CGRP_STORAGE map), stores one element per owner through bpf() with the
//! owner's file descriptor, and reports each owner as the kernel shows it to user space
//! (pid and comm, st_ino and st_dev, SO_COOKIE and the socket's addresses, the cgroup
//! directory's inode number, which is its id) with the value a lookup returns (section
//! `bpf-storage`). `mapwalk dump --json` of each map, read from the guest's RAM file,
//! must list exactly those owners with exactly those bytes; bpf() itself cannot list
//! them.

use mapwalk_e2e::{self as e2e, GuestConfig, GuestReport};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

use super::cli::Cli;

#[test]
fn deb12_kaslr_5level_storage() {
    storage_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_storage() {
    storage_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

/// bpftool's JSON for bytes.
fn hex_json(hex: &str) -> Value {
    (0..hex.len() / 2)
        .map(|i| Value::from(format!("0x{}", &hex[2 * i..2 * i + 2])))
        .collect()
}

/// One line of section `bpf-storage`: its kind (`TASK`, ...), map id and words.
struct Line<'a> {
    kind: &'a str,
    map: u32,
    kv: BTreeMap<&'a str, &'a str>,
}

fn lines<'a>(test: &str, section: &'a str) -> Vec<Line<'a>> {
    section
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("SKIP"))
        .map(|l| {
            let mut w = l.split_ascii_whitespace();
            let kind = w.next().unwrap();
            let map = w
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("{test}: bad line {l:?}"));
            let kv = w
                .map(|p| {
                    p.split_once('=')
                        .unwrap_or_else(|| panic!("{test}: bad word {p:?} in {l:?}"))
                })
                .collect();
            Line { kind, map, kv }
        })
        .collect()
}

/// The elements of each local-storage map as section `bpf-storage` gives them, by map
/// id: for the corrupt test's counts too.
pub(super) fn storage_counts(report: &GuestReport) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    if let Some(s) = report.sections.get("bpf-storage") {
        for l in lines("bpf-storage", s) {
            *counts.entry(u64::from(l.map)).or_default() += 1;
        }
    }
    counts
}

/// What `dump --json` must say of the element a line describes: the owner's fields
/// (without its kernel address, which user space cannot know) and the value.
fn expected(test: &str, l: &Line<'_>) -> Value {
    let num = |k: &str| -> u64 {
        l.kv.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{test}: no number {k} in {:?}", l.kv))
    };
    let owner = match l.kind {
        "TASK" => json!({"kind": "task", "pid": num("pid"), "tgid": num("tgid"),
                         "comm": l.kv["comm"]}),
        "INODE" => {
            let (major, minor) = l.kv["dev"].split_once(':').unwrap();
            json!({"kind": "inode", "ino": num("ino"),
                   "dev": {"major": major.parse::<u64>().unwrap(),
                           "minor": minor.parse::<u64>().unwrap()}})
        }
        "SOCK" => {
            // A cookie nobody asked for was never assigned: 0.
            let cookie = match l.kv["cookie"] {
                "unasked" => 0,
                _ => num("cookie"),
            };
            let family = match num("family") {
                2 => "inet",
                10 => "inet6",
                f => panic!("{test}: family {f}"),
            };
            json!({"kind": "sock", "cookie": cookie, "family": family,
                   "local_address": l.kv["local"], "local_port": num("lport"),
                   "remote_address": l.kv["remote"], "remote_port": num("rport")})
        }
        "CGRP" => {
            let name = match l.kv["name"] {
                "-" => "",
                n => n,
            };
            json!({"kind": "cgroup", "id": num("id"), "name": name})
        }
        k => panic!("{test}: line kind {k}"),
    };
    json!({"owner": owner, "value": hex_json(l.kv["value"])})
}

/// Each local-storage map's elements as `dump --json` must give them once
/// [`without_address`] has been applied, by map id, from section `bpf-storage` (empty
/// without it); and each QUEUE's and STACK's entries in pop order, from section
/// `bpf-queues`.
pub(super) fn storage_truth(test: &str, report: &GuestReport) -> BTreeMap<u32, Vec<Value>> {
    let mut by_map: BTreeMap<u32, Vec<Value>> = BTreeMap::new();
    if let Some(s) = report.sections.get("bpf-storage") {
        for l in lines(test, s) {
            by_map.entry(l.map).or_default().push(expected(test, &l));
        }
    }
    for (id, entries) in super::queue::queue_entries(test, report) {
        by_map.insert(id, entries.as_array().cloned().unwrap_or_default());
    }
    by_map
}

/// A local-storage entry of `dump --json` without what the truth cannot know: the
/// owner's kernel address (checked to be a kernel pointer) and the BTF-typed form.
pub(super) fn without_address(test: &str, e: &Value) -> Value {
    let mut e = e.clone();
    let addr = e["owner"]
        .as_object_mut()
        .and_then(|o| o.remove("address"))
        .unwrap_or_else(|| panic!("{test}: no owner address in {e}"));
    let addr = addr.as_str().unwrap_or_default();
    assert!(addr.starts_with("0xff"), "{test}: owner address {addr}");
    if let Some(o) = e.as_object_mut() {
        o.remove("formatted");
    }
    e
}

fn storage_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::storage::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    let report = guest.report();
    let section = report
        .sections
        .get("bpf-storage")
        .unwrap_or_else(|| panic!("{test}: the guest wrote no bpf-storage section"));
    let truth = lines(test, section);
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let six_twelve = report.sections["version"].contains(" 6.12.");
    let mut names = vec![("mw_task", 29, 3), ("mw_inode", 28, 3), ("mw_sk", 24, 4)];
    if six_twelve {
        names.push(("mw_cgrp", 32, 2));
    } else {
        assert!(section.contains("SKIP 32 errno=22"), "{test}: {section}");
    }

    let dir = guest.dir().join(format!("storage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));
    let cli = Cli::file("--ram", guest.ram_path(), &syms);

    let mut summary = Vec::new();
    for (name, ty, count) in names {
        let map = maps
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{test}: the guest did not report map {name}"));
        assert_eq!(
            (map.map_type, map.key_size, map.value_size, map.max_entries),
            (ty, 4, 8, 0),
            "{test}: {name}"
        );
        let mut want: Vec<Value> = truth
            .iter()
            .filter(|l| l.map == map.id)
            .map(|l| expected(test, l))
            .collect();
        assert_eq!(want.len(), count, "{test}: {name}'s truth: {section}");
        let dump = cli.json(test, &["dump", &format!("id:{}", map.id), "--json"]);
        let mut got: Vec<Value> = dump
            .as_array()
            .unwrap_or_else(|| panic!("{test}: dump {name}: {dump}"))
            .iter()
            .map(|e| {
                let mut e = e.clone();
                // The owner's kernel address: a kernel pointer, not in the truth.
                let addr = e["owner"]
                    .as_object_mut()
                    .and_then(|o| o.remove("address"))
                    .unwrap_or_else(|| panic!("{test}: {name}: no owner address in {e}"));
                let addr = addr.as_str().unwrap();
                assert!(addr.starts_with("0xff"), "{test}: {name}: address {addr}");
                // BTF-typed, as `struct mw_sv { unsigned int a, b; }`.
                let f = e.as_object_mut().unwrap().remove("formatted");
                let bytes: Vec<u8> = e["value"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| u8::from_str_radix(&b.as_str().unwrap()[2..], 16).unwrap())
                    .collect();
                let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
                assert_eq!(
                    f,
                    Some(json!({"value": {"a": word(0), "b": word(4)}})),
                    "{test}: {name}: formatted"
                );
                e
            })
            .collect();
        // Values differ from element to element (key order inside objects may not).
        let key = |v: &Value| v["value"].to_string();
        got.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(got, want, "{test}: dump {name} vs the guest's bpf-storage");
        summary.push(format!("{name}: {count}"));
    }

    // The whole dump lists them too, with nothing partial.
    let all = cli.json(test, &["dump", "--all", "--json"]);
    let ids: BTreeSet<u64> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m.get("partial").is_none())
        .filter_map(|m| m["id"].as_u64())
        .collect();
    for (id, n) in storage_counts(report) {
        assert!(
            ids.contains(&id),
            "{test}: map {id} not whole in dump --all"
        );
        let m = all
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap();
        assert_eq!(
            m["entries"].as_array().unwrap().len(),
            n,
            "{test}: map {id}"
        );
    }
    // Text: one owner line per element.
    let task = maps.iter().find(|m| m.name == "mw_task").unwrap();
    let text = cli.run(&["dump", &format!("id:{}", task.id)]);
    assert!(text.status.success(), "{test}: text dump");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("owner: task pid 1 tgid 1 comm init at 0x")
            && text.ends_with("Found 3 elements\n"),
        "{test}: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: every owner and value equals the guest's own ({})",
        summary.join(", ")
    );
}
