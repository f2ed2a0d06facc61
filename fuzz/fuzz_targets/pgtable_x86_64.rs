#![no_main]
//! x86_64 4- and 5-level page walks (see `mapwalk_fuzz::pgtable_x86_64`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::pgtable_x86_64::run(data));
