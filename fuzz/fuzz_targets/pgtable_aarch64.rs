#![no_main]
//! aarch64 TTBR1 page walks, every granule (see `mapwalk_fuzz::pgtable_aarch64`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::pgtable_aarch64::run(data));
