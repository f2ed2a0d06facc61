//! An arm64 guest: Debian 13's Linux 6.12 (4 KiB pages) under `qemu-system-aarch64 -M
//! virt -cpu max` (TCG), which runs with 52-bit kernel VAs (LPA2, five levels), RAM at
//! physical `0x4000_0000`. One boot, shared by the tests below:
//!
//! - the library's description with the guest's kallsyms: VMCOREINFO found in RAM, the
//!   paging state it settles on (LPA2, 52 bits, five levels, 4 KiB), `_text` walked to
//!   where `/proc/iomem` puts `Kernel code`, the maps discovered;
//! - the CLI on the running RAM file (`--ram FILE --layout 0x40000000:0:SIZE --symbols
//!   FILE`): `maps --json` lists every map as the guest's `/init` reported it, and
//!   `dump --all --json`, taken while the guest is paused, holds every entry of every
//!   map byte for byte as the guest read them back (ARRAY, HASH, LRU, per-CPU ARRAY and
//!   HASH, per CPU); an ELF core written by QMP `dump-guest-memory` in the same pause
//!   (`--core FILE`) lists and dumps the same;
//! - zero configuration: the same two commands with no kernel option print the same
//!   bytes (the kernel's own symbol table, read from memory by `kimage_voffset`);
//! - a static aarch64 `mapwalk` run inside the guest by its `/init` (through `bpf()`):
//!   its listing equals the view from outside (but for `bytes_memlock`), and its `dump
//!   --all --json` the one from outside byte for byte (SHA-256, whole and per map).

use super::bytes::hex_json;
use super::cli::{check_listing, Cli};
use super::storage::{storage_truth, without_address};
use mapwalk::describe::vmcoreinfo::find_vmcoreinfo;
use mapwalk::describe::{describe, KernelSpec, MemoryHints, SymbolSource};
use mapwalk_core::bpf::storage::OwnerKind;
use mapwalk_core::{arch, Kva, MapType, Pa, Paging, Translation};
use mapwalk_e2e::arm64::{arm64_guest, Arm64Config, Arm64Guest, VIRT_RAM_BASE};
use mapwalk_e2e::GuestMap;
use mapwalk_file::RamFile;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

const CONFIG: Arm64Config = Arm64Config::DEB13_ARM64_4K_LPA2;

/// The guest's kallsyms in a file of the guest's directory (one per test).
pub(super) fn kallsyms_file(test: &str, guest: &Arm64Guest, tag: &str) -> PathBuf {
    let path = guest
        .dir()
        .join(format!("kallsyms-{tag}-{}", std::process::id()));
    std::fs::write(&path, &guest.report().sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", path.display()));
    path
}

/// The id of `mw_btf`, the map `/init` adds for the in-guest runs (not in `bpf-maps`).
fn btf_map_id(test: &str, guest: &Arm64Guest) -> u32 {
    guest
        .inguest_view()
        .unwrap_or_else(|e| panic!("{test}: in-guest view: {e}"))
        .btf_map_id
}

/// The maps the guest's `/init` made and read back (at least ten).
/// The id of the arena the guest made (section `bpf-arena`, its `ARENA id=N ...` line), which
/// `bpf-maps` does not list.
pub(super) fn arena_id(report: &mapwalk_e2e::GuestReport) -> Option<u32> {
    report.section("bpf-arena")?.lines().find_map(|l| {
        l.strip_prefix("ARENA ")?
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("id="))?
            .parse()
            .ok()
    })
}

pub(super) fn truth(test: &str, guest: &Arm64Guest) -> Vec<GuestMap> {
    let maps = guest
        .report()
        .bpf_maps()
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    assert!(
        maps.len() >= 10,
        "{test}: the guest made {} maps",
        maps.len()
    );
    maps
}

