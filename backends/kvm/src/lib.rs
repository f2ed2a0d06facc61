//! # mapwalk-kvm
//!
//! Guest memory for [`mapwalk_core`] from inside a VMM, or from next to one: the
//! pieces a virtual machine monitor plugs in to show its guest's BPF maps while the
//! guest runs, with the `mapwalk` library describing the kernel and rendering the maps.
//!
//! - [`GuestRam`]: guest RAM this process maps, as (guest-physical start, host
//!   mapping, length) regions, the way a VMM registers them with KVM as memory slots,
//!   with holes between them. Made from the VMM's own mappings
//!   ([`GuestRam::from_raw`], unsafe: the VMM vouches for them) or by mapping a RAM
//!   file or memfd here ([`GuestRam::map_file`]).
//! - [`vm_memory::VmMemory`] (feature `vm-memory`, vm-memory 0.18) and
//!   [`vm_memory_016::VmMemory`] (feature `vm-memory-016`, vm-memory 0.16): a
//!   rust-vmm `GuestMemoryMmap`, writes going through vm-memory so its dirty bitmap
//!   sees them.
//! - [`ProcessRam`]: a running VMM's anonymous guest RAM read from outside with
//!   `process_vm_readv` (QEMU without a memory-backend file, Firecracker,
//!   cloud-hypervisor).
//! - [`X86PagingState`] / [`Arm64PagingState`]: where the kernel's page tables are,
//!   from a vCPU through `kvm-ioctls` (feature `kvm`).
//! - [`with_paused`]: a closure run between a [`Pause`]'s pause and resume, resumed on
//!   error and on panic, so an embedding cannot leave its guest frozen.
//!
//! Every access lies wholly inside one region or fails with an [`AccessError`] that
//! says what and where; nothing is zero-filled, nothing is written in part. The only
//! `unsafe` is in `src/sys.rs`.
//!
//! ## Cargo features
//! - `vm-memory`: [`vm_memory::VmMemory`] over vm-memory 0.18.
//! - `vm-memory-016`: [`vm_memory_016::VmMemory`] over vm-memory 0.16.
//! - `kvm`: `X86PagingState::from_vcpu` / `Arm64PagingState::from_vcpu` through
//!   kvm-ioctls 0.25 and kvm-bindings 0.14.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
    )
)]

mod error;
mod pause;
mod process;
mod ram;
mod regions;
mod sys;
mod vcpu;
mod vmm;

pub use error::AccessError;
pub use pause::{with_paused, Pause};
pub use process::{ProcessRam, ProcessRegion, MAX_IOV};
pub use ram::{GuestRam, HostRegion, MapError};
pub use regions::{Miss, RegionTable, RegionsError, MAX_REGIONS};
pub use vcpu::{Arm64PagingState, X86PagingState};
#[cfg(feature = "vm-memory")]
pub use vmm::vm_memory;
#[cfg(feature = "vm-memory-016")]
pub use vmm::vm_memory_016;
