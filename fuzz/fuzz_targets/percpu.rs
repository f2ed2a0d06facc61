#![no_main]
//! per-CPU offsets and PERCPU_ARRAY maps (see `mapwalk_fuzz::percpu`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::percpu::run(data));
