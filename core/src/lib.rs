//! # mapwalk-core
//!
//! Reads Linux kernel BPF maps out of a machine's physical memory, from outside the
//! kernel: a VMM reading its guest, a tool reading a memory dump, a test agent reading a
//! copy of RAM. `#![no_std]`, no `unsafe`, and no allocation unless asked for.
//!
//! ## Cargo features
//! - `alloc`: conveniences that return `Vec`s (whole values, collected map lists). Every
//!   walker works without it, through caller buffers and iterators.
//! - `synth`: the synthetic-guest builder [`synth`], which lays page tables, xarrays and
//!   BPF map objects into a byte buffer. For tests, fuzz targets and benchmarks (yours
//!   too). Implies `alloc`.
//!
//! ## Layers
//! 1. **Memory** ([`PhysRead`], [`PhysWrite`]): a backend copies bytes at guest-physical
//!    addresses. Backends live in other crates (`mapwalk-kvm`, `mapwalk-file`); [`Ram`]
//!    and [`RamCell`] hold memory in a buffer.
//! 2. **Translation** ([`arch`]): x86_64 4/5-level and aarch64 4/16/64 KiB page walks,
//!    pure functions over `PhysRead`, with a caller-owned [`TranslationCache`].
//! 3. **Kernel view** ([`KernelView`]): memory + paging state + the kernel's address-space
//!    layout; reads any kernel virtual address.
//! 4. **Walkers** ([`walk`], [`bpf`]): the xarray behind `map_idr`, BPF map discovery
//!    ([`MapInfo`], the metadata every source shares), map values, every entry of a map
//!    whatever its type ([`Bpf::for_each_entry`]), a map's BTF object
//!    ([`Bpf::map_btf`]). They take their struct offsets from [`layout`], plain data
//!    that the caller fills (from BTF in the `mapwalk` harness).
//!
//! Guest memory is never trusted: every loop has a cap ([`limits`]), all arithmetic on
//! guest values is checked, and bad data is an [`Error`] that says what and where.
//!
//! ```
//! # #[cfg(feature = "synth")] fn main() {
//! use mapwalk_core::synth::{GuestBuilder, MapSpec};
//! use mapwalk_core::{Bpf, MapType};
//!
//! // A synthetic x86_64 guest holding one ARRAY map with id 7.
//! let mut g = GuestBuilder::x86_64(false);
//! g.add_map(MapSpec::array(7, "counters", 8, 4).with_values(|key| (key as u64 * 10).to_le_bytes().to_vec()));
//! let guest = g.build();
//! let view = guest.view();
//! let bpf = Bpf::new(&view, &guest.layout, guest.map_idr);
//!
//! let map = bpf.find_by_name("counters").unwrap().unwrap();
//! assert_eq!((map.id, map.map_type), (7, MapType::ARRAY));
//! let mut value = [0u8; 8];
//! bpf.read_array_value(&map, 3, 0, &mut value).unwrap();
//! assert_eq!(u64::from_le_bytes(value), 30);
//! # }
//! # #[cfg(not(feature = "synth"))] fn main() {}
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::as_conversions,
        clippy::todo,
        clippy::unimplemented,
        clippy::std_instead_of_core,
    )
)]
// Tests panic on purpose and index fixed fixtures: the lints guard guest data, which the
// tests build themselves.

#[cfg(any(feature = "alloc", test))]
extern crate alloc;

pub mod addr;
pub mod arch;
pub mod bpf;
pub mod error;
pub mod kernel;
pub mod layout;
pub mod limits;
pub mod mem;
#[cfg(any(feature = "synth", test))]
pub mod synth;
pub mod walk;

pub use addr::{Kva, Pa};
pub use arch::{translate, Mapping, Paging, Translation, TranslationCache};
pub use bpf::{Bpf, MapFlags, MapInfo, MapType, ProgIdr, ProgInfo, ProgType};
pub use error::{Access, Error, PhysError, PhysErrorKind, Result};
pub use kernel::{KernelAddrs, KernelRead, KernelView, KernelWrite};
pub use layout::KernelLayout;
pub use limits::Limits;
pub use mem::{PhysRange, PhysRead, PhysReadExt, PhysWrite, PhysWriteExt, Ram, RamCell, ReadOp};
