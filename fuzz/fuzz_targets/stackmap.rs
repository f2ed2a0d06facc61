#![no_main]
//! STACK_TRACE maps (see `mapwalk_fuzz::stackmap`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::stackmap::run(data));
