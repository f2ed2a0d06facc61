//! Times dumps of a 200,000-entry hash map: `BPF_MAP_LOOKUP_BATCH`, the
//! `BPF_MAP_GET_NEXT_KEY` + `BPF_MAP_LOOKUP_ELEM` walk, and `bpftool -j map dump`.
//!
//! Run as root: `cargo run --release -p mapwalk-live --example dump_timing`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mapwalk_live::sys::{self, MapCreate};
use mapwalk_live::{DumpMode, DumpOptions, LiveMap, MapType, Update};

const N: u32 = 200_000;

fn best(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut n = 0;
    for _ in 0..runs {
        let t = Instant::now();
        n = f();
        best = best.min(t.elapsed());
    }
    (best, n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fd = sys::map_create(&MapCreate::new(MapType::HASH, "mw_timing", 8, 8, N))?;
    let map = LiveMap::from_fd(fd)?;
    let t = Instant::now();
    for i in 0..u64::from(N) {
        map.update(&i.to_ne_bytes(), &(i * 3).to_ne_bytes(), Update::Any)?;
    }
    println!("fill {N} entries: {:.3} s", t.elapsed().as_secs_f64());

    for batch_size in [4096, 65536] {
        let opts = DumpOptions {
            mode: DumpMode::Batch,
            batch_size,
        };
        let (d, n) = best(5, || map.dump(opts).expect("batch").entries.len());
        println!(
            "batch ({batch_size}/call): {:.4} s ({n} entries)",
            d.as_secs_f64()
        );
    }
    let (d, n) = best(3, || {
        map.dump(DumpOptions::mode(DumpMode::NextKey))
            .expect("next_key")
            .entries
            .len()
    });
    println!(
        "get_next_key + lookup: {:.4} s ({n} entries)",
        d.as_secs_f64()
    );
    let counting = |mode| {
        let mut n = 0usize;
        map.for_each_entry(DumpOptions::mode(mode), |_, _| {
            n += 1;
            std::ops::ControlFlow::Continue(())
        })
        .expect("walk");
        n
    };
    let (d, n) = best(5, || counting(DumpMode::Batch));
    println!(
        "batch, streaming (no copies): {:.4} s ({n} entries)",
        d.as_secs_f64()
    );
    // The bare system calls, for reference: what the kernel itself costs.
    let (d, n) = best(5, || {
        let h = map.handle();
        let cap = 4096u32;
        let (mut keys, mut values) = (vec![0u8; 8 * 4096], vec![0u8; 8 * 4096]);
        let (mut tin, mut tout) = (vec![0u8; 8], vec![0u8; 8]);
        let mut first = true;
        let mut total = 0usize;
        loop {
            let prev = if first { None } else { Some(&tin[..]) };
            match h
                .lookup_batch(prev, &mut tout, &mut keys, &mut values, cap)
                .expect("batch")
            {
                sys::Batch::More(c) => total += c as usize,
                sys::Batch::Done(c) => break total + c as usize,
                other => panic!("{other:?}"),
            }
            std::mem::swap(&mut tin, &mut tout);
            first = false;
        }
    });
    println!(
        "bare BPF_MAP_LOOKUP_BATCH calls: {:.4} s ({n} entries)",
        d.as_secs_f64()
    );
    let id = map.id().to_string();
    let (d, _) = best(3, || {
        let st = Command::new("bpftool")
            .args(["-j", "map", "dump", "id", &id])
            .stdout(Stdio::null())
            .status()
            .expect("bpftool");
        assert!(st.success());
        0
    });
    println!("bpftool -j map dump: {:.4} s", d.as_secs_f64());
    Ok(())
}
