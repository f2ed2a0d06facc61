//! # mapwalk
//!
//! The std side of [`mapwalk_core`]: everything that reads a real machine's BPF maps
//! but does not belong in a `no_std` core.
//!
//! - **Kernel description**: where a kernel's symbols are ([`kallsyms`]) and its
//!   struct layouts, resolved from the kernel's BTF into a
//!   [`mapwalk_core::KernelLayout`] ([`btf`], by this crate's own zero-copy BTF
//!   reader, which also reads the maps' BTF for rendering), and the KASLR
//!   and paging state, all put together by [`describe`] into a ready kernel view.
//! - **Sources** ([`source`]): one read-only view of maps over guest memory (the core's
//!   walkers behind a [`describe::Kernel`]) and over the live host (`mapwalk-live`).
//! - **Text** ([`text`]): the one parser of hex numbers and hex byte strings.
//! - **Rendering** ([`render`]): keys and values shown through their BTF types, as text
//!   like `bpftool`'s and as JSON that scripts written for `bpftool -j` read unchanged.
//! - **The `mapwalk` CLI** (`src/bin/mapwalk.rs`): lists, dumps and writes the BPF maps of
//!   the live host, a VM's RAM file or a memory dump.
//! - **Real-kernel tests**: [`qmp`] talks to QEMU, and the test driver (`e2e`, not part
//!   of the public API) boots Debian kernels under QEMU so that `tests/` can check the
//!   core against what the guest itself reports. See `e2e/README.md`.
#![deny(missing_docs)]

pub mod btf;
pub mod describe;
pub mod dump;
pub mod kallsyms;
pub mod qmp;
pub mod render;
pub mod source;
pub mod text;
pub mod timing;

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
