#![no_main]
//! xarray walk and xa_load (see `mapwalk_fuzz::xarray`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::xarray::run(data));
