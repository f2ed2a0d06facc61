//! Programs and the maps that hold kernel objects, from outside, on 6.1 and 6.12: the
//! guest's `/init` (`e2e/guest/progs.c`) loads two socket filters (`known`, and
//! `known_map`, which uses `mw_inner`), puts them in the PROG_ARRAY `mw_progs` and
//! `mw_inner` in the ARRAY_OF_MAPS `mw_outer`, fills the LPM_TRIE `mw_lpm`, and
//! reports what the kernel says about them (section `bpf-progs`, and `bpf-maps`).
//! `mapwalk progs --json` and `dump` of the four maps, read from the guest's RAM file,
//! must say the same (the dumps' order is checked against the kernel's own by the
//! in-guest tests, whose live dump must equal the one from outside byte for byte).

use super::bytes::hex_json;
use mapwalk_core::ProgType;
use mapwalk_e2e::{self as e2e, GuestConfig, GuestMap};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use super::cli::Cli;

#[test]
fn deb12_kaslr_5level_progs() {
    progs_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_progs() {
    progs_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

/// The programs of the struct_ops map of `structops.c` (its `FUNC` lines in section
/// `bpf-struct-ops`), which section `bpf-progs` does not list.
pub(super) fn struct_ops_progs(report: &mapwalk_e2e::GuestReport) -> usize {
    report
        .section("bpf-struct-ops")
        .map_or(0, |s| s.lines().filter(|l| l.starts_with("FUNC ")).count())
}

/// One `PROG` line of section `bpf-progs` as `bpftool -j prog show` would print it,
/// for the fields `mapwalk progs` prints.
pub(super) fn expected(test: &str, line: &str) -> Value {
    let kv: BTreeMap<&str, &str> = line
        .strip_prefix("PROG ")
        .unwrap_or_else(|| panic!("{test}: bad line {line:?}"))
        .split_ascii_whitespace()
        .map(|w| {
            w.split_once('=')
                .unwrap_or_else(|| panic!("{test}: bad word {w:?}"))
        })
        .collect();
    let num = |k: &str| -> u64 {
        kv.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{test}: no {k} in {line:?}"))
    };
    let ty = u32::try_from(num("type")).unwrap();
    let mut o = serde_json::Map::new();
    o.insert("id".into(), json!(num("id")));
    o.insert(
        "type".into(),
        ProgType(ty).name().map_or(json!(ty), |n| json!(n)),
    );
    o.insert("name".into(), json!(kv["name"]));
    o.insert("tag".into(), json!(kv["tag"]));
    o.insert("gpl_compatible".into(), json!(num("gpl") == 1));
    o.insert("uid".into(), json!(num("uid")));
    o.insert("bytes_xlated".into(), json!(num("xlated")));
    o.insert("jited".into(), json!(num("jited") != 0));
    if num("jited") != 0 {
        o.insert("bytes_jited".into(), json!(num("jited")));
    }
    if kv["maps"] != "-" {
        let ids: Vec<u64> = kv["maps"].split(',').map(|i| i.parse().unwrap()).collect();
        o.insert("map_ids".into(), json!(ids));
    }
    if num("btf") != 0 {
        o.insert("btf_id".into(), json!(num("btf")));
    }
    Value::Object(o)
}

/// The dump of `map` as the guest's `HVAL` (slots) or `VAL` (ARRAY) lines say, in key
/// order.
fn truth_dump(map: &GuestMap) -> Value {
    let mut entries: Vec<Value> = map
        .hash_values
        .iter()
        .map(|(k, v)| json!({ "key": hex_json(k), "value": hex_json(v) }))
        .collect();
    entries.extend(
        map.values
            .iter()
            .map(|(k, v)| json!({ "key": hex_json(&k.to_le_bytes()), "value": hex_json(v) })),
    );
    Value::Array(entries)
}

fn progs_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::progs::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    let report = guest.report();
    let truth_progs: Vec<Value> = report
        .sections
        .get("bpf-progs")
        .unwrap_or_else(|| panic!("{test}: the guest wrote no bpf-progs section"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| expected(test, l))
        .collect();
    assert_eq!(truth_progs.len(), 2, "{test}: {truth_progs:?}");
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let find = |name: &str| {
        maps.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{test}: the guest did not report map {name}"))
    };
    let (inner, progs_map, outer) = (find("mw_inner"), find("mw_progs"), find("mw_outer"));
    let lpm = find("mw_lpm");
    assert_eq!(lpm.hash_values.len(), 6, "{test}: mw_lpm's prefixes");
    // The truth is consistent with itself: slot 1 holds `known`, `known_map` uses
    // mw_inner, slot 2 of mw_outer holds mw_inner.
    let id_of = |v: &Value| v["id"].as_u64().unwrap();
    let known = truth_progs.iter().find(|p| p["name"] == "known").unwrap();
    let known_map = truth_progs
        .iter()
        .find(|p| p["name"] == "known_map")
        .unwrap();
    assert_eq!(known_map["map_ids"], json!([inner.id]), "{test}");
    assert_eq!(
        progs_map.hash_values.get(1u32.to_le_bytes().as_slice()),
        Some(&u32::try_from(id_of(known)).unwrap().to_le_bytes().to_vec()),
        "{test}: mw_progs slot 1"
    );
    assert_eq!(
        outer.hash_values.get(2u32.to_le_bytes().as_slice()),
        Some(&inner.id.to_le_bytes().to_vec()),
        "{test}: mw_outer slot 2"
    );

    let dir = guest.dir().join(format!("progs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));
    let cli = Cli::file("--ram", guest.ram_path(), &syms);

    let listed = cli.json(test, &["progs", "--json"]);
    let listed = listed
        .as_array()
        .unwrap_or_else(|| panic!("{test}: progs --json is not an array: {listed}"));
    for want in &truth_progs {
        let got = listed
            .iter()
            .find(|p| p["id"] == want["id"])
            .unwrap_or_else(|| panic!("{test}: program {} not listed: {listed:?}", want["id"]));
        assert_eq!(got, want, "{test}: program {}", want["name"]);
    }
    // The programs are the guest's only ones (a Debian cloud kernel loads none), with
    // those of the struct_ops map of `structops.c`.
    let struct_ops_progs = struct_ops_progs(report);
    assert_eq!(
        listed.len(),
        truth_progs.len() + struct_ops_progs,
        "{test}: {listed:?}"
    );

    for map in [progs_map, outer, inner, lpm] {
        let dump = cli.json(test, &["dump", &format!("id:{}", map.id), "--json"]);
        let mut got = dump
            .as_array()
            .unwrap_or_else(|| panic!("{test}: dump {}: {dump}", map.name))
            .clone();
        got.sort_by_key(|e| e["key"].to_string());
        let mut want = truth_dump(map).as_array().unwrap().clone();
        want.sort_by_key(|e| e["key"].to_string());
        assert_eq!(got, want, "{test}: dump {}", map.name);
    }
    let text = cli.run(&["progs"]);
    assert!(text.status.success(), "{test}: progs failed");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "{}: socket_filter  name known  tag ",
            id_of(known)
        )),
        "{test}: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: {} programs, the slots of {} and {}, and the {} prefixes of {} equal \
         the guest's own",
        truth_progs.len(),
        progs_map.name,
        outer.name,
        lpm.hash_values.len(),
        lpm.name
    );
}