#[test]
fn deb13_arm64_4k_lpa2_describe() {
    let test = "real_kernel::arm64::deb13_arm64_4k_lpa2_describe";
    let Some(guest) = arm64_guest(test, &CONFIG) else {
        return;
    };
    let report = guest.report();
    assert!(
        report.version().contains("arm64") && report.version().starts_with("Linux version 6.12"),
        "{test}: {}",
        report.version()
    );
    let ram = RamFile::options()
        .layout(guest.ram_layout().unwrap())
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: RamFile: {e}"));

    // The VMCOREINFO in RAM: 52-bit VAs, T1SZ 12, RAM at 1 GiB.
    let info = find_vmcoreinfo(&ram, &[])
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .unwrap_or_else(|| panic!("{test}: no VMCOREINFO in RAM"))
        .vmcoreinfo;
    assert_eq!(
        (
            info.number("VA_BITS"),
            info.number("TCR_EL1_T1SZ"),
            info.number("PHYS_OFFSET"),
            info.page_size()
        ),
        (Some(52), Some(12), Some(VIRT_RAM_BASE), Some(4096)),
        "{test}: VMCOREINFO"
    );

    let syms = kallsyms_file(test, guest, "describe");
    let spec = KernelSpec::new(SymbolSource::SymbolFile(syms.clone()));
    let kernel = describe(ram, &spec, &MemoryHints::default());
    let _ = std::fs::remove_file(&syms);
    let kernel = kernel.unwrap_or_else(|e| panic!("{test}: describe: {e}"));
    assert!(kernel.warnings.is_empty(), "{test}: {:?}", kernel.warnings);
    let Paging::Aarch64(p) = *kernel.view.paging() else {
        panic!("{test}: not aarch64 paging: {:?}", kernel.view.paging());
    };
    assert_eq!(
        (
            p.lpa2(),
            p.va_bits(),
            p.levels(),
            p.start_level(),
            p.granule_shift()
        ),
        (true, 52, 5, -1, 12),
        "{test}: paging {p:?}"
    );
    let text = report.kallsyms.lookup("_text").unwrap();
    let swapper = report.kallsyms.lookup("swapper_pg_dir").unwrap();
    let voffset = info.number("kimage_voffset").unwrap();
    assert_eq!(p.root(), Pa(swapper.wrapping_sub(voffset)), "{test}: root");
    // The page walk puts _text where the guest's /proc/iomem says its code starts.
    let code = report.iomem("Kernel code");
    let Ok(Translation::Mapped(m)) =
        arch::translate(kernel.view.mem(), kernel.view.paging(), Kva(text))
    else {
        panic!("{test}: _text {text:#x} does not translate");
    };
    assert_eq!(m.pa.0, code[0].0, "{test}: _text vs Kernel code {code:x?}");
    assert_eq!(m.pa, Pa(text.wrapping_sub(voffset)), "{test}: _text");
    // Every map, by id, through the library.
    let ids: Vec<u32> = kernel
        .bpf()
        .collect_maps()
        .unwrap_or_else(|e| panic!("{test}: {e}"))
        .maps
        .iter()
        .map(|m| m.id)
        .collect();
    let mut want: Vec<u32> = truth(test, guest).iter().map(|m| m.id).collect();
    want.push(btf_map_id(test, guest));
    want.sort_unstable();
    assert_eq!(ids, want, "{test}: map ids");
}

