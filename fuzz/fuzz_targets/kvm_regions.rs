#![no_main]
//! The KVM backend's region table (see `mapwalk_fuzz::kvm_regions`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| mapwalk_fuzz::kvm_regions::run(data));
