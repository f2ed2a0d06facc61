#![no_main]
//! snapshot files read, written back and replayed (see `mapwalk_fuzz::snapshot`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::snapshot::run(data));
