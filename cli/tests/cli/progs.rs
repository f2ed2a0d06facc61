//! `progs` against `bpftool prog show` on the live host.

use std::os::fd::AsRawFd;

use mapwalk_live::sys::{prog_info, prog_load, Insn, PROG_TYPE_SOCKET_FILTER};

use super::*;

/// A socket filter that loads `map`'s address (so that the program uses the map) and
/// returns 0: `r1 = map ll; r0 = 0; exit`.
fn uses_map(map: &LiveMap) -> Vec<Insn> {
    let fd = map.fd().as_raw_fd();
    vec![
        // BPF_LD | BPF_DW | BPF_IMM, dst r1, src BPF_PSEUDO_MAP_FD.
        Insn {
            code: 0x18,
            regs: 0x11,
            off: 0,
            imm: fd,
        },
        Insn::default(),
        // BPF_ALU64 | BPF_MOV | BPF_K: r0 = 0.
        Insn {
            code: 0xb7,
            regs: 0,
            off: 0,
            imm: 0,
        },
        // BPF_JMP | BPF_EXIT.
        Insn {
            code: 0x95,
            ..Insn::default()
        },
    ]
}

/// `mapwalk progs --json` agrees with `bpftool -j prog show` on every field mapwalk
/// prints, for every program both list, including one loaded here that uses a map;
/// the text listing names it.
#[test]
fn progs_match_bpftool() {
    if !live_ready("progs_match_bpftool") {
        return;
    }
    let map = create(MapType::ARRAY, "mw_prog_map", 4, 8, 1);
    let prog = prog_load(PROG_TYPE_SOCKET_FILTER, "mw_known", &uses_map(&map)).expect("load");
    let id = prog_info(std::os::fd::AsFd::as_fd(&prog)).expect("info").id;
    let ours = json_of(&run(&["progs", "--json"]), "progs");
    let theirs = bpftool(&["prog", "show"]);
    let ours = ours.as_array().unwrap();
    let theirs = theirs.as_array().unwrap();
    let mine = ours
        .iter()
        .find(|p| p["id"] == json!(id))
        .expect("the program loaded here is listed");
    assert_eq!(mine["name"], json!("mw_known"));
    assert_eq!(mine["type"], json!("socket_filter"));
    assert_eq!(mine["map_ids"], json!([map.id()]));
    assert_eq!(mine["bytes_xlated"], json!(32));
    assert_eq!(mine["gpl_compatible"], json!(true));
    let mut compared = 0;
    for p in ours {
        let Some(t) = theirs.iter().find(|t| t["id"] == p["id"]) else {
            continue;
        };
        for (k, v) in p.as_object().unwrap() {
            assert_eq!(&t[k], v, "program {} field {k}", p["id"]);
        }
        compared += 1;
    }
    assert!(compared >= 1);
    // Every program bpftool lists (but those loaded or unloaded in between) is ours too.
    let ids = |l: &[Value]| -> Vec<u64> { l.iter().map(|p| p["id"].as_u64().unwrap()).collect() };
    let (a, b) = (ids(ours), ids(theirs));
    assert!(
        a.contains(&u64::from(id)) && b.contains(&u64::from(id)),
        "{a:?} {b:?}"
    );
    let text = run(&["progs"]);
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "{id}: socket_filter  name mw_known  tag {}  gpl\n",
            mine["tag"].as_str().unwrap()
        )),
        "{text}"
    );
    drop(prog);
}
