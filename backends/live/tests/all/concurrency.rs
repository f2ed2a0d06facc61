//! Dumps while another thread inserts and deletes.

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mapwalk_live::sys::MapCreate;
use mapwalk_live::{DumpMode, DumpOptions, LiveMap, MapType, Update, ValueRef};

use crate::common::{create, need_root};

/// Keys the writer uses: even numbers below this. Odd keys are never inserted.
const KEYS: u32 = 6000;

fn value_of(key: u32, gen: u32) -> u64 {
    (u64::from(key) << 32) | u64::from(gen)
}

fn churn(
    map: &LiveMap,
    stop: &AtomicBool,
    ops_done: &AtomicU64,
    inserted: &Mutex<HashSet<u32>>,
) -> u64 {
    let mut x: u32 = 0x1234_5678;
    let mut ops = 0u64;
    let mut gen = 0u32;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let key = (x % (KEYS / 2)) * 2;
        gen = gen.wrapping_add(1);
        if x & 0x100 == 0 {
            // Recorded before the insert: a dump can only see it afterwards.
            inserted.lock().expect("lock").insert(key);
            let v = value_of(key, gen).to_ne_bytes();
            if map.info().map_type.is_percpu() {
                let n = mapwalk_live::HostCpus::read().expect("cpus").count();
                let copies: Vec<&[u8]> = (0..n).map(|_| &v[..]).collect();
                let _ = map.update_percpu(&key.to_ne_bytes(), &copies, Update::Any);
            } else {
                let _ = map.update(&key.to_ne_bytes(), &v, Update::Any);
            }
        } else {
            let _ = map.delete(&key.to_ne_bytes());
        }
        ops += 1;
        ops_done.store(ops, Ordering::Relaxed);
    }
    ops
}

fn passes(map: &Arc<LiveMap>, mode: DumpMode, inserted: &Arc<Mutex<HashSet<u32>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ops_done = Arc::new(AtomicU64::new(0));
    let writer = {
        let (map, stop, ops_done) = (Arc::clone(map), Arc::clone(&stop), Arc::clone(&ops_done));
        let inserted = Arc::clone(inserted);
        std::thread::spawn(move || churn(&map, &stop, &ops_done, &inserted))
    };
    // Let the writer get going, so that every pass overlaps with it.
    while ops_done.load(Ordering::Relaxed) < 500 {
        std::thread::yield_now();
    }
    let before = ops_done.load(Ordering::Relaxed);
    // Small batches: many calls, each a chance for the writer to interleave.
    let opts = DumpOptions {
        mode,
        batch_size: 16,
    };
    let mut totals = (0u64, 0u64, 0u64);
    let mut returned = HashSet::new();
    for pass in 0..10 {
        let mut keys = HashSet::new();
        let stats = map
            .for_each_entry(opts, |k, v| {
                let key = u32::from_ne_bytes(k.try_into().expect("4-byte key"));
                assert!(keys.insert(key), "{mode:?} pass {pass}: key {key} twice");
                assert!(
                    key % 2 == 0 && key < KEYS,
                    "{mode:?} pass {pass}: key {key} never inserted"
                );
                let check = |b: &[u8]| {
                    let val = u64::from_ne_bytes(b.try_into().expect("8-byte value"));
                    assert_eq!(
                        val >> 32,
                        u64::from(key),
                        "{mode:?}: value {val:#x} was never written for key {key}"
                    );
                };
                match v {
                    ValueRef::Single(b) => check(b),
                    ValueRef::PerCpu(p) => p.iter().for_each(|(_, b)| check(b)),
                }
                ControlFlow::Continue(())
            })
            .unwrap_or_else(|e| panic!("{mode:?} pass {pass}: {e}"));
        returned.extend(keys);
        totals.0 += stats.entries;
        totals.1 += stats.vanished;
        totals.2 += stats.repeats;
    }
    let during = ops_done.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let inserted = inserted.lock().expect("lock");
    let invented: Vec<_> = returned.difference(&inserted).collect();
    assert!(
        invented.is_empty(),
        "{mode:?}: keys never inserted: {invented:?}"
    );
    assert!(during > 0, "the writer made no change during the passes");
    eprintln!(
        "{} {mode:?}: 10 passes, {} entries, {} vanished, {} repeats skipped, \
         {during} writer ops during the passes",
        map.info().map_type,
        totals.0,
        totals.1,
        totals.2
    );
}

#[test]
fn dumps_stay_consistent_under_concurrent_inserts_and_deletes() {
    if !need_root("concurrency::dumps_stay_consistent_under_concurrent_inserts_and_deletes") {
        return;
    }
    for t in [MapType::HASH, MapType::PERCPU_HASH, MapType::LRU_HASH] {
        let map = Arc::new(create(&MapCreate::new(t, "mw_churn", 4, 8, KEYS)));
        let inserted = Arc::new(Mutex::new(HashSet::new()));
        for key in (0..KEYS).step_by(2).take(1500) {
            inserted.lock().expect("lock").insert(key);
            let v = value_of(key, 0).to_ne_bytes();
            if t.is_percpu() {
                let n = mapwalk_live::HostCpus::read().expect("cpus").count();
                let copies: Vec<&[u8]> = (0..n).map(|_| &v[..]).collect();
                map.update_percpu(&key.to_ne_bytes(), &copies, Update::Any)
                    .expect("fill");
            } else {
                map.update(&key.to_ne_bytes(), &v, Update::Any)
                    .expect("fill");
            }
        }
        for mode in [DumpMode::Batch, DumpMode::NextKey] {
            passes(&map, mode, &inserted);
        }
    }
}
