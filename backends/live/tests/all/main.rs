//! Integration tests of mapwalk-live against the running kernel (one binary).
//!
//! They need root (to create maps and list them by id) and `bpftool` (the reference
//! dump). Without them each test prints a loud `SKIPPED` line and passes; with
//! `CI=true` it fails instead.

mod arena;
mod common;
mod concurrency;
mod dumps;
mod privilege;
mod ringbuf;
