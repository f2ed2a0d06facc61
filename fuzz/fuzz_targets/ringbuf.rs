#![no_main]
//! RINGBUF and USER_RINGBUF maps (see `mapwalk_fuzz::ringbuf`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::ringbuf::run(data));
