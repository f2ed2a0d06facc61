//! Two views of one guest, byte for byte: the **live view** of a static `mapwalk` run
//! inside the guest (through `bpf()`: `maps --json`, `dump --all --json`), and the
//! **memory view** of the same `mapwalk` sources built for the host, run outside on
//! the paused guest's RAM file (`--ram FILE --symbols KALLSYMS`, BTF from guest
//! memory).
//!
//! The guest's `/init` runs the static binary (appended to its initramfs by the driver,
//! rebuilt by cargo whenever a source changes) after it has made and filled its maps,
//! when nothing in the guest modifies a map any more, and no other test uses these
//! guests: what the guest saw is what its memory holds. Besides the maps of its
//! `bpf-maps` report, these guests hold `mw_btf`, whose key and value have BTF types:
//! both views must render it through BTF, and list its `btf_id`. The listing comes back
//! whole; the dump (8.7 MB, 18 s over the serial port under TCG) as the SHA-256 of the
//! whole and of each map's top-level object, and the JSON of every map under 256 KiB
//! whole (all but `mw_mmap`). The test requires the same listing, the same dump digest and
//! length, and, to say where a mismatch is, compares map by map and shows the first
//! differing entry. No normalization: both views must print the same bytes.

use mapwalk_e2e::{self as e2e, GuestConfig, InGuestView};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The host's `mapwalk`, built by the driver.
fn bin() -> &'static std::path::Path {
    e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"))
}

#[test]
fn deb12_kaslr_4level_inguest_live_equals_memory() {
    live_equals_memory(&GuestConfig::DEB12_KASLR_4LEVEL_INGUEST);
}

#[test]
fn deb13_nokaslr_5level_inguest_live_equals_memory() {
    live_equals_memory(&GuestConfig::DEB13_NOKASLR_5LEVEL_INGUEST);
}

/// SHA-256 of `bytes` in hex, by coreutils' `sha256sum`.
fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run sha256sum: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let bytes = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "sha256sum failed");
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// `text` cut to `n` bytes (at a character boundary), marked when cut.
fn head(text: &str, n: usize) -> String {
    if text.len() <= n {
        return text.to_owned();
    }
    let mut end = n;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// A map's JSON without its entries: what identifies it.
fn map_head(map: &Value) -> String {
    let mut m = map.clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("entries");
    }
    m.to_string()
}

/// Where the guest's piece `guest` (when it was sent) and ours differ: the map's head
/// and the first differing entry.
fn describe_difference(guest: Option<&str>, ours: &str) -> String {
    let ours_json: Value = serde_json::from_str(ours).unwrap_or(Value::Null);
    let Some(guest) = guest else {
        return format!(
            "(the guest sent only the digest of this map) ours: {}",
            map_head(&ours_json)
        );
    };
    let guest_json: Value = serde_json::from_str(guest).unwrap_or(Value::Null);
    let (g_head, o_head) = (map_head(&guest_json), map_head(&ours_json));
    if g_head != o_head {
        return format!("map fields: guest {g_head}, ours {o_head}");
    }
    let empty = Vec::new();
    let g = guest_json["entries"].as_array().unwrap_or(&empty);
    let o = ours_json["entries"].as_array().unwrap_or(&empty);
    let first = g.iter().zip(o).position(|(a, b)| a != b);
    match first {
        Some(i) => format!(
            "map {o_head}: entry {i} differs ({} vs {} entries):\n  guest: {}\n  ours:  {}",
            g.len(),
            o.len(),
            head(&g[i].to_string(), 2000),
            head(&o[i].to_string(), 2000)
        ),
        None if g.len() != o.len() => format!(
            "map {o_head}: {} entries in the guest, {} ours (the common ones agree)",
            g.len(),
            o.len()
        ),
        None => format!(
            "map {o_head}: same JSON values, different bytes:\n  guest: {}\n  ours:  {}",
            head(guest, 2000),
            head(ours, 2000)
        ),
    }
}

