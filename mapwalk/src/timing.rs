//! Phase timings on stderr when `MAPWALK_TIMING` is set (to anything): what a run
//! spends where, without a profiler.
//!
//! ```text
//! $ MAPWALK_TIMING=1 mapwalk --ram guest-ram --symbols kallsyms dump --all --json >/dev/null
//! mapwalk: timing:    0.412 ms  +0.412 ms  symbols read
//! ...
//! ```

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The start of the run and the previous mark, when timing is on.
fn state() -> Option<&'static Mutex<(Instant, Instant)>> {
    static STATE: OnceLock<Option<Mutex<(Instant, Instant)>>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            std::env::var_os("MAPWALK_TIMING").map(|_| {
                let now = Instant::now();
                Mutex::new((now, now))
            })
        })
        .as_ref()
}

/// Starts the clock (the first mark does too).
pub fn start() {
    let _ = state();
}

/// Prints the time since the start and since the previous mark, and what ended.
pub fn mark(what: &str) {
    let Some(m) = state() else { return };
    let Ok(mut s) = m.lock() else { return };
    let now = Instant::now();
    let total = now.duration_since(s.0).as_secs_f64() * 1e3;
    let step = now.duration_since(s.1).as_secs_f64() * 1e3;
    s.1 = now;
    eprintln!("mapwalk: timing: {total:9.3} ms  +{step:8.3} ms  {what}");
    if std::env::var_os("MAPWALK_TIMING").is_some_and(|v| v == "mem") {
        memory();
    }
}

/// Prints the process's peak and current resident memory, by kind (from
/// `/proc/self/status`).
pub fn memory() {
    if state().is_none() {
        return;
    }
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let parts: Vec<&str> = status
        .lines()
        .filter(|l| {
            ["VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"]
                .iter()
                .any(|k| l.starts_with(k))
        })
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|l| &*Box::leak(l.into_boxed_str()))
        .collect();
    eprintln!("mapwalk: memory: {}", parts.join(", "));
}
