//! BLOOM_FILTER and the maps whose slots hold kernel objects, from outside, on 6.1 and
//! 6.12: the guest's `/init` (`e2e/guest/objmaps.c`) makes a DEVMAP, a DEVMAP_HASH, a
//! CPUMAP, a SOCKMAP, a SOCKHASH, a REUSEPORT_SOCKARRAY, two bloom filters, a
//! CGROUP_ARRAY, a PERF_EVENT_ARRAY and an XSKMAP and reports what the kernel says of them
//! (section `bpf-maps`). `mapwalk dump --json` of each, read from the guest's RAM file,
//! must say the same:
//!
//! - the maps user space can look up: exactly what the guest's lookups returned
//!   (`HVAL`: the `bpf_devmap_val`, the `bpf_cpumap_val`, the socket cookie); their
//!   order is the kernel's `GET_NEXT_KEY` order, checked byte for byte by the in-guest
//!   tests, whose guests have these maps too;
//! - CGROUP_ARRAY, PERF_EVENT_ARRAY and XSKMAP: the cgroup ids (the guest's
//!   `name_to_handle_at`), the perf events' type, CPU and config as the guest opened
//!   them, the AF_XDP socket's device (lo) and queue as it was bound (`OVAL`);
//! - the bloom filters: the header (docs/bloom-filter.md) holds the hash count the
//!   guest asked for, the size the kernel gives `max_entries` and (for the one made with
//!   `BPF_F_ZERO_SEED`) a zero seed; the bit array has exactly the bits that the
//!   kernel's `jhash`/`jhash2` (implemented here) of the pushed values set with the
//!   seed read from memory, for the zero-seed filter with seed 0 as the guest asked. The
//!   guest's own lookups (membership tests) found every pushed value.

use super::bytes::{bytes, hex_json};
use mapwalk_core::MapType;
use mapwalk_e2e::{self as e2e, GuestConfig, GuestMap};
use serde_json::json;
use std::collections::BTreeSet;

use super::cli::{Cli, Outside};

#[test]
fn deb12_kaslr_5level_objmaps() {
    objmaps_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_objmaps() {
    objmaps_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

// ---------------------------------------------------------------------------------------
// The kernel's jhash (include/linux/jhash.h: Bob Jenkins' lookup3), which
// kernel/bpf/bloom_filter.c uses to pick a value's bits.

const JHASH_INITVAL: u32 = 0xdead_beef;

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(4);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(6);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(8);
    *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c);
    *a ^= c.rotate_left(16);
    *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a);
    *b ^= a.rotate_left(19);
    *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b);
    *c ^= b.rotate_left(4);
    *b = b.wrapping_add(*a);
}

fn fin(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c;
    *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a;
    *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b;
    *c = c.wrapping_sub(b.rotate_left(24));
}

