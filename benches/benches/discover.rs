//! Map discovery: `Bpf::maps()` over a `map_idr` of 10,000 maps, iterated to the end.
//!
//! The ids are spread over 1..50,000 in a random order of insertion (as a long-running
//! kernel's ids are, after maps came and went), so the xarray has sparse leaf nodes and
//! three levels. One map in eight is vmalloc'd (its `struct bpf_map` is reached by a page
//! walk), the rest kmalloc'd (direct map); types alternate between ARRAY and HASH.
//!
//! - `maps_fresh_epoch`: the view's translation cache is invalidated before each walk, as
//!   after each pause of the guest: what a one-shot discovery costs.
//! - `maps_warm`: the cache is kept from walk to walk.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mapwalk_benches::{SplitMix64, WARM_UP};
use mapwalk_core::kernel::KernelRead;
use mapwalk_core::synth::{GuestBuilder, MapSpec};
use mapwalk_core::{Bpf, MapType};

/// Maps in the guest.
const MAPS: usize = 10_000;

/// Ids are drawn from `1..ID_SPACE`.
const ID_SPACE: u64 = 50_000;

/// Walks the maps, returning how many were read and a checksum of their ids.
fn walk<K: KernelRead>(bpf: &Bpf<'_, K>) -> (usize, u64) {
    let mut n = 0usize;
    let mut sum = 0u64;
    for m in bpf.maps().expect("map_idr") {
        let m = m.expect("map");
        n += 1;
        sum = sum.wrapping_add(u64::from(m.id) ^ u64::from(m.max_entries));
    }
    (n, sum)
}

fn discovery(c: &mut Criterion) {
    let mut rng = SplitMix64::new(0x6d61_7073);
    let mut ids = BTreeSet::new();
    let mut order = Vec::with_capacity(MAPS);
    while order.len() < MAPS {
        let id = u32::try_from(1 + rng.below(ID_SPACE - 1)).expect("small id");
        if ids.insert(id) {
            order.push(id);
        }
    }
    let mut b = GuestBuilder::x86_64(false);
    for (i, &id) in order.iter().enumerate() {
        let name = format!("m{id}");
        let spec = if i % 2 == 0 {
            MapSpec::array(id, &name, 8, 1 + id % 64)
        } else {
            MapSpec::new(id, MapType::HASH, &name, 8, 16, 1 + id % 64)
        };
        b.add_map(if i % 8 == 0 { spec.vmalloc() } else { spec });
    }
    let guest = b.build();
    let view = guest.view();
    let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);

    // Check once: every map, in id order, with the right metadata.
    let all: Vec<_> = bpf
        .maps()
        .expect("map_idr")
        .map(|m| m.expect("map"))
        .collect();
    assert_eq!(all.len(), MAPS);
    assert!(all.iter().map(|m| m.id).eq(ids.iter().copied()));
    assert!(all
        .iter()
        .all(|m| m.name.as_bytes() == format!("m{}", m.id).as_bytes()));
    let expect = walk(&bpf);
    assert_eq!(expect.0, MAPS);

    let mut g = c.benchmark_group("discover/10k");
    g.throughput(Throughput::Elements(MAPS as u64));
    g.warm_up_time(WARM_UP);
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    g.bench_function("maps_fresh_epoch", |b| {
        b.iter(|| {
            view.invalidate();
            let got = walk(black_box(&bpf));
            debug_assert_eq!(got, expect);
            got
        });
    });
    g.bench_function("maps_warm", |b| {
        b.iter(|| walk(black_box(&bpf)));
    });
    g.finish();
}

criterion_group!(benches, discovery);
criterion_main!(benches);
