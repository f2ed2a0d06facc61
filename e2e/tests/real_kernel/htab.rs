//! Hash and per-CPU BPF maps on real kernels: with the guest paused, every HASH and
//! LRU_HASH map must read, through `HtabMap::entries`, as exactly the `(key, value)` set
//! the guest's `/init` got back from the kernel (`HVAL` lines), and every PERCPU_ARRAY,
//! PERCPU_HASH and LRU_PERCPU_HASH map must read byte-exact per key and per possible CPU
//! (`PVAL` lines), with `__per_cpu_offset` and `nr_cpu_ids` from the guest's kallsyms.
//! The `__percpu` pointer placement of each per-CPU hash map is decided from the data
//! (`PptrDecision`, printed); the values matching proves the decision, and forcing the
//! other placement (for keys that are not a multiple of 8) must not reproduce them.

use super::bpf::{layout_from_guest, GUEST_MAPS};
use super::{kernel_view, MIB};
use mapwalk::kallsyms::SymbolTable;
use mapwalk_core::bpf::{
    CpuCopy, HtabValue, PerCpuOffsets, PerCpuValue, PossibleCpus, PptrEvidence, PptrPlacement,
};
use mapwalk_core::{
    Bpf, KernelLayout, KernelRead, KernelView, Kva, MapInfo, MapType, Pa, PhysRead, Ram,
};
use mapwalk_e2e::{self as e2e, GuestConfig, GuestMap};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

#[test]
fn deb12_kaslr_5level_hash_maps() {
    hash_maps(&GuestConfig::DEB12_KASLR_5LEVEL);
}

#[test]
fn deb12_nokaslr_4level_hash_maps() {
    hash_maps(&GuestConfig::DEB12_NOKASLR_4LEVEL);
}

#[test]
fn deb13_kaslr_5level_hash_maps() {
    hash_maps(&GuestConfig::DEB13_KASLR_5LEVEL);
}

