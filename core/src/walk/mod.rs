//! Walkers over the kernel's generic data structures.

pub mod xarray;
