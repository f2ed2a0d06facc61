//! A running guest whose maps change at full speed while they are read: Debian 12's
//! kernel with `mapwalk.churn=1` (see `guest/churn.c`), a HASH (12-byte keys, 4,096
//! max), an LRU_HASH, a PERCPU_HASH (512 max) and an ARRAY updated and deleted by one
//! process per vCPU. Read 200 times from its RAM file without pausing it: no key twice,
//! never more keys than `max_entries`, every map that could not be read whole reported
//! as an error (and by the CLI with a non-zero exit), at least 95% of the reads whole.
//! Then the guest is told to stop, writes what its maps hold, and a read with the guest
//! paused must equal it exactly.

use mapwalk::describe::{self, BtfSource, KernelSpec, MemoryHints, SymbolSource};
use mapwalk::source::{MapInfo, MapSource, MemorySource, SourceError, ValueRef};
use mapwalk_e2e::{self as e2e, GuestConfig, GuestMap};
use mapwalk_file::RamFile;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::ops::ControlFlow;
use std::process::Command;
use std::time::{Duration, Instant};

/// Reads of the running guest.
const READS: usize = 200;
/// CLI runs per map, for the exit status.
const CLI_RUNS: usize = 5;

/// Every entry of `map`: (key, [(cpu, value)]), CPU `u32::MAX` for a single value.
type Entries = Vec<(Vec<u8>, Vec<(u32, Vec<u8>)>)>;

fn read(src: &dyn MapSource, map: &MapInfo) -> (Entries, Result<(), SourceError>) {
    let mut out = Vec::new();
    let r = src.for_each_entry(map, &mut |k, v| {
        let v = match v {
            ValueRef::Single(v) => vec![(u32::MAX, v.to_vec())],
            ValueRef::PerCpu(p) => p.iter().map(|(cpu, v)| (cpu, v.to_vec())).collect(),
        };
        out.push((k.to_vec(), v));
        ControlFlow::Continue(())
    });
    (out, r)
}

/// What the guest says `map` holds, in the form of [`read`], sorted by key.
fn truth(m: &GuestMap) -> Entries {
    let mut out: Entries = m
        .values
        .iter()
        .map(|(k, v)| (k.to_le_bytes().to_vec(), vec![(u32::MAX, v.clone())]))
        .chain(
            m.hash_values
                .iter()
                .map(|(k, v)| (k.clone(), vec![(u32::MAX, v.clone())])),
        )
        .chain(m.percpu_values.iter().map(|(k, cpus)| {
            (
                k.clone(),
                cpus.iter().map(|(c, v)| (*c, v.clone())).collect(),
            )
        }))
        .collect();
    out.sort();
    out
}

