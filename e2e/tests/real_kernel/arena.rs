//! ARENA maps from outside: on Debian 6.12 the guest's `/init` (`e2e/guest/arena.c`)
//! makes a 1 GiB arena at a fixed user address, writes known bytes into six scattered
//! pages, reads one more page (allocating it, all zero) and reports every present page
//! with its bytes (section `bpf-arena`). `mapwalk dump --json` of the arena, read from
//! the guest's RAM file, must hand exactly those pages, at those user addresses, with
//! those bytes, in address order: no absent page, none read as zeros. On Debian 6.1,
//! which has no arenas, the guest cannot make one, and the dump of the whole guest is
//! still whole.

use super::bytes::{bytes, unhex};
use mapwalk_e2e::{self as e2e, GuestConfig};
use serde_json::Value;

use super::cli::Outside;

/// ARENA's map type number.
const ARENA: u64 = 33;

#[test]
fn deb13_kaslr_5level_arena() {
    arena_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_5level_no_arena() {
    arena_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

/// The truth of section `bpf-arena`: the map id, its user address and pages, and each
/// present page (user address, bytes) in address order; `None` when the guest could
/// not make an arena.
type Truth = Option<(u64, u64, u64, Vec<(u64, Vec<u8>)>)>;

fn truth(test: &str, section: &str) -> Truth {
    let mut head = None;
    let mut pages = Vec::new();
    for line in section.lines().filter(|l| !l.trim().is_empty()) {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("NOARENA") => return None,
            Some("ARENA") => {
                let kv: Vec<(&str, &str)> = w.filter_map(|x| x.split_once('=')).collect();
                let get = |k: &str| kv.iter().find(|(n, _)| *n == k).unwrap().1;
                head = Some((
                    get("id").parse().unwrap(),
                    u64::from_str_radix(get("addr"), 16).unwrap(),
                    get("pages").parse().unwrap(),
                ));
            }
            Some("PAGE") => {
                let addr = u64::from_str_radix(w.next().unwrap(), 16).unwrap();
                pages.push((addr, unhex(w.next().unwrap())));
            }
            _ => panic!("{test}: bpf-arena: {line}"),
        }
    }
    let (id, addr, n) = head.unwrap_or_else(|| panic!("{test}: bpf-arena has no ARENA line"));
    Some((id, addr, n, pages))
}

fn arena_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::arena::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    check_arena(test, &Outside::x86(test, guest, "arena"));
}

/// The checks of `arena_from_memory`, on any guest read from outside.
pub(super) fn check_arena(test: &str, out: &Outside<'_>) {
    let report = out.report;
    let section = report
        .section("bpf-arena")
        .unwrap_or_else(|| panic!("{test}: the guest wrote no section bpf-arena"));
    let cli = out.cli();
    let listing = cli.json(test, &["maps", "--json"]);
    let arenas: Vec<&Value> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "arena" || m["type"] == ARENA)
        .collect();

    let Some((id, addr, pages, want)) = truth(test, section) else {
        // 6.1: no arena was made (EINVAL), none is listed, and the whole guest dumps.
        assert!(
            report.version().contains("6.1"),
            "{test}: no arena on {}",
            report.version()
        );
        assert!(section.contains("errno=22"), "{test}: {section}");
        assert!(arenas.is_empty(), "{test}: {arenas:?}");
        let all = cli.json(test, &["dump", "--all", "--json"]);
        assert!(
            all.as_array()
                .unwrap()
                .iter()
                .all(|m| m.get("partial").is_none()),
            "{test}: dump --all: a map in part"
        );
        return;
    };
    assert_eq!(arenas.len(), 1, "{test}: {listing}");
    assert_eq!((addr, pages), (0x3f00_0000_0000, 1 << 18), "{test}");
    // What the guest meant: six pages written with `fill`, one read (zero).
    let fill = |page: u64, i: u64| (page * 7 + i * 13 + 1) as u8;
    let mut meant: Vec<(u64, Vec<u8>)> = [0u64, 1, 300, 5000, 200_000, (1 << 18) - 1]
        .iter()
        .map(|&p| (addr + p * 4096, (0..4096).map(|i| fill(p, i)).collect()))
        .collect();
    meant.push((addr + 77 * 4096, vec![0; 4096]));
    meant.sort();
    assert_eq!(want, meant, "{test}: the guest's own view of its arena");

    let dump = cli.json(test, &["dump", &format!("id:{id}"), "--json"]);
    let got: Vec<(u64, Vec<u8>)> = dump
        .as_array()
        .unwrap_or_else(|| panic!("{test}: {dump}"))
        .iter()
        .map(|e| {
            let key = bytes(&e["key"]);
            assert_eq!(key.len(), 8, "{test}: key {key:?}");
            (
                u64::from_le_bytes(key.try_into().unwrap()),
                bytes(&e["value"]),
            )
        })
        .collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{test}: pages {:x?}",
        got.iter().map(|p| p.0).collect::<Vec<_>>()
    );
    for ((ga, gb), (wa, wb)) in got.iter().zip(&want) {
        assert_eq!(ga, wa, "{test}: page address");
        assert!(gb == wb, "{test}: page {ga:#x}: bytes differ");
    }
    // And in the whole guest's dump, unmarked.
    let all = cli.json(test, &["dump", "--all", "--json"]);
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{test}: dump --all has no arena"));
    assert!(
        mine.get("partial").is_none(),
        "{test}: {}",
        mine.get("error").unwrap_or(&Value::Null)
    );
    assert_eq!(
        mine["entries"].as_array().map(Vec::len),
        Some(want.len()),
        "{test}"
    );
}
