//! # mapwalk
//!
//! The library a VMM (or a debugger, or the `mapwalk` command) links to read a Linux
//! kernel's BPF maps from outside it: from a running guest's RAM, a memory dump, or the
//! live host. The bytes come from a backend (`mapwalk-file`, `mapwalk-live`,
//! `mapwalk-kvm`), the walks from the `no_std` [`mapwalk_core`]; this crate names and
//! renders.
//!
//! - **Kernel description** ([`describe`]): the kernel's symbols ([`kallsyms`]), its
//!   struct layouts resolved from its BTF by this crate's own zero-copy reader
//!   ([`btf`], which also reads the maps' BTF for rendering), its placement (KASLR,
//!   paging, VMCOREINFO), put together once per boot into a ready kernel view.
//! - **Sources** ([`source`]): one view of maps, [`source::MapSource`], over guest
//!   memory (the core's walkers behind a [`describe::Kernel`]) and over the live host.
//! - **Rendering** ([`render`]) and **dumps** ([`dump`]): keys and values shown through
//!   their BTF types, as text like `bpftool`'s and as JSON that scripts written for
//!   `bpftool -j` read unchanged, streamed as they are read.
//! - **QEMU** ([`qmp`]): pause and resume, the vCPU's registers, where guest RAM lies.
//! - **Text** ([`text`]): the one parser of hex numbers and hex byte strings.
//! - **Input files** ([`input`]): the checks and size caps of the files a user names.
//! - **Diffs** ([`diff`]): what changed between two snapshots, map by map, entry by
//!   entry, field by field.
//! - **Watching** ([`watch`]): samples of a source, each compared with the one before.
//! - **Snapshots** ([`snapshot`]): every map at one moment, in memory and in a
//!   versioned compressed file, readable as a source.
//!
//! ## Cargo features
//! - `vm-memory`: map sources over a rust-vmm `GuestMemoryMmap` (through
//!   `mapwalk-kvm`).
//! - `kvm`: the vCPU paging state through kvm-ioctls (through `mapwalk-kvm`).
//!
//! The README's "Embedding in a VMM" shows the whole of what a VMM writes.
#![deny(missing_docs)]

pub mod btf;
pub mod describe;
pub mod diff;
pub mod dump;
pub mod input;
pub mod kallsyms;
pub mod progress;
pub mod progs;
pub mod qmp;
pub mod render;
pub mod snapshot;
pub mod source;
pub mod stack;
pub mod struct_ops;
pub mod text;
pub mod timing;
pub mod watch;

/// The project's rule for a test whose prerequisite (the host's BTF, a tool) is
/// missing: one line on the process's stderr and the test returns, but under
/// `CI=true` the test fails.
#[cfg(test)]
pub(crate) fn unavailable(test: &str, what: &str) {
    use std::io::Write;
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: prerequisite missing under CI=true: {what}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: prerequisite missing: {what}"
    );
}

/// The README's examples, compiled (they need the `kvm` and `vm-memory` features).
#[cfg(all(doctest, feature = "kvm", feature = "vm-memory"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
