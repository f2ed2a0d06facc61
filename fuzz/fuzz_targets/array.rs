#![no_main]
//! ARRAY map reads and writes (see `mapwalk_fuzz::array`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::array::run(data));
