//! Builds the agent's guest at compile time, and links the agent without a C runtime.
//!
//! The synthetic-guest builder of mapwalk-core (`synth` feature; a build-dependency, so
//! the agent itself never sees it) lays an x86_64 kernel with BPF maps into RAM. This
//! script writes:
//! - `$OUT_DIR/guest.ram`: the populated window of that RAM (everything outside it is
//!   zero and is never read by a correct walk), which the agent `include_bytes!`s;
//! - `$OUT_DIR/guest.rs`: the paging state, the kernel's linear mappings, the layout,
//!   `map_idr`, and the expected results, all as Rust literals. The expected values come
//!   from the builder's inputs and records, never from the walkers under test.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

use mapwalk_core::bpf::PptrPlacement;
use mapwalk_core::synth::{GuestBuilder, MapSpec, SyntheticGuest};
use mapwalk_core::{Kva, MapType, Paging};

/// Page size of the RAM window's alignment.
const PAGE: usize = 0x1000;

/// Possible CPUs of the guest.
const CPUS: u32 = 3;

/// A per-CPU test value: `n`, CPU and byte index mixed.
fn cpu_value(n: u32, cpu: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (n * 31 + cpu * 7 + i) as u8)
        .collect()
}

/// The maps of the agent's guest.
fn maps() -> Vec<MapSpec> {
    vec![
        // kmalloc'd: reached through the direct map.
        MapSpec::array(3, "counters", 8, 16)
            .with_values(|k| (u64::from(k) * 1000 + 7).to_le_bytes().to_vec()),
        // vmalloc'd: reached only through the page tables.
        MapSpec::array(9, "agent.bss", 24, 2)
            .vmalloc()
            .with_values(|k| format!("agent bss value {k:>7}!").into_bytes()),
        // mmapable: vmalloc'd, values page-aligned, 3 pages of values.
        MapSpec::array(70, "big_mmap", 4096, 3)
            .mmapable()
            .with_values(|k| (0..4096u32).map(|i| (i ^ (k * 37)) as u8).collect()),
        // A value size that is not a multiple of 8: the stride is rounded up.
        MapSpec::array(4097, "odd_stride", 13, 5)
            .with_values(|k| (0..13u8).map(|i| i.wrapping_mul(k as u8 + 1)).collect()),
        // HASH: 16 buckets, five elements, three of them chained in bucket 7.
        MapSpec::hash(20, "flows", 4, 12, 16)
            .entry(&1u32.to_le_bytes(), b"one  (value)")
            .entry(&2u32.to_le_bytes(), b"two  (value)")
            .entry_in_bucket(7, &30u32.to_le_bytes(), b"thirty      ")
            .entry_in_bucket(7, &31u32.to_le_bytes(), b"thirty-one  ")
            .entry_in_bucket(7, &32u32.to_le_bytes(), b"thirty-two  "),
        // PERCPU_HASH as Linux 6.1 lays it out: the __percpu pointer right after the
        // 6-byte key (unaligned); the agent lets the core find that out.
        MapSpec::new(21, MapType::PERCPU_HASH, "pkts", 6, 8, 8)
            .pptr_placement(PptrPlacement::KeySize)
            .percpu_entry(
                b"\x0a\0\0\x01\x00\x50",
                (0..CPUS).map(|c| cpu_value(1, c, 8)).collect(),
            )
            .percpu_entry(
                b"\x0a\0\0\x02\x01\xbb",
                (0..CPUS).map(|c| cpu_value(2, c, 8)).collect(),
            ),
        // PERCPU_ARRAY, copies in a vmalloc'd per-CPU chunk.
        MapSpec::new(22, MapType::PERCPU_ARRAY, "cpu_cnt", 4, 16, 4)
            .percpu_vmalloc()
            .with_cpu_values(CPUS, |k, c| cpu_value(10 + k, c, 16)),
    ]
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MAPWALK_AGENT_BREAK");
    // No C runtime: the agent brings its own `_start` (src/rt.rs). See README.md.
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }

    let specs = maps();
    let mut b = GuestBuilder::x86_64(false)
        .ram_size(32 << 20)
        .possible_cpus(CPUS);
    for spec in &specs {
        b.add_map(spec.clone());
    }
    let g = b.build();

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let (base, window) = window(&g);
    fs::write(out.join("guest.ram"), window).expect("write guest.ram");
    let mut expected = specs.clone();
    let mut g_expected = g.clone();
    // The self-test (run.sh): a wrong expectation must make the agent fail.
    match env::var("MAPWALK_AGENT_BREAK").as_deref() {
        Ok("value") => expected[0].values[5][0] ^= 1,
        Ok("hash") => expected[4].entries[3].value[0] ^= 1,
        Ok("percpu") => expected[6].cpu_values[2][1][3] ^= 1,
        Ok("translation") => {
            let (&va, &pa) = g_expected
                .vmalloc_pages
                .iter()
                .next()
                .expect("vmalloc pages");
            g_expected
                .vmalloc_pages
                .insert(va, mapwalk_core::Pa(pa.0 + 0x1000));
        }
        Ok("maps") => {
            expected.pop();
        }
        Ok(other) if !other.is_empty() => {
            panic!("MAPWALK_AGENT_BREAK={other}: not value, hash, percpu, translation or maps")
        }
        _ => {}
    }
    fs::write(
        out.join("guest.rs"),
        rust(&g_expected, &expected, base, window.len()),
    )
    .expect("write guest.rs");
}