#[test]
fn deb12_kaslr_4level_smp4_hash_maps() {
    hash_maps(&GuestConfig::DEB12_KASLR_4LEVEL_SMP4);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_maps(config: &GuestConfig) {
    let test = format!("real_kernel::htab::{}", config.name);
    let Some(guest) = e2e::guest(&test, config) else {
        return;
    };
    let report = guest.report();
    let syms = &report.kallsyms;
    let expected = report.bpf_maps().unwrap_or_else(|e| panic!("{test}: {e}"));
    for name in GUEST_MAPS {
        assert!(
            expected.iter().any(|m| m.name == name),
            "{test}: the guest did not report map {name}"
        );
    }
    let cpus = report
        .bpf_possible_cpus()
        .unwrap_or_else(|e| panic!("{test}: {e}"));
    assert_eq!(
        cpus,
        config.smp,
        "{test}: possible CPUs (cpu/possible {:?}) vs -smp",
        report.section("cpu-possible")
    );

    // A copy of RAM taken with the guest paused; it runs on while the checks do.
    let mut paused = guest.pause().unwrap_or_else(|e| panic!("{test}: {e}"));
    let regs = paused.x86_regs().unwrap_or_else(|e| panic!("{test}: {e}"));
    let ram = paused.read_ram().unwrap_or_else(|e| panic!("{test}: {e}"));
    drop(paused);
    let ram_len = u64::try_from(ram.len()).unwrap();
    assert_eq!(ram_len, u64::from(config.mem_mib) * MIB);
    let mem = Ram::new(Pa(0), ram);
    let (view, _, _) = kernel_view(&test, syms, regs, &mem, ram_len);
    let layout = layout_from_guest(&test, syms, &view);
    check_hash_maps(
        &test,
        syms,
        &view,
        &layout,
        &expected,
        cpus,
        guest.release(),
    );
}

/// Every HASH, LRU_HASH and per-CPU map of `expected` through `view` and `layout`,
/// byte-exact per key and per possible CPU (`cpus` of them, by `nr_cpu_ids` and
/// `__per_cpu_offset` from `syms`); prints a summary naming `release`.
pub(super) fn check_hash_maps<M: PhysRead>(
    test: &str,
    syms: &SymbolTable,
    view: &KernelView<M>,
    layout: &KernelLayout,
    expected: &[GuestMap],
    cpus: u32,
    release: &str,
) {
    let sym = |name: &str| {
        syms.lookup(name)
            .unwrap_or_else(|| panic!("{test}: the guest's kallsyms has no {name}"))
    };
    assert!(
        layout.htab.is_some(),
        "{test}: bpf_htab did not resolve from the guest's BTF"
    );
    let bpf = Bpf::new(view, layout, Kva(sym("map_idr")));

    // __per_cpu_offset[0 .. nr_cpu_ids], nr_cpu_ids read from the guest.
    let nr_cpu_ids = Kva(sym("nr_cpu_ids"));
    let offsets = PerCpuOffsets::read_vec(
        view,
        Kva(sym("__per_cpu_offset")),
        PossibleCpus::NrCpuIds(nr_cpu_ids),
    )
    .unwrap_or_else(|e| panic!("{test}: read __per_cpu_offset: {e}"));
    assert_eq!(
        offsets.possible(),
        cpus,
        "{test}: nr_cpu_ids={} but the guest has {cpus} possible CPUs",
        view.read_kernel_u32(nr_cpu_ids).unwrap()
    );
    for cpu in 0..cpus {
        assert!(
            offsets.offset(cpu).is_some(),
            "{test}: __per_cpu_offset[{cpu}] is zero: {:x?}",
            offsets.as_slice()
        );
    }
    assert_eq!(offsets.offset(cpus), None, "{test}: CPU {cpus}");
    // What the slot past the possible CPUs holds (on x86_64 the boot offset, not zero:
    // why the count comes from nr_cpu_ids).
    let past = view
        .read_kernel_u64(Kva(sym("__per_cpu_offset") + 8 * u64::from(cpus)))
        .unwrap_or_else(|e| panic!("{test}: __per_cpu_offset[{cpus}]: {e}"));

    let started = Instant::now();
    let mut summary = String::new();
    for want in expected {
        let info = bpf
            .map_by_id(want.id)
            .unwrap_or_else(|e| panic!("{test}: map_by_id({}): {e}", want.id))
            .unwrap_or_else(|| panic!("{test}: map {} ({}) not in map_idr", want.id, want.name));
        let line = match MapType(want.map_type) {
            MapType::HASH | MapType::LRU_HASH => check_htab(test, &bpf, &info, want),
            MapType::PERCPU_HASH | MapType::LRU_PERCPU_HASH => {
                check_percpu_htab(test, &bpf, &offsets, &info, want)
            }
            MapType::PERCPU_ARRAY => check_percpu_array(test, &bpf, &offsets, &info, want),
            _ => continue,
        };
        writeln!(summary, "  {}", line).unwrap();
    }
    eprintln!(
        "{test}: kernel {}, {cpus} possible CPUs, per-CPU offsets {:x?} \
         (slot {cpus}, not read: {past:#x}); checks took {:.2} s:\n{summary}",
        release,
        offsets.as_slice(),
        started.elapsed().as_secs_f64()
    );
}

/// HASH and LRU_HASH: `entries` is the guest's `HVAL` set, with no error; `mw_hash` has
/// chains longer than one element.
fn check_htab<M: PhysRead>(
    test: &str,
    bpf: &Bpf<'_, KernelView<M>>,
    info: &MapInfo,
    want: &GuestMap,
) -> String {
    let name = &want.name;
    let h = bpf
        .htab(info)
        .unwrap_or_else(|e| panic!("{test}: {name} as a hash map: {e}"));
    assert!(
        h.pptr_decision().is_none() && !h.is_percpu(),
        "{test}: {name}"
    );
    assert!(
        !want.hash_values.is_empty(),
        "{test}: {name}: the guest reported no entries"
    );
    let all = h
        .entries(bpf.mem())
        .unwrap_or_else(|e| panic!("{test}: {name}: entries: {e}"));
    assert!(
        all.errors.is_empty() && all.end.is_none(),
        "{test}: {name}: errors {:?}, end {:?}",
        all.errors,
        all.end
    );
    let got: BTreeMap<Vec<u8>, Vec<u8>> = all.entries.iter().cloned().collect();
    assert_eq!(
        got.len(),
        all.entries.len(),
        "{test}: {name}: a key read twice"
    );
    compare_sets(test, name, &got, &want.hash_values);

    // Chain lengths, from the walk itself.
    let mut per_bucket: BTreeMap<u32, u32> = BTreeMap::new();
    for e in h.walk(bpf.mem()) {
        let e = e.unwrap_or_else(|e| panic!("{test}: {name}: walk: {e}"));
        assert!(matches!(e.value, HtabValue::Inline(_)), "{test}: {name}");
        *per_bucket.entry(e.bucket).or_default() += 1;
    }
    let longest = per_bucket.values().copied().max().unwrap_or(0);
    let shared = per_bucket.values().filter(|&&n| n > 1).count();
    if name == "mw_hash" {
        assert!(
            longest > 1,
            "{test}: {name}: no bucket holds two elements: collisions untested"
        );
    }
    format!(
        "{name} ({}): {} entries byte-exact in {} of {} buckets ({shared} shared, longest chain {longest})",
        type_name(want.map_type),
        got.len(),
        per_bucket.len(),
        h.n_buckets()
    )
}

fn compare_sets(
    test: &str,
    name: &str,
    got: &BTreeMap<Vec<u8>, Vec<u8>>,
    want: &BTreeMap<Vec<u8>, Vec<u8>>,
) {
    let missing: Vec<String> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .map(|k| hex(k))
        .collect();
    let extra: Vec<String> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|k| hex(k))
        .collect();
    let differ: Vec<String> = want
        .iter()
        .filter_map(|(k, v)| {
            let g = got.get(k)?;
            (g != v).then(|| format!("{}: read {} want {}", hex(k), hex(g), hex(v)))
        })
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && differ.is_empty(),
        "{test}: {name}: {} missing {missing:?}, {} extra {extra:?}, {} differ {differ:?}",
        missing.len(),
        extra.len(),
        differ.len()
    );
}

