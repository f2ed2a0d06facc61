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

/// A PROG_ARRAY holding a program and an LPM trie dump as `bpftool -j map dump` dumps
/// them: each populated slot with the program's id, each prefix with its value, in the
/// kernel's order (the forms the memory path gives, checked on real kernels by
/// `e2e/tests/real_kernel/progs.rs`).
#[test]
fn object_maps_and_tries_dump_as_bpftool() {
    if !live_ready("object_maps_and_tries_dump_as_bpftool") {
        return;
    }
    let ret0 = [
        Insn {
            code: 0xb7,
            ..Insn::default()
        },
        Insn {
            code: 0x95,
            ..Insn::default()
        },
    ];
    let prog = prog_load(PROG_TYPE_SOCKET_FILTER, "mw_tail", &ret0).expect("load");
    let prog_id = prog_info(std::os::fd::AsFd::as_fd(&prog)).expect("info").id;
    let jumps = create(MapType::PROG_ARRAY, "mw_jumps", 4, 4, 8);
    let fd = u32::try_from(prog.as_raw_fd()).unwrap();
    jumps
        .update(&5u32.to_le_bytes(), &fd.to_le_bytes(), Update::Any)
        .expect("slot 5");
    let lpm: OwnedFd = map_create(&MapCreate {
        map_flags: mapwalk_live::sys::BPF_F_NO_PREALLOC,
        ..MapCreate::new(MapType::LPM_TRIE, "mw_routes", 8, 8, 16)
    })
    .expect("LPM trie");
    let lpm = LiveMap::from_fd(lpm).expect("LiveMap");
    for (i, (plen, addr)) in [
        (16u32, [192, 168, 0, 0]),
        (24, [192, 168, 0, 0]),
        (24, [192, 168, 1, 0]),
        (8, [10, 0, 0, 0]),
        (0, [0, 0, 0, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut key = plen.to_le_bytes().to_vec();
        key.extend(addr);
        lpm.update(&key, &(i as u64 + 1).to_le_bytes(), Update::Any)
            .expect("prefix");
    }
    let slots = json_of(
        &run(&["dump", &format!("id:{}", jumps.id()), "--json"]),
        "dump",
    );
    assert_eq!(
        slots,
        json!([{ "key": ["0x05", "0x00", "0x00", "0x00"],
                 "value": prog_id.to_le_bytes().iter().map(|b| format!("0x{b:02x}")).collect::<Vec<_>>() }])
    );
    for m in [&jumps, &lpm] {
        let id = m.id().to_string();
        let ours = json_of(&run(&["dump", &format!("id:{id}"), "--json"]), "dump");
        assert_eq!(ours, bpftool(&["map", "dump", "id", &id]), "map {id}");
    }
    let routes = json_of(
        &run(&["dump", &format!("id:{}", lpm.id()), "--json"]),
        "dump",
    );
    assert_eq!(routes.as_array().map(Vec::len), Some(5));
}