/// The page-aligned window of RAM that holds every non-zero byte, and its physical
/// address.
fn window(g: &SyntheticGuest) -> (u64, &[u8]) {
    let bytes = g.ram.bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(0) / PAGE * PAGE;
    let last = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
    let end = (last + 1).next_multiple_of(PAGE).min(bytes.len());
    (g.ram.base().0 + first as u64, &bytes[first..end])
}

fn bytes_literal(b: &[u8]) -> String {
    let mut s = String::from("&[");
    for (i, byte) in b.iter().enumerate() {
        if i % 24 == 0 {
            s.push_str("\n        ");
        }
        write!(s, "{byte:#04x},").unwrap();
    }
    s.push_str("\n    ]");
    s
}

/// The generated module. Plain-data structs of mapwalk-core are written with their
/// `Debug` output, which is Rust syntax for them (`Kva(0x..)`, `Some(..)`, named
/// fields): a layout group added to the core later appears here without a change.
fn rust(g: &SyntheticGuest, specs: &[MapSpec], base: u64, len: usize) -> String {
    let Paging::X86_64(paging) = g.paging else {
        panic!("the agent's guest is x86_64")
    };
    let mut s = String::new();
    let w = &mut s;
    writeln!(w, "// @generated by build.rs: the agent's synthetic guest.").unwrap();
    writeln!(w, "/// Physical address of the first byte of [`RAM`].").unwrap();
    writeln!(w, "pub const RAM_BASE: u64 = {base:#x};").unwrap();
    writeln!(w, "/// Bytes of [`RAM`] ({} KiB).", len / 1024).unwrap();
    writeln!(w, "pub const RAM_LEN: usize = {len};").unwrap();
    writeln!(
        w,
        "/// The populated window of the guest's {} MiB of RAM.",
        g.ram.len() >> 20
    )
    .unwrap();
    writeln!(
        w,
        "pub static RAM: &[u8; RAM_LEN] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/guest.ram\"));"
    )
    .unwrap();
    writeln!(w, "/// CR3 of the guest's vCPU.").unwrap();
    writeln!(w, "pub const CR3: u64 = {:#x};", paging.root().0).unwrap();
    writeln!(w, "/// 5-level paging.").unwrap();
    writeln!(w, "pub const FIVE_LEVEL: bool = {};", paging.five_level()).unwrap();
    writeln!(w, "/// The kernel's linear mappings.").unwrap();
    writeln!(w, "pub const ADDRS: KernelAddrs = {:?};", g.addrs).unwrap();
    writeln!(w, "/// The kernel's struct layout.").unwrap();
    writeln!(w, "pub const LAYOUT: KernelLayout = {:?};", g.layout).unwrap();
    writeln!(w, "/// `map_idr`.").unwrap();
    writeln!(w, "pub const MAP_IDR: Kva = {:?};", g.map_idr).unwrap();
    writeln!(w, "/// `__per_cpu_offset`.").unwrap();
    writeln!(
        w,
        "pub const PER_CPU_OFFSET: Kva = {:?};",
        g.symbols.per_cpu_offset
    )
    .unwrap();
    writeln!(w, "/// `nr_cpu_ids`.").unwrap();
    writeln!(w, "pub const NR_CPU_IDS: Kva = {:?};", g.symbols.nr_cpu_ids).unwrap();
    writeln!(w, "/// Possible CPUs.").unwrap();
    writeln!(w, "pub const POSSIBLE_CPUS: u32 = {};", g.possible_cpus).unwrap();
    writeln!(w, "/// `phys_base` (its symbol, its value).").unwrap();
    writeln!(
        w,
        "pub const PHYS_BASE: (Kva, u64) = ({:?}, {:#x});",
        g.symbols.phys_base, g.phys_base
    )
    .unwrap();

    // Translations by the builder's own records: the image, each map object, and the
    // vmalloc pages (4 KiB pages reached only through the tables).
    let mut vas: Vec<Kva> = vec![g.map_idr, g.symbols.phys_base];
    vas.extend(g.maps.iter().map(|m| m.kva));
    vas.extend(g.vmalloc_pages.keys().map(|&va| Kva(va + 0x10)));
    writeln!(
        w,
        "/// Kernel addresses and the physical addresses they map to."
    )
    .unwrap();
    writeln!(w, "pub const TRANSLATIONS: [(u64, u64); {}] = [", vas.len()).unwrap();
    for va in &vas {
        writeln!(w, "    ({:#x}, {:#x}),", va.0, g.pa_of(*va).0).unwrap();
    }
    writeln!(w, "];").unwrap();

    writeln!(w, "/// The maps, in id order, with every value.").unwrap();
    let mut sorted: Vec<&MapSpec> = specs.iter().collect();
    sorted.sort_by_key(|m| m.id);
    writeln!(w, "pub const MAPS: [ExpectedMap; {}] = [", sorted.len()).unwrap();
    for m in sorted {
        writeln!(w, "    ExpectedMap {{").unwrap();
        writeln!(w, "        id: {},", m.id).unwrap();
        writeln!(w, "        name: b{:?},", String::from_utf8_lossy(&m.name)).unwrap();
        writeln!(w, "        map_type: MapType({}),", m.map_type.0).unwrap();
        writeln!(w, "        key_size: {},", m.key_size).unwrap();
        writeln!(w, "        value_size: {},", m.value_size).unwrap();
        writeln!(w, "        max_entries: {},", m.max_entries).unwrap();
        writeln!(w, "        map_flags: {:#x},", m.map_flags).unwrap();
        let pad = |v: &[u8]| {
            let mut full = v.to_vec();
            full.resize(m.value_size as usize, 0);
            bytes_literal(&full)
        };
        writeln!(w, "        values: &[").unwrap();
        for v in &m.values {
            writeln!(w, "    {},", pad(v)).unwrap();
        }
        writeln!(w, "        ],").unwrap();
        writeln!(w, "        entries: &[").unwrap();
        for e in &m.entries {
            writeln!(w, "        ExpectedEntry {{").unwrap();
            writeln!(w, "            key: {},", bytes_literal(&e.key)).unwrap();
            writeln!(w, "            value: {},", pad(&e.value)).unwrap();
            writeln!(w, "            cpu_values: &[").unwrap();
            for v in &e.cpu_values {
                writeln!(w, "    {},", pad(v)).unwrap();
            }
            writeln!(w, "            ],").unwrap();
            writeln!(w, "        }},").unwrap();
        }
        writeln!(w, "        ],").unwrap();
        writeln!(w, "        cpu_values: &[").unwrap();
        for key in &m.cpu_values {
            writeln!(w, "            &[").unwrap();
            for v in key {
                writeln!(w, "    {},", pad(v)).unwrap();
            }
            writeln!(w, "            ],").unwrap();
        }
        writeln!(w, "        ],").unwrap();
        let percpu_hash =
            m.map_type == MapType::PERCPU_HASH || m.map_type == MapType::LRU_PERCPU_HASH;
        match percpu_hash {
            true => writeln!(
                w,
                "        pptr_placement: Some(PptrPlacement::{:?}),",
                m.pptr_placement
            ),
            false => writeln!(w, "        pptr_placement: None,"),
        }
        .unwrap();
        writeln!(w, "    }},").unwrap();
    }
    writeln!(w, "];").unwrap();
    s
}
