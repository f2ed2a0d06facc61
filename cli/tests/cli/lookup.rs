//! `lookup` and `getnext`, against bpftool.

use super::*;

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
