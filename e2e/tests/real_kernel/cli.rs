//! The `mapwalk` binary on a **running** guest (no QMP `stop`): `--ram FILE --symbols
//! FILE` lists every map the guest's `/init` reported, dumps `mw_hash` as its `HVAL`
//! lines say, and `write` patches 8 aligned bytes of key 0 of `mw_one.bss` (one store
//! through `mapwalk-file`'s writable `RamFile`), which the guest must notice and print
//! as `CHANGED <id> 0 <hex>`; then the original bytes go back, which it must see too.
//! An out-of-bounds write is refused with one line and changes nothing.
//!
//! One configuration only (its guest is shared with the other tests of this binary).

use super::bytes::hex_json;
use mapwalk_core::MapType;
use mapwalk_e2e::{self as e2e, Guest, GuestConfig, GuestMap};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The host's `mapwalk`, built by the driver.
fn bin() -> &'static std::path::Path {
    e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"))
}

/// How long the guest may take to notice a write (it polls every 200 ms; TCG on a
/// loaded host is slow).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the write lands in the 100-byte value of `mw_one.bss`: 8-byte aligned.
const OFFSET: usize = 8;

#[test]
fn deb12_kaslr_5level_cli_on_running_guest() {
    cli_on_running_guest(&GuestConfig::DEB12_KASLR_5LEVEL);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes the test writes over `old[OFFSET..OFFSET + 8]`: every one differs.
fn patch(old: &[u8]) -> [u8; 8] {
    let mut new = [0u8; 8];
    for (i, b) in new.iter_mut().enumerate() {
        *b = old[OFFSET + i] ^ 0x5a ^ u8::try_from(i * 37 % 256).unwrap();
    }
    new
}

/// The CLI against a memory source (`--ram FILE`, `--core FILE`, `--pid PID --qmp
/// SOCKET`) and a kallsyms copy.
pub(super) struct Cli<'a> {
    /// The source's arguments.
    pub(super) source: Vec<std::ffi::OsString>,
    /// The guest's kallsyms.
    pub(super) syms: &'a Path,
}

impl<'a> Cli<'a> {
    /// `flag path` (`--ram FILE`, `--core FILE`) and the symbols.
    pub(super) fn file(flag: &str, path: &Path, syms: &'a Path) -> Self {
        Self {
            source: vec![flag.into(), path.into()],
            syms,
        }
    }

    pub(super) fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(&self.source)
            .arg("--symbols")
            .arg(self.syms)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", bin().display()))
    }

    /// The standard output of a run that must succeed.
    fn stdout(&self, test: &str, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{test}: mapwalk {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub(super) fn json(&self, test: &str, args: &[&str]) -> Value {
        let out = self.stdout(test, args);
        serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!(
                "{test}: mapwalk {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out)
            )
        })
    }

    /// The standard output of a run that must succeed, as text.
    pub(super) fn text(&self, test: &str, args: &[&str]) -> String {
        String::from_utf8(self.stdout(test, args))
            .unwrap_or_else(|e| panic!("{test}: mapwalk {args:?}: not UTF-8: {e}"))
    }

    /// Key 0 of `map`, as `dump --json` renders it.
    fn key0(&self, test: &str, map: &str) -> Value {
        let dump = self.json(test, &["dump", map, "--json"]);
        dump.as_array()
            .and_then(|e| e.iter().find(|e| e["key"] == hex_json(&[0; 4])))
            .unwrap_or_else(|| panic!("{test}: dump {map}: no key 0: {dump}"))["value"]
            .clone()
    }
}

