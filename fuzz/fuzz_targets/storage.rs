#![no_main]
//! Local-storage maps and their owners (see `mapwalk_fuzz::storage`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::storage::run(data));
