//! Iteration over a 1,000,000-entry HASH map: every key and value copied into caller
//! buffers through `HtabWalk::next_into`, and collected with `HtabMap::entries`.
//!
//! Two element orders, measured in the same run:
//! - `pool_order`: elements lie in memory in the order the walk visits them (bucket by
//!   bucket), as a freshly filled preallocated map is close to;
//! - `hash_order`: elements lie in insertion order and the walk visits them in hash
//!   order, so every element is a jump to an unrelated address: the worst case.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mapwalk_benches::WARM_UP;
use mapwalk_core::bpf::HtabMap;
use mapwalk_core::kernel::KernelRead;
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::Bpf;

/// Entries in the map.
const ENTRIES: u32 = 1_000_000;

fn guest(pool_order: bool) -> SyntheticGuest {
    let n_buckets = ENTRIES.next_power_of_two();
    let mut spec = MapSpec::hash(1, "flows", 8, 8, ENTRIES);
    for i in 0..ENTRIES {
        let key = (u64::from(i) * 0x9e37_79b9).to_le_bytes();
        let value = (u64::from(i) ^ 0x5555).to_le_bytes();
        spec = if pool_order {
            spec.entry_in_bucket(i % n_buckets, &key, &value)
        } else {
            spec.entry(&key, &value)
        };
    }
    let mut b = GuestBuilder::x86_64(false).ram_size(512 << 20);
    b.add_map(spec);
    b.build()
}

/// Walks the map, copying every key and value; returns the count and a checksum.
fn walk<K: KernelRead>(map: &HtabMap, mem: &K) -> (u32, u64) {
    let (mut key, mut value) = ([0u8; 8], [0u8; 8]);
    let mut walk = map.walk(mem);
    let (mut n, mut sum) = (0u32, 0u64);
    while let Some(item) = walk.next_into(&mut key, &mut value) {
        item.expect("entry");
        n += 1;
        sum = sum.wrapping_add(u64::from_le_bytes(key) ^ u64::from_le_bytes(value));
    }
    (n, sum)
}

fn iteration(c: &mut Criterion) {
    let mut g = c.benchmark_group("htab/1M");
    g.throughput(Throughput::Elements(u64::from(ENTRIES)));
    g.warm_up_time(WARM_UP);
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(10);
    for (label, pool_order) in [("pool_order", true), ("hash_order", false)] {
        let guest = guest(pool_order);
        let view = guest.view();
        let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
        let info = bpf.map_by_id(1).expect("map_idr").expect("map 1");
        let map = bpf.htab(&info).expect("a hash map");
        // Check once: every entry, each key with its own value.
        let all = map.entries(&view).expect("walk");
        assert_eq!(all.entries.len(), ENTRIES as usize);
        assert!(all.errors.is_empty() && all.end.is_none());
        assert!(all.entries.iter().all(|(k, v)| {
            let i = u64::from_le_bytes(k[..].try_into().unwrap()) / 0x9e37_79b9;
            u64::from_le_bytes(v[..].try_into().unwrap()) == i ^ 0x5555
        }));
        let expect = walk(&map, &view);
        assert_eq!(expect.0, ENTRIES);
        g.bench_function(format!("next_into/{label}"), |b| {
            b.iter(|| walk(black_box(&map), black_box(&view)));
        });
        g.bench_function(format!("entries_vec/{label}"), |b| {
            b.iter(|| map.entries(black_box(&view)).expect("walk").entries.len());
        });
    }
    g.finish();
}

criterion_group!(benches, iteration);
criterion_main!(benches);
