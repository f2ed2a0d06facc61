//! The CLI over a real guest's RAM with random words of its BPF structures corrupted:
//! never a panic, never a hang, never an exit 0 that leaves out a map or marks one
//! incomplete. A copy of Debian 12's paused RAM is taken once; each round writes random
//! values into a few 8-byte words of the maps' `struct bpf_map`s, their hash bucket
//! arrays and their first elements, runs `mapwalk --ram COPY --symbols KALLSYMS dump
//! --all --json`, checks the outcome and puts the words back.

use mapwalk::describe::{self, BtfSource, KernelSpec, MemoryHints, SymbolSource};
use mapwalk_core::bpf::Bpf;
use mapwalk_core::{arch, Kva, MapType};
use mapwalk_e2e::{self as e2e, GuestConfig};
use mapwalk_file::RamFile;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Rounds of corruption.
const ROUNDS: usize = 40;
/// Words corrupted per round.
const WORDS: usize = 6;
/// A run that takes longer has hung.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A SplitMix64 stream: the same rounds every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[test]
fn deb12_corrupt_bpf_structures_never_give_a_silent_partial_answer() {
    let config = GuestConfig::DEB12_NOKASLR_4LEVEL;
    let test = "real_kernel::corrupt::deb12";
    let Some(guest) = e2e::guest(test, &config) else {
        return;
    };
    let report = guest.report();
    let truth = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    let dir = guest.dir().join(format!("corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let syms = dir.join("kallsyms");
    std::fs::write(&syms, &report.sections["kallsyms"]).unwrap();
    let copy = dir.join("ram");
    {
        // Still, and no write test changing it meanwhile.
        let _values = e2e::value_lock();
        let _paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
        std::fs::copy(guest.ram_path(), &copy).unwrap();
    }

    // Where the maps' structures lie in the copy (its offsets are guest-physical).
    let mut spec = KernelSpec::new(SymbolSource::SymbolFile(syms.clone()));
    spec.btf = Some(BtfSource::GuestMemory);
    let file = RamFile::options().open(&copy).unwrap();
    let kernel = describe::describe(file, &spec, &MemoryHints::default())
        .unwrap_or_else(|e| panic!("{test}: describe: {e}"));
    let view = &kernel.view;
    let bpf = Bpf::new(view, &kernel.layout, kernel.map_idr);
    let pa = |kva: Kva| {
        arch::translate(view.mem(), view.paging(), kva)
            .ok()
            .and_then(|t| t.mapped(kva).ok())
            .map(|m| m.pa.0)
    };
    let mut targets: Vec<(u64, u64)> = Vec::new(); // (physical start, bytes)
    for m in bpf.maps().unwrap() {
        let m = m.unwrap();
        if let Some(at) = pa(m.kva) {
            targets.push((at, 256));
        }
        if matches!(m.map_type, MapType::HASH | MapType::LRU_HASH) {
            let h = bpf.htab(&m).unwrap();
            if let Some(at) = pa(h.buckets()) {
                targets.push((at, 512));
            }
            if let Some(Ok(e)) = h.walk(view).next() {
                if let Some(at) = pa(e.elem) {
                    targets.push((at, 64));
                }
            }
        }
    }
    assert!(
        targets.len() > truth.len(),
        "{test}: {} places",
        targets.len()
    );

    let bin = e2e::inguest::host_mapwalk().unwrap_or_else(|e| panic!("build mapwalk: {e}"));
    let ram = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&copy)
        .unwrap();
    let mut rng = Rng(0x6d61_7077_616c_6b21);
    let mut outcomes: BTreeMap<i32, usize> = BTreeMap::new();
    // Rounds that exited 0 with a map's entry count unlike the guest's: corruption that
    // reads as valid data (a bucket head set to its own nulls marker is an empty
    // bucket), which no reader can tell; counted, not failed.
    let mut indistinguishable = 0usize;
    let storage = super::storage::storage_counts(report);
    let rings = super::ringbuf::ringbuf_counts(report);
    let queues = super::queue::queue_counts(report);
    let counts: BTreeMap<u64, usize> = truth
        .iter()
        .map(|m| {
            let id = u64::from(m.id);
            // A bloom filter dumps as one entry (its bits); the object maps' slots are
            // `OVAL` lines.
            let n = m.values.len()
                + m.hash_values.len()
                + m.percpu_values.len()
                + m.object_values.len()
                + usize::from(MapType(m.map_type) == MapType::BLOOM_FILTER);
            let own = storage
                .get(&id)
                .or(rings.get(&id))
                .or(queues.get(&id))
                .copied()
                .unwrap_or(0);
            (id, n + own)
        })
        .collect();
    let all_ids: BTreeSet<u64> = truth.iter().map(|m| u64::from(m.id)).collect();
    for round in 0..ROUNDS {
        // Corrupt, remembering what was there.
        let mut saved = Vec::new();
        for _ in 0..WORDS {
            let (start, len) = targets[(rng.next() % targets.len() as u64) as usize];
            let at = start + (rng.next() % (len / 8)) * 8;
            let mut old = [0u8; 8];
            ram.read_exact_at(&mut old, at).unwrap();
            let new = match rng.next() % 4 {
                0 => 0,
                1 => u64::MAX,
                2 => u64::from_le_bytes(old) ^ (1 << (rng.next() % 64)),
                _ => rng.next(),
            };
            ram.write_all_at(&new.to_le_bytes(), at).unwrap();
            saved.push((at, old));
        }
        // Into files: a pipe nobody reads while the run lasts would stop it.
        let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
        let mut child = Command::new(bin)
            .arg("--ram")
            .arg(&copy)
            .arg("--symbols")
            .arg(&syms)
            .args(["dump", "--all", "--json"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                panic!("{test}: round {round}: hung for {RUN_LIMIT:?} at {saved:x?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = std::fs::read(&out_path).unwrap();
        let stderr = std::fs::read_to_string(&err_path).unwrap();
        let code = status.code().unwrap_or_else(|| {
            panic!("{test}: round {round}: killed by a signal ({status}); {stderr}")
        });
        assert!(
            matches!(code, 0 | 2 | 3),
            "{test}: round {round}: exit {code} at {saved:x?}: {stderr}"
        );
        *outcomes.entry(code).or_default() += 1;
        match code {
            0 => {
                // Whole: every map, none marked.
                let v: Value = serde_json::from_slice(&stdout).unwrap();
                let maps = v.as_array().unwrap();
                let ids: BTreeSet<u64> = maps.iter().filter_map(|m| m["id"].as_u64()).collect();
                assert_eq!(
                    ids, all_ids,
                    "{test}: round {round}: exit 0 without every map"
                );
                assert!(
                    maps.iter()
                        .all(|m| m.get("partial").is_none() && m["entries"].is_array()),
                    "{test}: round {round}: exit 0 with a map marked partial"
                );
                let differs = maps.iter().any(|m| {
                    let id = m["id"].as_u64().unwrap_or(0);
                    m["entries"].as_array().map(Vec::len) != counts.get(&id).copied()
                });
                indistinguishable += usize::from(differs);
            }
            3 => assert!(
                stderr.contains("mapwalk: incomplete:"),
                "{test}: round {round}: exit 3 says nothing: {stderr}"
            ),
            _ => assert!(
                stderr.lines().any(|l| l.starts_with("mapwalk: error:")),
                "{test}: round {round}: exit 2 without its error line: {stderr}"
            ),
        }
        for (at, old) in saved {
            ram.write_all_at(&old, at).unwrap();
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {ROUNDS} rounds of {WORDS} corrupted words in {} places: exit statuses \
         {outcomes:?}; exits 0 whose entry counts differ from the guest's (corruption that \
         reads as valid data): {indistinguishable}",
        targets.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
