#![no_main]
//! ELF cores: headers, notes, physical reads (see `mapwalk_fuzz::elf_core`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::elf_core::run(data));
