//! QUEUE and STACK maps from outside, on 6.1 and 6.12: the guest's `/init`
//! (`e2e/guest/queue.c`) pushes to and pops from `mw_queue` until its ring's tail has
//! moved and its head has wrapped past the end, fills `mw_stackq` to `max_entries`
//! (one more push must fail with `E2BIG`, one with `BPF_EXIST` replaces the oldest),
//! and reports each map's elements in pop order with what a peek returned (section
//! `bpf-queues`). `mapwalk dump --json` of each map, read from the guest's RAM file,
//! must list exactly those elements in that order, byte for byte, its first the peeked
//! one; the text dump the same values, then `Found N elements`. bpf() cannot list these
//! maps without popping them.

use super::bytes::hex_json;
use mapwalk_core::MapType;
use mapwalk_e2e::queues::{queue_truth, GuestQueue};
use mapwalk_e2e::{self as e2e, GuestConfig};
use serde_json::Value;
use std::collections::BTreeMap;

use super::cli::Cli;

/// `E2BIG`, the errno of a push to a full queue or stack without `BPF_EXIST`.
const E2BIG: i32 = 7;

#[test]
fn deb12_kaslr_5level_queue_stack() {
    queue_from_memory(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb13_kaslr_5level_queue_stack() {
    queue_from_memory(&GuestConfig::DEB13_KASLR_5LEVEL);
}

/// What a QUEUE's or STACK's `dump --json` must be: its elements in pop order, each
/// with an empty key.
pub(super) fn queue_dump_json(q: &GuestQueue) -> Value {
    q.pop
        .iter()
        .map(|v| serde_json::json!({"key": [], "value": hex_json(v)}))
        .collect()
}

/// Each QUEUE's and STACK's element count by map id, from section `bpf-queues` (empty
/// without it).
pub(super) fn queue_counts(report: &mapwalk_e2e::GuestReport) -> BTreeMap<u64, usize> {
    queue_truth(report)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_values()
        .map(|q| (u64::from(q.id), q.pop.len()))
        .collect()
}

/// Each QUEUE's and STACK's `dump --json` entries by map id, in pop order, from
/// section `bpf-queues` (empty without it).
pub(super) fn queue_entries(test: &str, report: &mapwalk_e2e::GuestReport) -> BTreeMap<u32, Value> {
    queue_truth(report)
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .unwrap_or_default()
        .into_iter()
        .map(|(id, q)| (id, queue_dump_json(&q)))
        .collect()
}

/// The bytes of a text dump's `value:` lines, one per element.
fn text_values(test: &str, text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("value:"))
        .map(|v| {
            v.split_whitespace()
                .map(|b| {
                    u8::from_str_radix(b, 16)
                        .unwrap_or_else(|e| panic!("{test}: value byte {b:?}: {e}: {text}"))
                })
                .collect()
        })
        .collect()
}

fn queue_from_memory(config: &GuestConfig) {
    let test = format!("real_kernel::queue::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let _values = e2e::value_lock();
    let report = guest.report();
    let maps = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let truth = queue_truth(report)
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .unwrap_or_else(|| panic!("{test}: the guest wrote no bpf-queues section"));

    let dir = guest.dir().join(format!("queue-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));
    let cli = Cli::file("--ram", guest.ram_path(), &syms);

    let mut lines = Vec::new();
    for (name, map_type, value_size, elements) in [
        ("mw_queue", MapType::QUEUE, 8, 15),
        ("mw_stackq", MapType::STACK, 6, 8),
    ] {
        let map = maps
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{test}: the guest did not report {name}"));
        assert_eq!(map.map_type, map_type.0, "{test}: {name}");
        let q = truth
            .get(&map.id)
            .unwrap_or_else(|| panic!("{test}: no bpf-queues line for {name}"));
        assert_eq!(q.name, name, "{test}");
        // The guest's account itself: as many elements as it left, the peek on top.
        assert_eq!(q.pop.len(), elements, "{test}: {name}: {q:?}");
        assert!(
            q.pop.iter().all(|v| v.len() == value_size),
            "{test}: {name}: {q:?}"
        );
        assert_eq!(q.peek, q.pop[0], "{test}: {name}: peek vs first pop");

        let sel = format!("id:{}", map.id);
        let dump = cli.json(test, &["dump", &sel, "--json"]);
        assert_eq!(dump, queue_dump_json(q), "{test}: {name} from memory");
        let first = hex_json(&q.peek);
        assert_eq!(
            dump[0]["value"], first,
            "{test}: {name}: first is the peeked"
        );

        let out = cli.run(&["dump", &sel]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{test}: dump {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            text_values(test, &text),
            q.pop,
            "{test}: {name} text: {text}"
        );
        assert_eq!(
            text.trim_end().lines().last(),
            Some(format!("Found {elements} elements").as_str()),
            "{test}: {name} text: {text}"
        );
        eprintln!("{test}: dump {name}:\n{text}");
        lines.push(format!("{name} {elements} elements"));
    }
    let stack = maps.iter().find(|m| m.name == "mw_stackq").unwrap();
    assert_eq!(
        truth[&stack.id].full_errno,
        Some(E2BIG),
        "{test}: a push to the full mw_stackq without BPF_EXIST"
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: {} from memory in pop order, byte for byte",
        lines.join(", ")
    );
}
