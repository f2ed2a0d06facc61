//! The per-map-type checks of the x86_64 guests (`objmaps`, `ringbuf`, `arena`,
//! `stack`, `structops`), on the arm64 guests: the same guest helpers, cross-built, make
//! the same maps, and the same checks read them from outside through the RAM file.
//!
//! - Debian 13 (6.12), 4 KiB pages, 48-bit VAs, no KASLR (`-cpu neoverse-n1`): every
//!   type, the arena included.
//! - Debian 12 (6.1), 4 KiB pages, 48-bit, symbols from its System.map: every type
//!   but the arena (6.1 has none, and is checked to list none).
//! - Debian 13, 16 KiB pages, 52-bit (LPA2): the object maps, bloom filters, stacks
//!   and struct_ops; its guest makes no ring buffer or arena (the helpers lay them out
//!   for 4 KiB pages).
//!
//! The 4 KiB LPA2 guest runs the in-guest mapwalk, so it makes only the types bpf()
//! reads whole; its stack and struct_ops maps are checked by its dumps (`arm64.rs`).

use mapwalk_e2e::arm64::{arm64_guest, Arm64Config};

use super::cli::Outside;

const N1: Arm64Config = Arm64Config::DEB13_ARM64_4K_48BIT_NOKASLR;
const DEB12: Arm64Config = Arm64Config::DEB12_ARM64_4K;
const K16: Arm64Config = Arm64Config::DEB13_ARM64_16K_LPA2;

/// Runs `check` on the guest of `config`, read from outside.
fn on(test: &str, config: &Arm64Config, tag: &str, check: fn(&str, &Outside<'_>)) {
    let Some(guest) = arm64_guest(test, config) else {
        return;
    };
    check(test, &Outside::arm64(test, guest, tag));
}

macro_rules! arm64_checks {
    ($($name:ident: $config:expr, $tag:literal, $check:path;)*) => {
        $(
            #[test]
            fn $name() {
                let test = concat!("real_kernel::arm64_types::", stringify!($name));
                on(test, &$config, $tag, $check);
            }
        )*
    };
}

arm64_checks! {
    deb13_arm64_48bit_objmaps: N1, "objmaps", super::objmaps::check_objmaps;
    deb13_arm64_48bit_ringbuf: N1, "ringbuf", super::ringbuf::check_ringbuf;
    deb13_arm64_48bit_arena: N1, "arena", super::arena::check_arena;
    deb13_arm64_48bit_stack_trace: N1, "stack", super::stack::check_stack;
    deb13_arm64_48bit_struct_ops: N1, "structops", super::structops::check_structops;
    deb12_arm64_objmaps: DEB12, "objmaps", super::objmaps::check_objmaps;
    deb12_arm64_ringbuf: DEB12, "ringbuf", super::ringbuf::check_ringbuf;
    deb12_arm64_no_arena: DEB12, "arena", super::arena::check_arena;
    deb12_arm64_stack_trace: DEB12, "stack", super::stack::check_stack;
    deb12_arm64_struct_ops: DEB12, "structops", super::structops::check_structops;
    deb13_arm64_16k_objmaps: K16, "objmaps", super::objmaps::check_objmaps;
    deb13_arm64_16k_stack_trace: K16, "stack", super::stack::check_stack;
    deb13_arm64_16k_struct_ops: K16, "structops", super::structops::check_structops;
}
