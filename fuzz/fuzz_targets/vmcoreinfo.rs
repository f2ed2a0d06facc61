#![no_main]
//! VMCOREINFO text, and the search for it in RAM (see `mapwalk_fuzz::vmcoreinfo`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::vmcoreinfo::run(data));
