#![no_main]
//! The kernel's symbol table read from guest memory (see `mapwalk_fuzz::ksymtab`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::ksymtab::run(data));