/// Every entry of every map of `dump --all --json` against the guest's own reads; with
/// the in-guest `mapwalk` the dump has one more map, `mw_btf` (`btf_id`), which the
/// in-guest run checks.
///
/// Local-storage maps' entries (an owner in place of a key) are checked against
/// `storage`, the guest's section `bpf-storage` ([`storage_truth`]); QUEUE and STACK
/// maps' entries, in pop order, against its section `bpf-queues` (also in `storage`).
pub(super) fn check_dump_all(
    test: &str,
    dump: &Value,
    truth: &[GuestMap],
    storage: &BTreeMap<u32, Vec<Value>>,
    btf_id: Option<u32>,
    arena: Option<u32>,
) {
    let maps = dump
        .as_array()
        .unwrap_or_else(|| panic!("{test}: dump --all --json is not an array"));
    assert_eq!(
        maps.len(),
        truth.len() + usize::from(btf_id.is_some()) + usize::from(arena.is_some()),
        "{test}: maps dumped"
    );
    if let Some(id) = arena {
        assert!(
            maps.iter()
                .any(|m| m["id"] == id && m["name"] == "mw_arena"),
            "{test}: mw_arena (id {id}) not dumped"
        );
    }
    if let Some(btf_id) = btf_id {
        assert!(
            maps.iter()
                .any(|m| m["id"] == btf_id && m["name"] == "mw_btf"),
            "{test}: mw_btf (id {btf_id}) not dumped"
        );
    }
    for g in truth {
        let m = maps
            .iter()
            .find(|m| m["id"] == g.id)
            .unwrap_or_else(|| panic!("{test}: map {} ({}) not dumped", g.id, g.name));
        let entries = m["entries"]
            .as_array()
            .unwrap_or_else(|| panic!("{test}: map {} has no entries array: {m}", g.name));
        if matches!(MapType(g.map_type), MapType::QUEUE | MapType::STACK) {
            // In pop order, exactly (every key is empty).
            let want = storage.get(&g.id).cloned().unwrap_or_default();
            assert!(
                !want.is_empty(),
                "{test}: no bpf-queues line for {}",
                g.name
            );
            assert_eq!(
                entries, &want,
                "{test}: map {} vs the guest's bpf-queues",
                g.name
            );
            continue;
        }
        if matches!(
            MapType(g.map_type),
            MapType::BLOOM_FILTER | MapType::RINGBUF | MapType::USER_RINGBUF
        ) {
            // Checked by their own tests (`objmaps`, `ringbuf`, in `arm64_types`).
            continue;
        }
        if OwnerKind::of(MapType(g.map_type)).is_some() {
            let key = |v: &Value| v["value"].to_string();
            let mut got: Vec<Value> = entries.iter().map(|e| without_address(test, e)).collect();
            let mut want = storage.get(&g.id).cloned().unwrap_or_default();
            assert!(
                !want.is_empty(),
                "{test}: the guest reported no elements of {}",
                g.name
            );
            got.sort_by_key(key);
            want.sort_by_key(key);
            assert_eq!(
                got, want,
                "{test}: map {} vs the guest's bpf-storage",
                g.name
            );
            continue;
        }
        let mut got: BTreeMap<String, Value> = BTreeMap::new();
        for e in entries {
            let value = if e.get("values").is_some() {
                e["values"].clone()
            } else {
                e["value"].clone()
            };
            assert!(
                got.insert(e["key"].to_string(), value).is_none(),
                "{test}: map {}: key {} twice",
                g.name,
                e["key"]
            );
        }
        let mut want: BTreeMap<String, Value> = BTreeMap::new();
        for (k, v) in &g.values {
            want.insert(hex_json(&k.to_le_bytes()).to_string(), hex_json(v));
        }
        for (k, v) in g.hash_values.iter().chain(&g.object_values) {
            want.insert(hex_json(k).to_string(), hex_json(v));
        }
        for (k, cpus) in &g.percpu_values {
            let per: Vec<Value> = cpus
                .iter()
                .map(|(cpu, v)| json!({"cpu": cpu, "value": hex_json(v)}))
                .collect();
            want.insert(hex_json(k).to_string(), Value::Array(per));
        }
        assert!(
            !want.is_empty(),
            "{test}: the guest reported no values of {}",
            g.name
        );
        assert_eq!(got.len(), want.len(), "{test}: map {}: entry count", g.name);
        assert_eq!(got, want, "{test}: map {} vs the guest's own reads", g.name);
    }
}