fn ids(line: &str) -> (Vec<u32>, u32) {
    // MAPWALK-CHURN maps=<id>,<id>,<id>,<id> ctl=<id>
    let field = |name: &str| {
        line.split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    let maps = field("maps=")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    (maps, field("ctl=").parse().unwrap())
}

#[test]
fn deb12_churning_maps_read_while_the_guest_runs() {
    let config = GuestConfig::DEB12_KASLR_4LEVEL_CHURN;
    let test = "real_kernel::churn::deb12";
    let Some(guest) = e2e::guest(test, &config) else {
        return;
    };
    let line = guest
        .wait_console("MAPWALK-CHURN maps=", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let (churn_ids, ctl_id) = ids(&line);
    let report = guest.report();
    let dir = guest.dir().join(format!("churn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"]).unwrap();
    let mut spec = KernelSpec::new(SymbolSource::SymbolFile(syms.clone()));
    spec.btf = Some(BtfSource::GuestMemory);
    let file = RamFile::options()
        .writable(true)
        .open(guest.ram_path())
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let kernel = describe::describe(file, &spec, &MemoryHints::default())
        .unwrap_or_else(|e| panic!("{test}: describe: {e}"));
    let src = MemorySource::new(kernel);
    let maps: Vec<MapInfo> = churn_ids
        .iter()
        .map(|&id| src.map_by_id(id).unwrap().unwrap())
        .collect();

    // The guest runs: read it over and over.
    let (mut whole, mut dups, mut over) = (0usize, 0usize, 0usize);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut entries_read = 0usize;
    let started = Instant::now();
    for _ in 0..READS {
        src.refresh();
        let mut all = true;
        for map in &maps {
            let (got, r) = read(&src, map);
            let keys: HashSet<&Vec<u8>> = got.iter().map(|(k, _)| k).collect();
            dups += got.len() - keys.len();
            over += usize::from(got.len() > map.max_entries as usize);
            entries_read += got.len();
            if let Err(e) = r {
                all = false;
                // The reason without the map's numbers.
                let why: String = e
                    .to_string()
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .collect();
                *reasons.entry(why).or_default() += 1;
            }
        }
        whole += usize::from(all);
    }
    let elapsed = started.elapsed();
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {READS} reads of 4 churning maps while the guest ran, in {:.1} s: {whole} \
         whole ({:.1}%), {entries_read} entries, {} buckets read again, {dups} keys listed \
         twice, {over} maps over max_entries; incomplete: {reasons:?}",
        elapsed.as_secs_f64(),
        100.0 * whole as f64 / READS as f64,
        src.rereads()
    );
    assert_eq!(dups, 0, "{test}: keys listed twice");
    assert_eq!(over, 0, "{test}: more entries than max_entries");
    assert!(
        whole * 100 >= READS * 95,
        "{test}: only {whole} of {READS} reads whole: {reasons:?}"
    );

    // The CLI: a map dumped in part is a non-zero exit, a whole one zero.
    let bin = e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"));
    let mut exits = BTreeMap::new();
    for map in &maps {
        for _ in 0..CLI_RUNS {
            let out = Command::new(bin)
                .arg("--ram")
                .arg(guest.ram_path())
                .arg("--symbols")
                .arg(&syms)
                .args(["--json", "dump", &format!("id:{}", map.id)])
                .output()
                .unwrap();
            let v: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{test}: dump {}: not JSON: {e}", map.id));
            let rows = v.as_array().unwrap_or_else(|| {
                panic!(
                    "{test}: dump {}: {v}; stderr: {}",
                    map.id,
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            let partial = rows.iter().any(|r| r.get("partial").is_some());
            let keys: HashSet<String> = rows
                .iter()
                .filter_map(|r| r.get("key").map(Value::to_string))
                .collect();
            if keys.len() != rows.len() - usize::from(partial) {
                let mut seen = HashSet::new();
                let twice: Vec<&Value> = rows
                    .iter()
                    .filter(|r| r.get("key").is_some_and(|k| !seen.insert(k.to_string())))
                    .collect();
                panic!(
                    "{test}: dump {} ({}): {} rows, {} keys, partial={partial}; twice: {twice:?}",
                    map.id,
                    map.name,
                    rows.len(),
                    keys.len()
                );
            }
            assert_eq!(
                out.status.success(),
                !partial,
                "{test}: dump {}: exit {:?} with partial={partial}; stderr: {}",
                map.id,
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            );
            if partial {
                assert!(
                    !out.stderr.is_empty(),
                    "{test}: a partial dump says nothing"
                );
            }
            *exits.entry(out.status.code()).or_insert(0usize) += 1;
        }
    }
    let _ = writeln!(std::io::stderr(), "{test}: CLI exit statuses: {exits:?}");

    // The two ways to a whole answer from the command line: QEMU pauses the guest for
    // the read (--qmp), or each map is read until two reads agree (--agree).
    let qmp = guest.dir().join("qmp-client.sock");
    let run = |extra: &[&str], map: &MapInfo| {
        let started = Instant::now();
        let out = Command::new(bin)
            .arg("--ram")
            .arg(guest.ram_path())
            .arg("--symbols")
            .arg(&syms)
            .args(extra)
            .args(["--json", "dump", &format!("id:{}", map.id)])
            .output()
            .unwrap();
        let took = started.elapsed();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{test}: {extra:?} dump {}: not JSON: {e}; stderr: {}",
                map.id,
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out, v, took)
    };
    let qmp_arg = qmp.to_str().unwrap();
    let mut qmp_ms = Vec::new();
    for map in &maps {
        let (out, v, took) = run(&["--qmp", qmp_arg], map);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{test}: --qmp dump {}: {stderr}",
            map.id
        );
        let rows = v.as_array().unwrap();
        assert!(rows.iter().all(|r| r.get("partial").is_none()));
        let keys: HashSet<String> = rows.iter().map(|r| r["key"].to_string()).collect();
        assert_eq!(
            keys.len(),
            rows.len(),
            "{test}: --qmp dump {}: a key twice",
            map.id
        );
        assert!(rows.len() <= map.max_entries as usize);
        qmp_ms.push(took.as_millis());
    }
    let mut agree = BTreeMap::new();
    let mut agree_ms = Vec::new();
    for map in &maps {
        let (out, v, took) = run(&["--agree", "8"], map);
        let rows = v.as_array().unwrap();
        let partial = rows.iter().any(|r| r.get("partial").is_some());
        assert_eq!(
            out.status.success(),
            !partial,
            "{test}: --agree dump {}",
            map.id
        );
        if partial {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("reads in a row agreed"), "{test}: {stderr}");
        }
        *agree.entry(map.name.to_string()).or_insert(Vec::new()) = vec![out.status.code()];
        agree_ms.push(took.as_millis());
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: --qmp (paused) dumps of the 4 maps: whole, {qmp_ms:?} ms per run; --agree 8: \
         exit statuses {agree:?}, {agree_ms:?} ms per run"
    );

    // Stop the churn (key 0 of the control map, through guest memory), wait for the
    // guest's own account of its maps, and read them with the guest paused.
    let ctl = src.map_by_id(ctl_id).unwrap().unwrap();
    src.write(&ctl, &0u32.to_le_bytes(), 0, &1u64.to_le_bytes())
        .unwrap_or_else(|e| panic!("{test}: stop: {e}"));
    let stopped = guest
        .wait_console("MAPWALK-CHURN stopped", Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{test}: {e}\n{}", guest.console()));
    let finals = guest
        .report_now()
        .and_then(|r| r.maps_in("churn-final"))
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    let _paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    src.refresh();
    for map in &maps {
        let want = finals
            .iter()
            .find(|m| m.id == map.id)
            .unwrap_or_else(|| panic!("{test}: map {} not in churn-final", map.id));
        let (mut got, r) = read(&src, map);
        r.unwrap_or_else(|e| panic!("{test}: paused read of map {}: {e}", map.id));
        got.sort();
        let want = truth(want);
        assert!(!want.is_empty(), "{test}: map {} empty", map.id);
        assert!(
            got == want,
            "{test}: map {} paused: {} entries read, {} in the guest",
            map.id,
            got.len(),
            want.len()
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: guest {stopped}; the paused read equals the guest's account of all 4 maps"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
