//! STRUCT_OPS maps from outside, on 6.1 and 6.12: the guest's `/init`
//! (`e2e/guest/structops.c`) registers a TCP congestion control, `mw_ca`, whose
//! `ssthresh`, `undo_cwnd` and `cong_avoid` are BPF programs, and reports the value as
//! its lookup returned it (section `bpf-maps`, `HVAL`) and each function pointer's
//! member, offset and program (section `bpf-struct-ops`). `mapwalk dump --json` of the
//! map, read from the guest's RAM file, must be that one entry byte for byte, and its
//! decoded struct (`mapwalk::struct_ops::from_memory`) must name each function
//! pointer's program (id and name) as the guest does. The arm64 guests run the same
//! checks (`arm64_types.rs`).

use super::bytes::bytes;
use mapwalk::struct_ops::ProgRef;
use mapwalk_core::MapType;
use mapwalk_e2e::{self as e2e, GuestConfig};
use serde_json::Value;

use super::cli::Outside;

#[test]
fn deb12_kaslr_5level_struct_ops() {
    struct_ops_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_struct_ops() {
    struct_ops_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

/// One `FUNC` line of section `bpf-struct-ops`: member, index, offset, program.
type Func = (String, u32, u32, ProgRef);

fn funcs(test: &str, section: &str, map_id: u32) -> Vec<Func> {
    section
        .lines()
        .filter(|l| l.starts_with("FUNC "))
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert_eq!(w.len(), 7, "{test}: {l}");
            assert_eq!(w[1].parse::<u32>().unwrap(), map_id, "{test}: {l}");
            let prog = ProgRef {
                id: w[5].parse().unwrap(),
                name: w[6].to_owned(),
            };
            (
                w[2].to_owned(),
                w[3].parse().unwrap(),
                w[4].parse().unwrap(),
                prog,
            )
        })
        .collect()
}

fn struct_ops_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::structops::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    check_structops(test, &Outside::x86(test, guest, "structops"));
}

/// The checks of `struct_ops_from_memory`, on any guest read from outside.
pub(super) fn check_structops(test: &str, out: &Outside<'_>) {
    let report = out.report;
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let map = maps
        .iter()
        .find(|m| m.name == "mw_ca")
        .unwrap_or_else(|| panic!("{test}: the guest did not report mw_ca"));
    assert_eq!(map.map_type, MapType::STRUCT_OPS.0, "{test}");
    let want_value = map
        .hash_values
        .get(&vec![0u8; 4])
        .unwrap_or_else(|| panic!("{test}: no value for key 0"))
        .clone();
    let section = report
        .sections
        .get("bpf-struct-ops")
        .unwrap_or_else(|| panic!("{test}: the guest wrote no bpf-struct-ops section"));
    let want_funcs = funcs(test, section, map.id);
    assert_eq!(want_funcs.len(), 3, "{test}: {section}");
    // The guest's own truth agrees with itself: each slot of the lookup holds its
    // program's id; the state is INUSE, the name mw_ca.
    for (member, _, offset, prog) in &want_funcs {
        let at = *offset as usize;
        let slot = u64::from_le_bytes(want_value[at..at + 8].try_into().unwrap());
        assert_eq!(slot, u64::from(prog.id), "{test}: slot {member}");
    }
    assert_eq!(want_value[4..8], 1u32.to_le_bytes(), "{test}: state INUSE");

    // The dump, from the RAM file, through the CLI: the entry's bytes, and the struct
    // decoded (`mapwalk::struct_ops::from_memory`, each program named from the map's
    // links).
    let cli = out.cli();
    let dump = cli.json(test, &["dump", &format!("id:{}", map.id), "--json"]);
    let got: Vec<(Vec<u8>, Vec<u8>)> = dump
        .as_array()
        .unwrap_or_else(|| panic!("{test}: dump: {dump}"))
        .iter()
        .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
        .collect();
    assert_eq!(got, [(vec![0u8; 4], want_value.clone())], "{test}: mw_ca");
    let ops = &dump[0]["struct_ops"];
    assert_eq!(ops["type"], "tcp_congestion_ops", "{test}: {ops}");
    assert_eq!(ops["name"], "mw_ca", "{test}: {ops}");
    assert_eq!(
        (&ops["state"], &ops["refcnt"]),
        (&"inuse".into(), &1.into()),
        "{test}"
    );
    assert_eq!(ops["sched_ext"], Value::Null, "{test}");
    let funcs = ops["funcs"]
        .as_array()
        .unwrap_or_else(|| panic!("{test}: no funcs: {ops}"));
    let mut got_funcs: Vec<Func> = funcs
        .iter()
        .filter(|f| !f["prog"].is_null())
        .map(|f| {
            let n = |v: &Value| u32::try_from(v.as_u64().unwrap()).unwrap();
            (
                f["member"].as_str().unwrap().to_owned(),
                n(&f["index"]),
                n(&f["offset"]),
                ProgRef {
                    id: n(&f["prog"]["id"]),
                    name: f["prog"]["name"].as_str().unwrap().to_owned(),
                },
            )
        })
        .collect();
    // The guest lists them in its own order; the dump in member order.
    got_funcs.sort_by_key(|f| f.1);
    let mut want_funcs = want_funcs;
    want_funcs.sort_by_key(|f| f.1);
    assert_eq!(got_funcs, want_funcs, "{test}: function pointers");
    // Every other function pointer of tcp_congestion_ops is empty.
    assert!(funcs.len() > 6, "{test}: {ops}");
    // In text, a block naming each program.
    let text = cli.text(test, &["dump", &format!("id:{}", map.id)]);
    assert!(
        text.contains("struct_ops tcp_congestion_ops \"mw_ca\": state inuse, refcnt 1\n"),
        "{test}: {text}"
    );
    for (member, _, _, prog) in &want_funcs {
        let line = format!("  {member}: prog {} {}\n", prog.id, prog.name);
        assert!(text.contains(&line), "{test}: no {line:?} in {text}");
    }
}
