#![no_main]
//! kallsyms / System.map symbol tables (see `mapwalk_fuzz::kallsyms`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::kallsyms::run(data));