/// The console's `CHANGED <id> 0 <hex>` values for map `id`, in order.
fn changes(guest: &Guest, id: u32) -> Vec<String> {
    let prefix = format!("CHANGED {id} 0 ");
    guest
        .console()
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// Waits until the guest has printed `CHANGED <id> 0 <want>` as its change number
/// `nth` (0-based) of map `id`. Returns how long that took.
fn wait_for_change(test: &str, guest: &Guest, id: u32, nth: usize, want: &[u8]) -> Duration {
    let want = hex(want);
    let started = Instant::now();
    loop {
        let seen = changes(guest, id);
        if seen.len() > nth {
            assert_eq!(
                seen[nth], want,
                "{test}: the guest printed CHANGED {id} 0 with other bytes; all: {seen:?}"
            );
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CHANGE_TIMEOUT,
            "{test}: no \"CHANGED {id} 0 {want}\" on the console within {} s; for map \
             {id} so far: {seen:?}",
            CHANGE_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(super) fn check_listing(test: &str, listing: &Value, truth: &[GuestMap]) {
    let listed = listing
        .as_array()
        .unwrap_or_else(|| panic!("{test}: maps --json is not an array: {listing}"));
    for g in truth {
        let ours = listed
            .iter()
            .find(|e| e["id"] == g.id)
            .unwrap_or_else(|| panic!("{test}: map {} ({}) not listed: {listing}", g.id, g.name));
        let ty = MapType(g.map_type)
            .name()
            .map_or(json!(g.map_type), |n| json!(n));
        let want = json!({
            "id": g.id,
            "type": ty,
            "name": g.name,
            "bytes_key": g.key_size,
            "bytes_value": g.value_size,
            "max_entries": g.max_entries,
            "flags": g.flags,
        });
        let got: serde_json::Map<String, Value> = want
            .as_object()
            .unwrap()
            .keys()
            .map(|k| (k.clone(), ours[k.as_str()].clone()))
            .collect();
        assert_eq!(
            Value::Object(got),
            want,
            "{test}: map {} listed as {ours}",
            g.name
        );
    }
}

pub(super) fn check_hash_dump(test: &str, dump: &Value, hash: &GuestMap) {
    assert!(
        !hash.hash_values.is_empty(),
        "{test}: the guest reported no HVAL lines for {}",
        hash.name
    );
    let mut got: Vec<Value> = dump
        .as_array()
        .unwrap_or_else(|| panic!("{test}: dump {} is not an array: {dump}", hash.name))
        .iter()
        .map(|e| json!({"key": e["key"], "value": e["value"]}))
        .collect();
    got.sort_by_key(|e| e["key"].to_string());
    let mut want: Vec<Value> = hash
        .hash_values
        .iter()
        .map(|(k, v)| json!({"key": hex_json(k), "value": hex_json(v)}))
        .collect();
    want.sort_by_key(|e| e["key"].to_string());
    assert_eq!(
        got.len(),
        want.len(),
        "{test}: dump {}: entry count",
        hash.name
    );
    assert_eq!(got, want, "{test}: dump {} vs the guest's HVAL", hash.name);
}

fn cli_on_running_guest(config: &GuestConfig) {
    let test = format!("real_kernel::cli::{}", config.name);
    let test = test.as_str();
    let Some(guest) = e2e::guest(test, config) else {
        return;
    };
    // Writers and exact value checks of the shared guests take turns.
    let _values = e2e::value_lock();
    let started = Instant::now();
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let find = |name: &str| {
        truth
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{test}: the guest did not report map {name}"))
    };
    let one = find("mw_one.bss");
    let hash = find("mw_hash");

    let dir = guest.dir().join(format!("cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"])
        .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));
    let cli = Cli::file("--ram", guest.ram_path(), &syms);
    let status = guest
        .hmp("info status")
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    assert!(
        status.contains("running"),
        "{test}: the guest is not running: {status}"
    );

    // Listing and a hash dump, guest running.
    let listing = cli.json(test, &["maps", "--json"]);
    check_listing(test, &listing, &truth);
    let dump = cli.json(test, &["dump", "mw_hash", "--json"]);
    check_hash_dump(test, &dump, hash);

    // Out of bounds (96 + 8 > 100): refused with one line, nothing written.
    let old = &one.values[&0];
    assert_eq!(old.len(), 100, "{test}: mw_one.bss value size");
    let out = cli.run(&[
        "write",
        "mw_one.bss",
        "--offset",
        "96",
        "--value",
        "0102030405060708",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{test}: an out-of-bounds write succeeded"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{test}: stderr {err:?}");
    assert!(err.contains("out of bounds"), "{test}: stderr {err:?}");
    assert_eq!(
        cli.key0(test, "mw_one.bss"),
        hex_json(old),
        "{test}: mw_one.bss key 0 after the refused write"
    );

    // The write: 8 aligned bytes of key 0 of mw_one.bss, the guest running. The maps
    // checks of `bpf.rs` and `dump.rs` on this guest compare mw_one.bss with the
    // guest's report and may run meanwhile: the original bytes go back as soon as the
    // guest has seen the new ones, to keep that window short (1-3 s measured).
    let bytes = patch(old);
    let mut new = old.clone();
    new[OFFSET..OFFSET + 8].copy_from_slice(&bytes);
    let offset = OFFSET.to_string();
    let write = |bytes: &[u8], what: &str| {
        let out = cli.run(&[
            "write",
            "mw_one.bss",
            "--offset",
            &offset,
            "--value",
            &hex(bytes),
        ]);
        assert!(
            out.status.success(),
            "{test}: {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let window = Instant::now();
    write(&bytes, "write");
    let seen_after = wait_for_change(test, guest, one.id, 0, &new);
    write(&old[OFFSET..OFFSET + 8], "restore");
    wait_for_change(test, guest, one.id, 1, old);
    let window = window.elapsed();
    // Exactly two changes: nothing from the refused write, no torn value.
    assert_eq!(
        changes(guest, one.id),
        [hex(&new), hex(old)],
        "{test}: the guest's CHANGED lines for mw_one.bss"
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: {} maps listed, {} mw_hash entries dumped, write seen by the guest \
         after {:.2} s, original back after {:.2} s, all in {:.1} s",
        truth.len(),
        hash.hash_values.len(),
        seen_after.as_secs_f64(),
        window.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// A booted guest as the per-map-type checks read it from outside: its report, and
/// the CLI over its RAM file with its symbols (an x86_64 guest's kallsyms; an arm64
/// guest's kallsyms, or System.map where its kallsyms lacks the data symbols, and its
/// RAM layout).
pub(super) struct Outside<'g> {
    /// What the guest reported.
    pub(super) report: &'g mapwalk_e2e::GuestReport,
    /// The symbols file the CLI is given.
    pub(super) syms: std::path::PathBuf,
    /// The source's arguments (`--ram FILE`, and `--layout` for arm64).
    source: Vec<std::ffi::OsString>,
    /// A scratch directory of the check's own, removed when done.
    pub(super) dir: std::path::PathBuf,
    /// Whether the guest is arm64.
    pub(super) arm64: bool,
}

impl<'g> Outside<'g> {
    fn scratch(test: &str, dir: &Path, tag: &str) -> std::path::PathBuf {
        let dir = dir.join(format!("{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{test}: {}: {e}", dir.display()));
        dir
    }

    fn kallsyms(test: &str, dir: &Path, report: &mapwalk_e2e::GuestReport) -> std::path::PathBuf {
        let syms = dir.join("kallsyms");
        std::fs::write(&syms, &report.sections["kallsyms"])
            .unwrap_or_else(|e| panic!("{test}: {}: {e}", syms.display()));
        syms
    }

    /// An x86_64 guest, for the check `tag`.
    pub(super) fn x86(test: &str, guest: &'g mapwalk_e2e::Guest, tag: &str) -> Self {
        let dir = Self::scratch(test, guest.dir(), tag);
        Self {
            report: guest.report(),
            syms: Self::kallsyms(test, &dir, guest.report()),
            source: vec!["--ram".into(), guest.ram_path().into()],
            dir,
            arm64: false,
        }
    }

    /// An arm64 guest, for the check `tag`: its System.map when it has one (6.1),
    /// else its kallsyms.
    pub(super) fn arm64(test: &str, guest: &'g mapwalk_e2e::arm64::Arm64Guest, tag: &str) -> Self {
        let dir = Self::scratch(test, guest.dir(), tag);
        let syms = match guest.system_map() {
            Some(map) => map.to_path_buf(),
            None => Self::kallsyms(test, &dir, guest.report()),
        };
        Self {
            report: guest.report(),
            syms,
            source: vec![
                "--ram".into(),
                guest.ram_path().into(),
                "--layout".into(),
                guest.layout_arg().into(),
            ],
            dir,
            arm64: true,
        }
    }

    /// The CLI over this guest.
    pub(super) fn cli(&self) -> Cli<'_> {
        Cli {
            source: self.source.clone(),
            syms: &self.syms,
        }
    }
}

impl Drop for Outside<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
