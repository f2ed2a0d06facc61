#![no_main]
//! STRUCT_OPS maps (see `mapwalk_fuzz::structops`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::structops::run(data));
