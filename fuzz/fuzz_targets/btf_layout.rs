#![no_main]
//! the kernel layout resolved from BTF (see `mapwalk_fuzz::btf_layout`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::btf_layout::run(data));
