//! # mapwalk
//!
//! The std side of [`mapwalk_core`]: everything that reads a real machine's BPF maps
//! but does not belong in a `no_std` core.
//!
//! - **Kernel description**: where a kernel's symbols are ([`kallsyms`]) and its
//!   struct layouts, resolved from the kernel's BTF into a
//!   [`mapwalk_core::KernelLayout`] ([`btf`], with the `btf-rs` crate); later also the
//!   paging state, turned into the plain data `mapwalk_core` takes.
//! - **Rendering** (to come): map values shown through their BTF types.
//! - **The `mapwalk` CLI** (to come): lists and dumps the BPF maps of a VM or a memory
//!   dump from outside the guest.
//! - **Real-kernel tests**: [`qmp`] talks to QEMU, and the test driver (`e2e`, not part
//!   of the public API) boots Debian kernels under QEMU so that `tests/` can check the
//!   core against what the guest itself reports. See `harness/e2e/README.md`.
#![deny(missing_docs)]

pub mod btf;
pub mod describe;
pub mod kallsyms;
pub mod qmp;
pub mod render;
pub mod source;

#[doc(hidden)]
pub mod e2e;
