#![no_main]
//! BLOOM_FILTER and the maps whose slots hold kernel objects (see `mapwalk_fuzz::objmaps`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::objmaps::run(data));
