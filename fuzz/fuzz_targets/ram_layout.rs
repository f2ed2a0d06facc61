#![no_main]
//! RAM-file layouts (GPA:OFFSET:LEN) (see `mapwalk_fuzz::ram_layout`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::ram_layout::run(data));
