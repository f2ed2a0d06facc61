use alloc::vec;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use super::*;
use crate::bpf::{EntryValue, PerCpuOffsets};
use crate::layout::KernelLayout;
use crate::synth::{GuestBuilder, MapSpec, SynthArch, SyntheticGuest};
use crate::Limits;

fn guest(arch: SynthArch, specs: &[MapSpec]) -> SyntheticGuest {
    let mut b = GuestBuilder::new(arch);
    for s in specs {
        b.add_map(s.clone());
    }
    b.build()
}

/// Every entry of map `id` through [`Bpf::for_each_entry`], with `limits`.
fn entries(g: &SyntheticGuest, id: u32, limits: Limits) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let view = g.view().with_limits(limits);
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(id).unwrap().unwrap();
    let lens = bpf.entry_buffer_lens(&map, 1)?;
    let (mut key, mut value) = (vec![0u8; lens.key], vec![0u8; lens.value]);
    let mut out = Vec::new();
    bpf.for_each_entry(
        &map,
        None::<&PerCpuOffsets<Vec<u64>>>,
        &mut key,
        &mut value,
        |k, v| {
            let EntryValue::Single(v) = v else {
                panic!("per-CPU bloom")
            };
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        },
    )?;
    Ok(out)
}

fn header(k: u32, seed: u32, mask: u32) -> Vec<u8> {
    [BLOOM_FORM_VERSION, k, seed, mask]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

fn small() -> MapSpec {
    // 10 values, 3 hashes: 42 bits, so 64 (the least).
    MapSpec::new(1, MapType::BLOOM_FILTER, "bloom", 0, 4, 10).bloom(3, 0xdead_beef, &[0, 9, 63])
}

#[test]
fn the_value_is_the_header_then_the_bit_array() {
    for arch in [
        SynthArch::X86_64 { five_level: false },
        SynthArch::Aarch64 { granule_shift: 14 },
    ] {
        let g = guest(arch, &[small()]);
        let got = entries(&g, 1, Limits::DEFAULT).unwrap();
        let mut want = header(3, 0xdead_beef, 63);
        want.extend([1, 2, 0, 0, 0, 0, 0, 0x80]);
        assert_eq!(got, [(vec![], want)], "{arch:?}");
    }
}

#[test]
fn a_big_vmalloced_array_is_read_whole_across_pages() {
    // 1000 values, 5 hashes: 7000 bits, rounded up to 8192 (1 KiB); 100,000 values,
    // 7 hashes: 980,000 bits, rounded up to 2^20 (128 KiB over 32 scattered pages).
    for (max, k, mask) in [(1000u32, 5u32, 8191u32), (100_000, 7, (1 << 20) - 1)] {
        let bits = [0, mask / 2, mask / 2 + 1, mask];
        let spec = MapSpec::new(2, MapType::BLOOM_FILTER, "big", 0, 8, max)
            .bloom(k, 7, &bits)
            .vmalloc();
        let g = guest(SynthArch::X86_64 { five_level: true }, &[spec]);
        let got = entries(&g, 2, Limits::DEFAULT).unwrap();
        assert_eq!(got.len(), 1);
        let (key, value) = &got[0];
        assert!(key.is_empty());
        assert_eq!(value[..16], header(k, 7, mask)[..]);
        let array = &value[16..];
        assert_eq!(array.len() as u64, (u64::from(mask) + 1) / 8);
        let set: Vec<u32> = (0..=mask)
            .filter(|&b| array[(b / 8) as usize] >> (b % 8) & 1 == 1)
            .collect();
        assert_eq!(set, bits, "{max} values");
    }
}

#[test]
fn the_mask_is_the_kernels() {
    assert_eq!(bloom_bitset_mask(10, 3), 63);
    assert_eq!(bloom_bitset_mask(1000, 5), 8191);
    // 64 bits exactly, and one bit more rounds up to 128.
    assert_eq!(bloom_bitset_mask(46, 1), 63); // 46 / 5 * 7 = 63
    assert_eq!(bloom_bitset_mask(50, 1), 127); // 70
                                               // 2^31 bits is the largest power of two; past it (or on overflow), 2^32.
    assert_eq!(bloom_bitset_mask(1_533_916_891, 1), (1 << 31) - 1);
    assert_eq!(bloom_bitset_mask(1_533_916_896, 1), u32::MAX);
    assert_eq!(bloom_bitset_mask(u32::MAX, 15), u32::MAX);
    for (max, k) in [(1u32, 1u32), (7, 2), (12_345, 4), (300_000_000, 5)] {
        let n = u64::from(max) * u64::from(k) / 5 * 7;
        let want = if n > 1 << 31 {
            u32::MAX
        } else {
            (n.max(64).next_power_of_two() - 1) as u32
        };
        assert_eq!(bloom_bitset_mask(max, k), want, "{max} x {k}");
    }
}

/// `small()` with the u32 at offset `off` of its map struct replaced by `v`.
fn patched(off: u32, v: u32) -> SyntheticGuest {
    let mut g = guest(SynthArch::X86_64 { five_level: false }, &[small()]);
    let pa = g.pa_of(Kva(g.maps[0].kva.0 + u64::from(off)));
    g.ram.write_u32(pa, v);
    g
}

#[test]
fn impossible_parameters_are_corrupt() {
    let l = crate::synth::default_layout().bloom.unwrap();
    let m = crate::synth::default_layout().bpf_map;
    for (off, v, what) in [
        (
            l.nr_hash_funcs,
            0,
            "bpf_bloom_filter.nr_hash_funcs (not 1 to 15)",
        ),
        (
            l.nr_hash_funcs,
            16,
            "bpf_bloom_filter.nr_hash_funcs (not 1 to 15)",
        ),
        (
            l.bitset_mask,
            127,
            "bpf_bloom_filter.bitset_mask (not what max_entries and nr_hash_funcs make)",
        ),
        (
            l.bitset_mask,
            u32::MAX,
            "bpf_bloom_filter.bitset_mask (not what max_entries and nr_hash_funcs make)",
        ),
        (
            m.key_size,
            4,
            "bloom filter sizes (key_size not 0, or value_size or max_entries 0)",
        ),
        (
            m.value_size,
            0,
            "bloom filter sizes (key_size not 0, or value_size or max_entries 0)",
        ),
    ] {
        let g = patched(off, v);
        match entries(&g, 1, Limits::DEFAULT) {
            Err(Error::Corrupt { what: w, .. }) => assert_eq!(w, what, "{off} = {v}"),
            other => panic!("{off} = {v}: {other:?}"),
        }
    }
    // Fifteen hashes is the most, and is read (with the mask they make).
    let g = patched(l.nr_hash_funcs, 15);
    let pa = g.pa_of(Kva(g.maps[0].kva.0 + u64::from(l.bitset_mask)));
    let mut g = g;
    g.ram.write_u32(pa, bloom_bitset_mask(10, 15));
    let got = entries(&g, 1, Limits::DEFAULT).unwrap();
    assert_eq!(got[0].1[..16], header(15, 0xdead_beef, 255)[..]);
}

#[test]
fn the_value_cap_holds_at_the_limit_and_refuses_one_past() {
    let g = guest(SynthArch::X86_64 { five_level: false }, &[small()]);
    let at = Limits {
        value_size: 24,
        ..Limits::DEFAULT
    };
    assert_eq!(entries(&g, 1, at).unwrap()[0].1.len(), 24);
    let below = Limits {
        value_size: 23,
        ..Limits::DEFAULT
    };
    assert_eq!(
        entries(&g, 1, below),
        Err(Error::LimitExceeded {
            what: "bloom filter bit array",
            limit: 23,
            at: 24
        })
    );
}

#[test]
fn wrong_buffers_types_and_layouts_are_typed_errors() {
    let hash = MapSpec::hash(2, "h", 4, 4, 4);
    let g = guest(SynthArch::X86_64 { five_level: false }, &[small(), hash]);
    let view = g.view();
    let bpf = Bpf::new(&view, &g.layout, g.map_idr);
    let map = bpf.map_by_id(1).unwrap().unwrap();
    assert_eq!(
        bpf.read_bloom_value(&map, &mut [0; 23]),
        Err(Error::BufferSize { need: 24, have: 23 })
    );
    let filter = bpf.read_bloom_value(&map, &mut [0; 24]).unwrap();
    assert_eq!((filter.bits(), filter.bitset_bytes()), (64, 8));
    let other = bpf.map_by_id(2).unwrap().unwrap();
    assert!(matches!(
        bpf.bloom(&other),
        Err(Error::WrongMapType { id: 2, .. })
    ));
    let layout = KernelLayout {
        bloom: None,
        ..g.layout
    };
    let bare = Bpf::new(&view, &layout, g.map_idr);
    assert_eq!(
        bare.bloom(&map),
        Err(Error::LayoutMissing {
            what: "bpf_bloom_filter"
        })
    );
}