fn live_equals_memory(config: &GuestConfig) {
    let test = format!("real_kernel::inguest::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    let started = Instant::now();
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let view = InGuestView::of(guest).unwrap_or_else(|e| panic!("{test}: {e}"));
    for (what, run, stderr) in [
        ("maps --json", &view.maps_run, &view.maps_stderr),
        ("dump --all --json", &view.dump_run, &view.dump_stderr),
    ] {
        assert_eq!(
            run.status, 0,
            "{test}: the in-guest mapwalk {what} failed (wait status {:#x}): {stderr}",
            run.status
        );
        assert!(
            stderr.is_empty(),
            "{test}: the in-guest mapwalk {what} warned: {stderr}"
        );
    }

    // The memory view, guest paused (it would not change anything anyway: no test
    // writes to this guest, /init only looks up two keys now and then).
    let dir = guest.dir().join(format!("inguest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));
    let outside = |args: &[&str]| -> Vec<u8> {
        let out = Command::new(bin())
            .arg("--ram")
            .arg(guest.ram_path())
            .arg("--symbols")
            .arg(&syms)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{test}: run {}: {e}", bin().display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{test}: mapwalk --ram {args:?} failed: {stderr}"
        );
        assert!(
            stderr.is_empty(),
            "{test}: mapwalk --ram {args:?} warned: {stderr}"
        );
        out.stdout
    };
    let paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let memory_started = Instant::now();
    let maps = outside(&["maps", "--json"]);
    let dump = outside(&["dump", "--all", "--json"]);
    let memory_time = memory_started.elapsed();
    drop(paused);
    let _ = std::fs::remove_dir_all(&dir);

    // The listing: whole, the same but for `bytes_memlock`, which only the live view
    // has (the kernel computes it on demand; memory holds no such number).
    let maps = String::from_utf8(maps).unwrap_or_else(|e| panic!("{test}: listing: {e}"));
    let mut live: Value = serde_json::from_str(&view.maps)
        .unwrap_or_else(|e| panic!("{test}: in-guest maps --json is not JSON ({e})"));
    for m in live.as_array_mut().into_iter().flatten() {
        let memlock = m.as_object_mut().and_then(|o| o.remove("bytes_memlock"));
        assert!(
            memlock
                .as_ref()
                .and_then(Value::as_u64)
                .is_some_and(|n| n > 0),
            "{test}: the live view has no bytes_memlock: {m}"
        );
    }
    let memory: Value = serde_json::from_str(&maps)
        .unwrap_or_else(|e| panic!("{test}: maps --json is not JSON ({e}): {maps}"));
    assert_eq!(
        memory, live,
        "{test}: maps --json: the memory view (left) differs from the in-guest live view \
         (right, bytes_memlock left out)"
    );
    assert!(
        memory
            .as_array()
            .is_some_and(|a| a.iter().all(|m| m["frozen"] == 0)),
        "{test}: every map of the guest is writable: {memory}"
    );
    // The maps of `bpf-maps` and `mw_btf`; the latter with its BTF, so that both views
    // rendered its keys and values through BTF.
    let listed: Value = serde_json::from_str(&maps)
        .unwrap_or_else(|e| panic!("{test}: maps --json is not JSON ({e}): {maps}"));
    let listed = listed
        .as_array()
        .unwrap_or_else(|| panic!("{test}: maps --json is not an array: {maps}"));
    assert_eq!(
        listed.len(),
        truth.len() + 1,
        "{test}: maps --json lists other maps than the guest made: {maps}"
    );
    let btf_map = listed
        .iter()
        .find(|m| m["id"] == view.btf_map_id)
        .unwrap_or_else(|| panic!("{test}: mw_btf (id {}) not listed", view.btf_map_id));
    assert!(
        btf_map["name"] == "mw_btf" && btf_map["btf_id"].as_u64().is_some_and(|id| id > 0),
        "{test}: mw_btf listed as {btf_map}"
    );

    // The dump: map by map first (to say where), then the whole.
    let dump = String::from_utf8(dump).unwrap_or_else(|e| panic!("{test}: dump: {e}"));
    let pieces = mapwalk_e2e::inguest::split_maps(dump.as_bytes())
        .unwrap_or_else(|| panic!("{test}: dump --all --json: not an array of objects"));
    assert_eq!(
        pieces.len(),
        listed.len(),
        "{test}: the memory view dumps {} maps, lists {}",
        pieces.len(),
        listed.len()
    );
    assert_eq!(
        view.pieces.len(),
        pieces.len(),
        "{test}: the in-guest dump has {} maps, the memory view {}",
        view.pieces.len(),
        pieces.len()
    );
    for (i, (g, &(offset, len))) in view.pieces.iter().zip(&pieces).enumerate() {
        let ours = &dump[offset..offset + len];
        if g.len == len && g.sha256 == sha256(ours.as_bytes()) {
            continue;
        }
        panic!(
            "{test}: dump --all --json, map #{i}: the in-guest live view ({} bytes, sha256 \
             {}) differs from the memory view ({len} bytes): {}",
            g.len,
            g.sha256,
            describe_difference(g.text.as_deref(), ours)
        );
    }
    let btf_start = format!("{{\"id\":{},", view.btf_map_id);
    let btf_piece = pieces
        .iter()
        .map(|&(o, l)| &dump[o..o + l])
        .find(|p| p.starts_with(&btf_start))
        .unwrap_or_else(|| panic!("{test}: mw_btf not dumped"));
    assert!(
        btf_piece.contains(r#""formatted":{"key":"#),
        "{test}: mw_btf dumped without its BTF types: {}",
        head(btf_piece, 2000)
    );
    let whole = sha256(dump.as_bytes());
    assert_eq!(
        (dump.len() as u64, Some(whole.as_str())),
        (view.dump_run.bytes, view.dump_sha256.as_deref()),
        "{test}: dump --all --json: the memory view (left: bytes, sha256) differs from the \
         in-guest live view (right) outside the maps' objects: memory view starts {:?}, \
         ends {:?}",
        head(&dump, 200),
        &dump[dump.len().saturating_sub(200)..]
    );
    eprintln!(
        "{test}: {} maps, dump of {} bytes identical (sha256 {whole}); in the guest: \
         listing {} ms, dump {} ms; outside (paused): {:.2} s; test {:.1} s after a boot \
         of {:.1} s; mw_btf: {}",
        listed.len(),
        dump.len(),
        view.maps_run.ms,
        view.dump_run.ms,
        memory_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        guest.boot_time().as_secs_f64(),
        head(btf_piece, 400)
    );
}
