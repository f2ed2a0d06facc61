#![no_main]
//! hash map walks: HASH, LRU_HASH, PERCPU_HASH, LRU_PERCPU_HASH (see `mapwalk_fuzz::htab`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::htab::run(data));