/// The per-CPU values the guest reported for one key, by CPU, as the walker returns
/// them: `Present` for the possible CPUs.
fn want_copies(cpus: u32, by_cpu: &BTreeMap<u32, Vec<u8>>) -> Vec<PerCpuValue> {
    (0..cpus)
        .map(|c| match by_cpu.get(&c) {
            Some(v) => CpuCopy::Present(v.clone()),
            None => CpuCopy::NoSuchCpu,
        })
        .collect()
}

fn check_copies(
    test: &str,
    name: &str,
    key: &[u8],
    got: &[PerCpuValue],
    want: &BTreeMap<u32, Vec<u8>>,
    cpus: u32,
) {
    assert_eq!(
        want.keys().copied().collect::<Vec<_>>(),
        (0..cpus).collect::<Vec<_>>(),
        "{test}: {name} key {}: the guest reported CPUs {:?}",
        hex(key),
        want.keys()
    );
    assert_eq!(
        got.len(),
        cpus as usize,
        "{test}: {name} key {}: {} copies for {cpus} CPUs",
        hex(key),
        got.len()
    );
    for (cpu, copy) in got.iter().enumerate() {
        let cpu = u32::try_from(cpu).unwrap();
        let w = &want[&cpu];
        match copy {
            CpuCopy::Present(v) => assert!(
                v == w,
                "{test}: {name} key {} CPU {cpu}: read {} want {}",
                hex(key),
                hex(v),
                hex(w)
            ),
            CpuCopy::NoSuchCpu => panic!("{test}: {name} key {} CPU {cpu}: missing", hex(key)),
        }
    }
}

