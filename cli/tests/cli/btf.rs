//! Values rendered through BTF, against bpftool; the memory path on a real guest.

use super::*;

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