/// `jhash(key, len, initval)`: bytes, the tail added byte by byte.
fn jhash(key: &[u8], initval: u32) -> u32 {
    let mut a = JHASH_INITVAL
        .wrapping_add(key.len() as u32)
        .wrapping_add(initval);
    let (mut b, mut c) = (a, a);
    let mut k = key;
    let word = |s: &[u8]| u32::from_le_bytes(s.try_into().unwrap());
    while k.len() > 12 {
        a = a.wrapping_add(word(&k[0..4]));
        b = b.wrapping_add(word(&k[4..8]));
        c = c.wrapping_add(word(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    let mut tail = [0u8; 12];
    tail[..k.len()].copy_from_slice(k);
    a = a.wrapping_add(word(&tail[0..4]));
    b = b.wrapping_add(word(&tail[4..8]));
    c = c.wrapping_add(word(&tail[8..12]));
    fin(&mut a, &mut b, &mut c);
    c
}

/// `jhash2(words, len, initval)`: u32 words.
fn jhash2(words: &[u32], initval: u32) -> u32 {
    let mut a = JHASH_INITVAL
        .wrapping_add((words.len() as u32) << 2)
        .wrapping_add(initval);
    let (mut b, mut c) = (a, a);
    let mut k = words;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        mix(&mut a, &mut b, &mut c);
        k = &k[3..];
    }
    match k.len() {
        0 => return c,
        3 => {
            c = c.wrapping_add(k[2]);
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        2 => {
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        _ => a = a.wrapping_add(k[0]),
    }
    fin(&mut a, &mut b, &mut c);
    c
}

/// The bits `bloom_map_push_elem` sets for `value`: `hash(value, seed + i) & mask` for
/// each of the `k` hash functions, `jhash2` when the value is whole u32 words.
fn bloom_bits(value: &[u8], k: u32, seed: u32, mask: u32) -> Vec<u32> {
    (0..k)
        .map(|i| {
            let h = if value.len() % 4 == 0 {
                let words: Vec<u32> = value
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
                    .collect();
                jhash2(&words, seed.wrapping_add(i))
            } else {
                jhash(value, seed.wrapping_add(i))
            };
            h & mask
        })
        .collect()
}

/// The mask `bloom_map_alloc` gives `max_entries` values and `k` hashes (small maps:
/// no overflow).
fn kernel_mask(max_entries: u32, k: u32) -> u32 {
    let bits = u64::from(max_entries) * u64::from(k) / 5 * 7;
    (bits.max(64).next_power_of_two() - 1) as u32
}

#[test]
fn jhash_is_lookup3() {
    // lookup3.c's own checks of hashlittle (which jhash is, for little-endian reads).
    assert_eq!(jhash(b"", 0), 0xdead_beef);
    assert_eq!(jhash(b"", 0xdead_beef), 0xbd5b_7dde);
    let four = b"Four score and seven years ago";
    assert_eq!(jhash(four, 0), 0x1777_0551);
    assert_eq!(jhash(four, 1), 0xcd62_8161);
    // jhash2 over whole words is jhash over their bytes (little-endian).
    let words = [0x0403_0201u32, 0x0807_0605, 0x0c0b_0a09, 0x100f_0e0d];
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    for n in 0..=4 {
        assert_eq!(
            jhash2(&words[..n], 7),
            jhash(&bytes[..4 * n], 7),
            "{n} words"
        );
    }
}

// ---------------------------------------------------------------------------------------

/// `dump id:N --json` as (key, value) byte pairs, in the dump's order.
fn dump(test: &str, cli: &Cli<'_>, map: &GuestMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    let dump = cli.json(test, &["dump", &format!("id:{}", map.id), "--json"]);
    dump.as_array()
        .unwrap_or_else(|| panic!("{test}: dump {}: {dump}", map.name))
        .iter()
        .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A bloom filter's dump against the values the guest pushed; returns its seed.
fn check_bloom(test: &str, cli: &Cli<'_>, map: &GuestMap) -> u32 {
    assert!(
        !map.bloom_values.is_empty() && map.bloom_values.iter().all(|(_, found)| *found),
        "{test}: {}: the guest's membership tests: {:?}",
        map.name,
        map.bloom_values
    );
    let entries = dump(test, cli, map);
    assert_eq!(entries.len(), 1, "{test}: {}: one entry", map.name);
    let (key, v) = &entries[0];
    assert!(key.is_empty(), "{test}: {}: key {key:?}", map.name);
    let k = u32::try_from(map.map_extra).unwrap();
    let mask = kernel_mask(map.max_entries, k);
    let (version, hashes, seed, got_mask) =
        (u32_at(v, 0), u32_at(v, 4), u32_at(v, 8), u32_at(v, 12));
    assert_eq!(
        (version, hashes, got_mask),
        (1, k, mask),
        "{test}: {}: header (version, hashes, mask)",
        map.name
    );
    if map.flags & (1 << 6) != 0 {
        assert_eq!(seed, 0, "{test}: {}: BPF_F_ZERO_SEED", map.name);
    }
    let array = &v[16..];
    assert_eq!(
        array.len() as u64,
        (u64::from(mask) + 1) / 8,
        "{test}: {}: bit array",
        map.name
    );
    let set: BTreeSet<u32> = (0..=mask)
        .filter(|&b| array[(b / 8) as usize] >> (b % 8) & 1 == 1)
        .collect();
    let want: BTreeSet<u32> = map
        .bloom_values
        .iter()
        .flat_map(|(value, _)| bloom_bits(value, k, seed, mask))
        .collect();
    assert_eq!(
        set, want,
        "{test}: {}: the bits set against the kernel's jhash of the pushed values (seed \
         {seed:#x})",
        map.name
    );
    seed
}

fn objmaps_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::objmaps::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    check_objmaps(test, &Outside::x86(test, guest, "objmaps"));
}

/// The checks of `objmaps_from_memory`, on any guest read from outside.
pub(super) fn check_objmaps(test: &str, out: &Outside<'_>) {
    let report = out.report;
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let find = |name: &str| {
        maps.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{test}: the guest did not report map {name}"))
    };
    let lookups = [
        find("mw_devmap"),
        find("mw_devhash"),
        find("mw_cpumap"),
        find("mw_sockmap"),
        find("mw_sockhash"),
        find("mw_reuseport"),
    ];
    let (devmap, devhash, cpumap, sockmap, sockhash, reuseport) = (
        lookups[0], lookups[1], lookups[2], lookups[3], lookups[4], lookups[5],
    );
    let (cgroups, perf, xsk) = (find("mw_cgroups"), find("mw_perf"), find("mw_xskmap"));
    let blooms = [find("mw_bloom"), find("mw_bloom6")];

    // The truth is what the guest meant: lo (ifindex 1) without a program, a queue of
    // 192, distinct non-zero cookies, the cgroup2 root (id 1), software BPF_OUTPUT
    // events (type 1, config 10) on CPUs 0 and 1.
    let k = |i: u32| i.to_le_bytes().to_vec();
    let lo8 = [k(1), k(0)].concat();
    assert_eq!(
        devmap.hash_values.iter().collect::<Vec<_>>(),
        [(&k(1), &lo8), (&k(3), &lo8)],
        "{test}: mw_devmap"
    );
    assert_eq!(
        devhash.hash_values.keys().cloned().collect::<BTreeSet<_>>(),
        [k(1), k(4), k(9)].into_iter().collect(),
        "{test}: mw_devhash"
    );
    assert!(devhash.hash_values.values().all(|v| *v == k(1)), "{test}");
    assert_eq!(
        cpumap.hash_values.iter().collect::<Vec<_>>(),
        [(&k(0), &k(192))],
        "{test}: mw_cpumap"
    );
    let cookies: Vec<u64> = [sockmap, sockhash, reuseport]
        .iter()
        .flat_map(|m| m.hash_values.values().map(|v| u64_at(v, 0)))
        .collect();
    assert_eq!(cookies.len(), 5, "{test}: sockets: {cookies:?}");
    assert!(
        cookies.iter().all(|&c| c != 0)
            && cookies.iter().collect::<BTreeSet<_>>().len() == cookies.len(),
        "{test}: cookies {cookies:?}"
    );
    assert_eq!(
        cgroups.object_values.get(&k(0)),
        Some(&1u64.to_le_bytes().to_vec()),
        "{test}: the cgroup2 root's id"
    );
    assert_eq!(cgroups.object_values.len(), 2, "{test}: mw_cgroups");
    assert!(!perf.object_values.is_empty(), "{test}: mw_perf");
    for (key, v) in &perf.object_values {
        assert_eq!(
            (u32_at(v, 0), u32_at(v, 4), u64_at(v, 8)),
            (1, u32_at(key, 0), 10),
            "{test}: mw_perf slot {key:?}"
        );
    }

    let cli = out.cli();

    // What lookups returned, and the own forms, entry for entry.
    assert_eq!(
        xsk.object_values.iter().collect::<Vec<_>>(),
        [(&k(1), &[k(1), k(0)].concat())],
        "{test}: mw_xskmap"
    );
    for map in lookups.iter().chain([&cgroups, &perf, &xsk]) {
        let mut got = dump(test, &cli, map);
        got.sort();
        let want_map = if map.object_values.is_empty() {
            &map.hash_values
        } else {
            &map.object_values
        };
        let want: Vec<(Vec<u8>, Vec<u8>)> = want_map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "{test}: dump {}", map.name);
    }
    let seeds: Vec<u32> = blooms.iter().map(|m| check_bloom(test, &cli, m)).collect();

    // Every map of the guest, whole (exit status 0).
    let all = cli.json(test, &["dump", "--all", "--json"]);
    let all = all.as_array().unwrap_or_else(|| panic!("{test}: {all}"));
    assert!(
        all.iter().all(|m| m.get("error").is_none()),
        "{test}: dump --all: a map in part"
    );
    let types: BTreeSet<String> = all
        .iter()
        .filter_map(|m| m["type"].as_str().map(str::to_owned))
        .collect();
    for t in [
        MapType::DEVMAP,
        MapType::DEVMAP_HASH,
        MapType::CPUMAP,
        MapType::SOCKMAP,
        MapType::SOCKHASH,
        MapType::REUSEPORT_SOCKARRAY,
        MapType::BLOOM_FILTER,
        MapType::CGROUP_ARRAY,
        MapType::PERF_EVENT_ARRAY,
        MapType::XSKMAP,
    ] {
        assert!(types.contains(t.name().unwrap()), "{test}: no {t} dumped");
    }
    let perf_json = json!(hex_json(&perf.object_values[&k(0)]));
    eprintln!(
        "{test}: lookups of {} maps, {} cgroup ids, {} perf events (slot 0: {perf_json}), an \
         AF_XDP socket and the bit arrays of {} bloom filters (seeds {}) equal the guest's own",
        lookups.len(),
        cgroups.object_values.len(),
        perf.object_values.len(),
        blooms.len(),
        seeds
            .iter()
            .map(|s| format!("{s:#x}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
