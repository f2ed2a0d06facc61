#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
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
    )
)]
// Tests panic on purpose and index fixtures they build themselves; the lints guard
// file contents, which are untrusted.

mod cpu;
mod elf;
mod error;
mod layout;
mod ram;
mod sys;

pub use cpu::{PrStatus, QemuCpuState, QemuSegment, Vcpu};
pub use elf::{ElfCore, Note, Segment, MAX_NOTE_BYTES, MAX_PROGRAM_HEADERS};
pub use error::{AccessError, ElfError, Error, Fault, LayoutError};
pub use layout::{Layout, LayoutRange};
pub use ram::{RamFile, RamFileOptions};
pub use sys::{RawRegion, RegionError};

#[cfg(test)]
mod testutil;
