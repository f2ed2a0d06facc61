#![no_main]
//! ARENA page walks (see `mapwalk_fuzz::arena`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::arena::run(data));
