//! Benchmarks for mapwalk: see `benches/`.
