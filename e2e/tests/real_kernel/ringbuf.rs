//! RINGBUF and USER_RINGBUF from outside, on 6.1 and 6.12: the guest's `/init`
//! (`e2e/guest/ringbuf.c`) fills a RINGBUF with a BPF program (`bpf_ringbuf_output`,
//! `bpf_ringbuf_reserve` + `bpf_ringbuf_discard`), consumes part of it through its
//! consumer page so that later records wrap, and fills a USER_RINGBUF from user space
//! with a record left reserved (busy); it reports each ring's positions and records as
//! read through its own mapping (section `bpf-ringbuf`). `mapwalk dump --json` of each,
//! read from the guest's RAM file, must say the same byte for byte: the header entry
//! (docs/ringbuf.md: size, consumer and producer positions, `pending_pos` on 6.12, the
//! pending bytes), then every record (its header with the busy and discard bits, its
//! data; a busy record's header alone, and nothing after it).

use super::bytes::{bytes, unhex};
use mapwalk_core::MapType;
use mapwalk_e2e::{self as e2e, GuestConfig};
use std::collections::BTreeMap;

use super::cli::Outside;

#[test]
fn deb12_kaslr_5level_ringbuf() {
    ringbuf_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_ringbuf() {
    ringbuf_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

/// What the guest said of one ring.
#[derive(Debug, Default)]
struct Ring {
    size: u64,
    cons: u64,
    prod: u64,
    after_prod: u64,
    records: Vec<(u64, Vec<u8>)>,
}

fn parse(text: &str) -> BTreeMap<u32, Ring> {
    let mut rings: BTreeMap<u32, Ring> = BTreeMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first() {
            Some(&"RING") => {
                let n = |i: usize| w[i].parse::<u64>().unwrap();
                rings.insert(
                    w[1].parse().unwrap(),
                    Ring {
                        size: n(2),
                        cons: n(3),
                        prod: n(4),
                        after_prod: n(5),
                        records: Vec::new(),
                    },
                );
            }
            Some(&"REC") => {
                let ring = rings
                    .get_mut(&w[1].parse().unwrap())
                    .expect("REC after RING");
                ring.records.push((w[2].parse().unwrap(), unhex(w[3])));
            }
            _ => panic!("bpf-ringbuf: {line:?}"),
        }
    }
    rings
}

/// The entries a dump of each ring has (its header and its records), by map id.
pub(super) fn ringbuf_counts(report: &mapwalk_e2e::GuestReport) -> BTreeMap<u64, usize> {
    report
        .section("bpf-ringbuf")
        .map(parse)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, r)| (u64::from(id), 1 + r.records.len()))
        .collect()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn ringbuf_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::ringbuf::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    check_ringbuf(test, &Outside::x86(test, guest, "ringbuf"));
}

/// The checks of `ringbuf_from_memory`, on any guest read from outside.
pub(super) fn check_ringbuf(test: &str, out: &Outside<'_>) {
    let report = out.report;
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let rings = parse(
        report
            .section("bpf-ringbuf")
            .unwrap_or_else(|| panic!("{test}: no section bpf-ringbuf")),
    );
    let find = |name: &str| {
        maps.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{test}: the guest did not report map {name}"))
    };
    let (kring, uring) = (find("mw_ringbuf"), find("mw_uringbuf"));
    // Kernels with `bpf_ringbuf.pending_pos` (6.8, and stable kernels with the backport
    // of its fix, as Debian's 6.1) keep it right after producer_pos, where a kernel
    // without it has zero: the kernel ring's reservations moved it past 0.
    let has_pending = rings.get(&kring.id).is_some_and(|r| r.after_prod != 0);

    let cli = out.cli();

    let mut wrapped = 0;
    for (map, map_type) in [(kring, MapType::RINGBUF), (uring, MapType::USER_RINGBUF)] {
        assert_eq!(map.map_type, map_type.0, "{test}: {}", map.name);
        let truth = rings
            .get(&map.id)
            .unwrap_or_else(|| panic!("{test}: no truth for {}", map.name));
        let dump = cli.json(test, &["dump", &format!("id:{}", map.id), "--json"]);
        let got: Vec<(Vec<u8>, Vec<u8>)> = dump
            .as_array()
            .unwrap_or_else(|| panic!("{test}: dump {}: {dump}", map.name))
            .iter()
            .map(|e| (bytes(&e["key"]), bytes(&e["value"])))
            .collect();
        let pending = if has_pending {
            truth.after_prod
        } else {
            truth.prod
        };
        let mut header = 1u32.to_le_bytes().to_vec();
        header.extend(map_type.0.to_le_bytes());
        for v in [
            truth.size,
            truth.cons,
            truth.prod,
            pending,
            truth.prod - truth.cons,
        ] {
            header.extend(v.to_le_bytes());
        }
        let mut want = vec![(Vec::new(), header)];
        want.extend(
            truth
                .records
                .iter()
                .map(|(pos, v)| (pos.to_le_bytes().to_vec(), v.clone())),
        );
        assert_eq!(got, want, "{test}: dump {}", map.name);
        wrapped += truth
            .records
            .iter()
            .filter(|(pos, v)| (pos % truth.size) + v.len() as u64 > truth.size)
            .count();
    }
    // What the guest meant: the kernel ring consumed up to 190 records of 72 bytes,
    // 42 pending (a discarded one among them), one wrapping; the user ring four records,
    // the second discarded, the last busy (its header alone).
    let k = &rings[&kring.id];
    assert_eq!(
        (k.cons, k.prod),
        (13_680, 16_640),
        "{test}: mw_ringbuf positions"
    );
    assert_eq!(k.records.len(), 42, "{test}: mw_ringbuf records");
    assert_eq!(
        k.records
            .iter()
            .filter(|(_, v)| u32_at(v, 0) & (1 << 30) != 0)
            .count(),
        1,
        "{test}: one discarded record"
    );
    assert_eq!(wrapped, 1, "{test}: one record wraps");
    let u = &rings[&uring.id];
    let words: Vec<u32> = u.records.iter().map(|(_, v)| u32_at(v, 0)).collect();
    assert_eq!(
        words,
        [15, 20 | 1 << 30, 33, 9 | 1 << 31],
        "{test}: mw_uringbuf records"
    );
    assert_eq!(
        u.records[3].1.len(),
        8,
        "{test}: a busy record's header alone"
    );
    if has_pending {
        // The kernel's pending_pos: the last reservation's view (of the last record).
        assert!(
            k.after_prod <= k.prod && k.prod - k.after_prod <= k.size,
            "{test}"
        );
    }

    // Every map of the guest, whole.
    let all = cli.json(test, &["dump", "--all", "--json"]);
    let all = all.as_array().unwrap_or_else(|| panic!("{test}: {all}"));
    assert!(
        all.iter().all(|m| m.get("error").is_none()),
        "{test}: dump --all: a map in part"
    );
    eprintln!(
        "{test}: a RINGBUF ({} records pending, one wrapping, one discarded) and a \
         USER_RINGBUF ({} records, the last busy) equal what the guest read through its \
         own mappings (pending_pos {})",
        k.records.len(),
        u.records.len(),
        if has_pending {
            "in the kernel, checked"
        } else {
            "not in the kernel"
        }
    );
}