/// The host's `mapwalk` with `args`; its stdout, once it exited 0.
pub(super) fn run_cli(test: &str, args: &[std::ffi::OsString]) -> Vec<u8> {
    let bin = mapwalk_e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("{test}: {e}"));
    let out = Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{test}: run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{test}: mapwalk {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn deb13_arm64_4k_lpa2_cli_maps_and_dump() {
    let test = "real_kernel::arm64::deb13_arm64_4k_lpa2_cli_maps_and_dump";
    let Some(guest) = arm64_guest(test, &CONFIG) else {
        return;
    };
    let truth = truth(test, guest);
    let syms = kallsyms_file(test, guest, "cli");
    let cli = Cli {
        source: vec![
            "--ram".into(),
            guest.ram_path().into(),
            "--layout".into(),
            guest.layout_arg().into(),
        ],
        syms: &syms,
    };
    // The running guest: the listing.
    let listing = cli.json(test, &["maps", "--json"]);
    check_listing(test, &listing, &truth);
    assert_eq!(
        listing.as_array().map(Vec::len),
        Some(truth.len() + 1),
        "{test}: maps --json lists other maps than the guest made: {listing}"
    );
    // Paused: every entry, from the RAM file and from an ELF core of the same pause
    // (`--core FILE`: QEMU's aarch64 dump, RAM at 0x4000_0000 in its PT_LOADs).
    let core_path = guest.dir().join("core.elf");
    let (dump, core_dump, core_listing) = {
        let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        let dump = cli.json(test, &["dump", "--all", "--json"]);
        let dumped = paused.dump_guest_memory(&core_path);
        if let Err(e) = dumped {
            let _ = std::fs::remove_file(&core_path);
            panic!("{test}: {e}");
        }
        drop(paused);
        let core = Cli::file("--core", &core_path, &syms);
        let core_dump = core.json(test, &["dump", "--all", "--json"]);
        let core_listing = core.json(test, &["maps", "--json"]);
        let _ = std::fs::remove_file(&core_path);
        (dump, core_dump, core_listing)
    };
    let _ = std::fs::remove_file(&syms);
    let storage = storage_truth(test, guest.report());
    check_dump_all(
        test,
        &dump,
        &truth,
        &storage,
        Some(btf_map_id(test, guest)),
        arena_id(guest.report()),
    );
    assert_eq!(core_dump, dump, "{test}: --core dump vs --ram dump");
    assert_eq!(
        core_listing, listing,
        "{test}: --core listing vs --ram listing"
    );
}

#[test]
fn deb13_arm64_4k_lpa2_zero_config() {
    let test = "real_kernel::arm64::deb13_arm64_4k_lpa2_zero_config";
    let Some(guest) = arm64_guest(test, &CONFIG) else {
        return;
    };
    let syms = kallsyms_file(test, guest, "zero");
    let source: Vec<std::ffi::OsString> = vec![
        "--ram".into(),
        guest.ram_path().into(),
        "--layout".into(),
        guest.layout_arg().into(),
    ];
    let with = |rest: &[&str], symbols: bool| {
        let mut args = source.clone();
        if symbols {
            args.push("--symbols".into());
            args.push(syms.clone().into());
        }
        args.extend(rest.iter().map(Into::into));
        args
    };
    let (maps0, maps1, dump0, dump1) = {
        let _paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        (
            run_cli(test, &with(&["maps", "--json"], false)),
            run_cli(test, &with(&["maps", "--json"], true)),
            run_cli(test, &with(&["dump", "--all", "--json"], false)),
            run_cli(test, &with(&["dump", "--all", "--json"], true)),
        )
    };
    let _ = std::fs::remove_file(&syms);
    assert!(
        maps0 == maps1,
        "{test}: maps --json differs without --symbols"
    );
    assert!(
        dump0 == dump1,
        "{test}: dump --all --json differs without --symbols"
    );
    let dump: Value =
        serde_json::from_slice(&dump0).unwrap_or_else(|e| panic!("{test}: not JSON: {e}"));
    check_dump_all(
        test,
        &dump,
        &truth(test, guest),
        &storage_truth(test, guest.report()),
        Some(btf_map_id(test, guest)),
        arena_id(guest.report()),
    );
}

#[test]
fn deb13_arm64_4k_lpa2_inguest_live_equals_memory() {
    live_equals_memory(
        "real_kernel::arm64::deb13_arm64_4k_lpa2_inguest_live_equals_memory",
        &CONFIG,
    );
}

#[test]
fn deb12_arm64_4k_inguest_live_equals_memory() {
    live_equals_memory(
        "real_kernel::arm64::deb12_arm64_4k_inguest_live_equals_memory",
        &Arm64Config::DEB12_ARM64_4K_INGUEST,
    );
}

/// The static aarch64 `mapwalk` inside the guest (`maps --json`, `dump --all --json`
/// through bpf()) against the view from outside of the same paused guest, byte for
/// byte; the symbols from outside are the guest's kallsyms, or its System.map where
/// the kallsyms lacks the data symbols (6.1).
fn live_equals_memory(test: &str, config: &Arm64Config) {
    let Some(guest) = arm64_guest(test, config) else {
        return;
    };
    let view = guest
        .inguest_view()
        .unwrap_or_else(|e| panic!("{test}: in-guest view: {e}"));
    assert!(
        view.maps_run.status == 0 && view.dump_run.status == 0,
        "{test}: the static aarch64 mapwalk failed in the guest: maps {:?} ({}), dump {:?} ({})",
        view.maps_run,
        view.maps_stderr,
        view.dump_run,
        view.dump_stderr
    );
    assert!(
        view.maps_stderr.is_empty() && view.dump_stderr.is_empty(),
        "{test}: the in-guest runs warned: {} / {}",
        view.maps_stderr,
        view.dump_stderr
    );
    let (syms, own) = match guest.system_map() {
        Some(map) => (map.to_path_buf(), false),
        None => (kallsyms_file(test, guest, "inguest"), true),
    };
    let outside = |rest: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--ram".into(),
            guest.ram_path().into(),
            "--layout".into(),
            guest.layout_arg().into(),
            "--symbols".into(),
            syms.clone().into(),
        ];
        args.extend(rest.iter().map(Into::into));
        run_cli(test, &args)
    };
    let (maps, dump) = {
        let _paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        (
            outside(&["maps", "--json"]),
            outside(&["dump", "--all", "--json"]),
        )
    };
    if own {
        let _ = std::fs::remove_file(&syms);
    }
    // The listing: the same but for `bytes_memlock`, which only the live view has.
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
    let memory: Value = serde_json::from_slice(&maps)
        .unwrap_or_else(|e| panic!("{test}: maps --json is not JSON ({e})"));
    assert_eq!(
        memory, live,
        "{test}: maps --json: the memory view (left) differs from the in-guest live view"
    );
    // The dump: map by map (to say where), then the whole, by SHA-256.
    let pieces = mapwalk_e2e::inguest::split_maps(&dump)
        .unwrap_or_else(|| panic!("{test}: dump --all --json: not an array of objects"));
    assert_eq!(pieces.len(), view.pieces.len(), "{test}: maps dumped");
    for (i, (&(off, len), theirs)) in pieces.iter().zip(&view.pieces).enumerate() {
        assert_eq!(
            sha256(&dump[off..off + len]),
            theirs.sha256,
            "{test}: map {i} of the dump differs from the in-guest live dump"
        );
    }
    assert_eq!(
        Some(sha256(&dump)),
        view.dump_sha256,
        "{test}: dump --all --json differs from the in-guest live dump"
    );
}

/// SHA-256 of `bytes` in hex, by coreutils' `sha256sum`.
fn sha256(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
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
