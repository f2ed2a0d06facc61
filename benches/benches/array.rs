//! A 16 MiB ARRAY value read into a caller buffer, next to a plain 16 MiB memcpy.
//!
//! - `memcpy`: `copy_from_slice` of 16 MiB of the guest's RAM into the same buffer:
//!   the ceiling for any reader.
//! - `memcpy_scattered_pages`: 4,096 `copy_from_slice`s of 4 KiB from the physical
//!   pages of the scattered value below, in order: the ceiling for that layout.
//! - `kmalloc`: the value of a kmalloc'd array (physically contiguous, in the direct
//!   map): one run, no page walk.
//! - `vmalloc_mmapable`: the value of a `BPF_F_MMAPABLE` array, vmalloc'd, its 4,096
//!   pages physically scattered (every other page): 4,096 page walks and 4,096 copies
//!   of 4 KiB.
//!
//! Each read starts with an empty translation cache (one pause of the guest).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mapwalk_benches::WARM_UP;
use mapwalk_core::kernel::KernelRead;
use mapwalk_core::synth::{GuestBuilder, MapSpec};
use mapwalk_core::{Bpf, Kva};

/// The value size: 16 MiB.
const VALUE: usize = 16 << 20;

/// The value's bytes: a pattern that differs from page to page.
fn pattern(seed: u8) -> Vec<u8> {
    (0..VALUE)
        .map(|i| (i as u8) ^ ((i >> 12) as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn array_read(c: &mut Criterion) {
    let value_size = u32::try_from(VALUE).expect("16 MiB fits");
    let mut b = GuestBuilder::x86_64(false).ram_size(128 << 20);
    b.add_map(MapSpec::array(1, "contig", value_size, 1).with_values(|_| pattern(1)));
    b.add_map(
        MapSpec::array(2, "scattered", value_size, 1)
            .mmapable()
            .with_values(|_| pattern(2)),
    );
    let guest = b.build();
    let view = guest.view();
    let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
    let contig = bpf
        .array(&bpf.find_by_name("contig").expect("walk").expect("map 1"))
        .expect("array 1");
    let scattered = bpf
        .array(&bpf.find_by_name("scattered").expect("walk").expect("map 2"))
        .expect("array 2");

    // Check once: both values read back whole, and the scattered one really is.
    let mut buf = vec![0u8; VALUE];
    contig.read(&view, 0, 0, &mut buf).expect("read 1");
    assert!(buf == pattern(1), "kmalloc'd value");
    scattered.read(&view, 0, 0, &mut buf).expect("read 2");
    assert!(buf == pattern(2), "vmalloc'd value");
    let at = |off: u64| {
        let va = scattered.value_kva(0).expect("key 0").0 + off;
        view.kva_to_pa(Kva(va)).expect("mapped").start.0
    };
    assert_ne!(
        at(4096),
        at(0) + 4096,
        "the vmalloc'd pages are not contiguous"
    );

    // The memcpy source: the kmalloc'd value's own bytes in guest RAM.
    let src_pa = view
        .kva_to_pa(contig.value_kva(0).expect("key 0"))
        .expect("direct map")
        .start;
    let src = guest.ram.slice(src_pa, VALUE);
    assert!(src == &pattern(1)[..]);

    // The scattered value's pages, for a memcpy that follows the same physical layout.
    let base = scattered.value_kva(0).expect("key 0").0;
    assert_eq!(base % 4096, 0, "an mmapable array's values start on a page");
    let pages: Vec<&[u8]> = (0..VALUE as u64 / 4096)
        .map(|i| {
            let pa = view.kva_to_pa(Kva(base + i * 4096)).expect("mapped").start;
            guest.ram.slice(pa, 4096)
        })
        .collect();

    let mut g = c.benchmark_group("array/16MiB");
    g.throughput(Throughput::Bytes(VALUE as u64));
    g.warm_up_time(WARM_UP);
    g.measurement_time(Duration::from_secs(2));
    g.sample_size(20);
    g.bench_function("memcpy", |b| {
        b.iter(|| buf.copy_from_slice(black_box(src)));
    });
    g.bench_function("memcpy_scattered_pages", |b| {
        b.iter(|| {
            for (dst, page) in buf.chunks_exact_mut(4096).zip(black_box(&pages)) {
                dst.copy_from_slice(page);
            }
        });
    });
    g.bench_function("kmalloc", |b| {
        b.iter(|| {
            view.invalidate();
            contig.read(&view, black_box(0), 0, &mut buf)
        });
    });
    g.bench_function("vmalloc_mmapable", |b| {
        b.iter(|| {
            view.invalidate();
            scattered.read(&view, black_box(0), 0, &mut buf)
        });
    });
    g.finish();
}

criterion_group!(benches, array_read);
criterion_main!(benches);
