//! A running QEMU whose guest RAM is its own anonymous memory (no backend file), read
//! from outside the QEMU process: `mapwalk --pid PID --qmp SOCKET --symbols K`. The RAM
//! regions and the vCPU's CR3/CR4 come from QMP, and the guest is paused while it is
//! read and running again afterwards. Every map the guest reported is listed, the hash
//! map dumped key for key, and every ARRAY value compared byte for byte.

use super::bytes::bytes;
use super::cli::{check_hash_dump, check_listing, Cli};
use mapwalk_core::MapType;
use mapwalk_e2e::{self as e2e, GuestConfig};
use serde_json::Value;

#[test]
fn deb13_kaslr_5level_anon_read_from_outside_the_qemu_process() {
    let config = GuestConfig::DEB13_KASLR_5LEVEL_ANON;
    let test = "real_kernel::process::deb13_kaslr_5level_anon";
    let Some(guest) = e2e::guest(test, &config) else {
        return;
    };
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let dir = guest.dir().join(format!("process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"]).unwrap();
    let cli = Cli {
        source: vec![
            "--pid".into(),
            guest.qemu_pid().to_string().into(),
            "--qmp".into(),
            guest.qmp_path().into(),
        ],
        syms: &syms,
    };

    let listing = cli.json(test, &["maps", "--json"]);
    check_listing(test, &listing, &truth);

    // With no kernel option at all: the kernel's own symbol table, read out of the
    // process through the VMCOREINFO, gives the same listing and the same dump.
    let bin = e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"));
    let zero = |args: &[&str]| -> Value {
        let out = std::process::Command::new(bin)
            .arg("--pid")
            .arg(guest.qemu_pid().to_string())
            .arg("--qmp")
            .arg(guest.qmp_path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{test}: {args:?} with no kernel option: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{test}: {args:?}: {e}"))
    };
    assert_eq!(
        zero(&["maps", "--json"]),
        listing,
        "{test}: zero-config listing"
    );
    assert_eq!(
        zero(&["dump", "--all", "--json"]),
        cli.json(test, &["dump", "--all", "--json"]),
        "{test}: zero-config dump --all"
    );
    let hash = truth
        .iter()
        .find(|m| m.name == "mw_hash")
        .unwrap_or_else(|| panic!("{test}: no mw_hash"));
    check_hash_dump(test, &cli.json(test, &["dump", "mw_hash", "--json"]), hash);

    let mut compared = 0usize;
    for m in truth
        .iter()
        .filter(|m| MapType(m.map_type) == MapType::ARRAY && !m.values.is_empty())
    {
        let dump = cli.json(test, &["dump", &format!("id:{}", m.id), "--json"]);
        let entries = dump.as_array().unwrap_or_else(|| panic!("{test}: {dump}"));
        assert_eq!(entries.len(), m.values.len(), "{test}: map {}", m.name);
        for e in entries {
            let key = bytes(&e["key"]);
            let key = u32::from_le_bytes(key.try_into().unwrap());
            assert_eq!(
                bytes(&e["value"]),
                m.values[&key],
                "{test}: map {} key {key}",
                m.name
            );
            compared += 1;
        }
    }
    assert!(
        compared > 300,
        "{test}: only {compared} ARRAY values compared"
    );
    let status = guest.hmp("info status").unwrap();
    assert!(
        status.contains("running"),
        "{test}: the guest was left {status}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{test}: {} maps listed, {} hash entries and {compared} ARRAY values equal the \
         guest's own",
        truth.len(),
        hash.hash_values.len()
    );
}