/// PERCPU_HASH and LRU_PERCPU_HASH: the placement decided from the data, then every
/// key and every possible CPU byte-exact; no CPU past the possible ones; the other
/// placement, forced, does not reproduce the values.
fn check_percpu_htab<M: PhysRead>(
    test: &str,
    bpf: &Bpf<'_, KernelView<M>>,
    offsets: &PerCpuOffsets<Vec<u64>>,
    info: &MapInfo,
    want: &GuestMap,
) -> String {
    let name = &want.name;
    let mem = bpf.mem();
    let cpus = offsets.possible();
    let h = bpf
        .percpu_htab(info, offsets, None)
        .unwrap_or_else(|e| panic!("{test}: {name} as a per-CPU hash map: {e}"));
    let decision = h.pptr_decision().expect("a per-CPU map has a decision");
    let key_aligned = want.key_size % 8 == 0;
    assert!(
        match decision.evidence {
            PptrEvidence::KeyAligned => key_aligned,
            PptrEvidence::Exclusive { elements, .. } => !key_aligned && elements > 0,
            PptrEvidence::PaddingTieBreak { elements } => !key_aligned && elements > 0,
            PptrEvidence::Forced | PptrEvidence::NoEvidence { .. } => false,
        },
        "{test}: {name}: decision {decision:?}"
    );
    assert!(
        !want.percpu_values.is_empty(),
        "{test}: {name}: the guest reported no entries"
    );
    let all = h
        .percpu_entries(mem, offsets)
        .unwrap_or_else(|e| panic!("{test}: {name}: percpu_entries: {e}"));
    assert!(
        all.errors.is_empty() && all.end.is_none(),
        "{test}: {name} ({decision:?}): errors {:?}, end {:?}",
        all.errors,
        all.end
    );
    let got: BTreeMap<Vec<u8>, Vec<PerCpuValue>> = all.entries.iter().cloned().collect();
    assert_eq!(got.len(), all.entries.len(), "{test}: {name}: a key twice");
    let missing: Vec<String> = want
        .percpu_values
        .keys()
        .filter(|k| !got.contains_key(*k))
        .map(|k| hex(k))
        .collect();
    let extra: Vec<String> = got
        .keys()
        .filter(|k| !want.percpu_values.contains_key(*k))
        .map(|k| hex(k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{test}: {name}: missing keys {missing:?}, extra keys {extra:?}"
    );
    for (key, by_cpu) in &want.percpu_values {
        check_copies(test, name, key, &got[key], by_cpu, cpus);
    }

    // Element by element through the walk: CPU `cpus` (past the possible ones) is no
    // CPU, never data.
    let mut buf = vec![0u8; want.value_size as usize];
    let mut walked = 0;
    for e in h.walk(mem) {
        let e = e.unwrap_or_else(|e| panic!("{test}: {name}: walk: {e}"));
        assert!(matches!(e.value, HtabValue::PerCpu(_)), "{test}: {name}");
        for cpu in [cpus, cpus + 1, 63] {
            assert_eq!(
                h.read_cpu_value(mem, offsets, &e, cpu, &mut buf),
                Ok(CpuCopy::NoSuchCpu),
                "{test}: {name}: CPU {cpu}"
            );
        }
        let mut key = vec![0u8; want.key_size as usize];
        h.read_key(mem, &e, &mut key).unwrap();
        let last = cpus - 1;
        assert_eq!(
            h.read_cpu_value(mem, offsets, &e, last, &mut buf),
            Ok(CpuCopy::Present(()))
        );
        assert_eq!(
            buf, want.percpu_values[&key][&last],
            "{test}: {name}: CPU {last}"
        );
        walked += 1;
    }
    assert_eq!(walked, got.len(), "{test}: {name}: walk vs entries");

    // The other placement, forced: no element reads as the guest's data.
    let other = if key_aligned {
        None
    } else {
        let other = match decision.placement {
            PptrPlacement::KeySize => PptrPlacement::Aligned,
            PptrPlacement::Aligned => PptrPlacement::KeySize,
        };
        let forced = bpf
            .percpu_htab(info, offsets, Some(other))
            .unwrap_or_else(|e| panic!("{test}: {name} forced {other:?}: {e}"));
        let wrong = forced
            .percpu_entries(mem, offsets)
            .unwrap_or_else(|e| panic!("{test}: {name} forced {other:?}: {e}"));
        let matching = wrong
            .entries
            .iter()
            .filter(|(k, v)| {
                want.percpu_values
                    .get(k)
                    .is_some_and(|by_cpu| *v == want_copies(cpus, by_cpu))
            })
            .count();
        assert_eq!(
            matching, 0,
            "{test}: {name}: the forced placement {other:?} reproduces {matching} entries"
        );
        Some(format!(
            "; forced {other:?}: {} elements unreadable, {} read as other bytes",
            wrong.errors.len(),
            wrong.entries.len()
        ))
    };
    format!(
        "{name} ({}, key {}, value {}): {} keys x {cpus} CPUs byte-exact; pptr {:?} ({:?}){}",
        type_name(want.map_type),
        want.key_size,
        want.value_size,
        got.len(),
        decision.placement,
        decision.evidence,
        other.unwrap_or_default()
    )
}

/// PERCPU_ARRAY: every key, every possible CPU, byte-exact.
fn check_percpu_array<M: PhysRead>(
    test: &str,
    bpf: &Bpf<'_, KernelView<M>>,
    offsets: &PerCpuOffsets<Vec<u64>>,
    info: &MapInfo,
    want: &GuestMap,
) -> String {
    let name = &want.name;
    let mem = bpf.mem();
    let cpus = offsets.possible();
    let a = bpf
        .percpu_array(info)
        .unwrap_or_else(|e| panic!("{test}: {name} as a PERCPU_ARRAY: {e}"));
    assert_eq!(
        want.percpu_values.len(),
        want.max_entries as usize,
        "{test}: {name}: the guest reported {} keys",
        want.percpu_values.len()
    );
    let mut buf = vec![0u8; want.value_size as usize];
    for key in 0..want.max_entries {
        let k = key.to_le_bytes().to_vec();
        let by_cpu = want
            .percpu_values
            .get(&k)
            .unwrap_or_else(|| panic!("{test}: {name}: no PVAL for key {key}"));
        let got = a
            .values(mem, offsets, key)
            .unwrap_or_else(|e| panic!("{test}: {name} key {key}: {e}"));
        check_copies(test, name, &k, &got, by_cpu, cpus);
        assert_eq!(
            a.read_cpu(mem, offsets, key, cpus, 0, &mut buf),
            Ok(CpuCopy::NoSuchCpu),
            "{test}: {name} key {key}: CPU {cpus}"
        );
    }
    format!(
        "{name} (PERCPU_ARRAY, value {}): {} keys x {cpus} CPUs byte-exact",
        want.value_size, want.max_entries
    )
}

fn type_name(t: u32) -> &'static str {
    match MapType(t) {
        MapType::HASH => "HASH",
        MapType::LRU_HASH => "LRU_HASH",
        MapType::PERCPU_HASH => "PERCPU_HASH",
        MapType::LRU_PERCPU_HASH => "LRU_PERCPU_HASH",
        _ => "?",
    }
}
