#![no_main]
//! BPF program discovery through prog_idr (see `mapwalk_fuzz::progs`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::progs::run(data));
