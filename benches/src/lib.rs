//! Benchmarks for mapwalk: see `benches/` and the README.
//!
//! This library holds what the bench binaries share: a deterministic generator for
//! address and id sets, and the time budget each group is given. The benches themselves
//! live in `benches/*.rs` and run with `cargo bench -p mapwalk-benches`.
#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

use std::time::Duration;

/// Warm-up time per benchmark: short, so that the whole suite runs in a few minutes on a
/// 2-core machine. Pass `--warm-up-time` to criterion to override it.
pub const WARM_UP: Duration = Duration::from_millis(300);

/// Measurement time per benchmark of a fast (sub-millisecond) iteration.
pub const MEASURE: Duration = Duration::from_millis(1000);

/// Samples per benchmark of a fast iteration (criterion's minimum is 10).
pub const SAMPLES: usize = 20;

/// The release `mapwalk` binary the process benches spawn: `MAPWALK_BENCH_BIN`, else
/// `target/release/mapwalk` beside the running bench (build it first with `cargo build
/// --release -p mapwalk-cli`); `None` when neither is there.
pub fn release_binary() -> Option<std::path::PathBuf> {
    if let Some(b) = std::env::var_os("MAPWALK_BENCH_BIN") {
        return Some(b.into());
    }
    // target/release/deps/<bench>-<hash> -> target/release/mapwalk
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("mapwalk");
    bin.exists().then_some(bin)
}

/// SplitMix64: a tiny, fixed, seedable generator, so every run (and every machine)
/// benchmarks the same addresses and ids.
///
/// ```
/// let mut a = mapwalk_benches::SplitMix64::new(7);
/// let mut b = mapwalk_benches::SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`; the slight modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
