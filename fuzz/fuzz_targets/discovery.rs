#![no_main]
//! BPF map discovery through map_idr (see `mapwalk_fuzz::discovery`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::discovery::run(data));
