#![no_main]
//! keys and values rendered through hostile map BTF (see `mapwalk_fuzz::render`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::render::run(data));
