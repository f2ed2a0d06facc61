#!/usr/bin/env bash
# The whole test suite: formatting, lints, docs, unit and integration tests (real
# kernels under QEMU included), the bare-metal builds of the core and the licence rule.
# Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain targets"
# musl: the static mapwalk that the real-kernel tests run inside a guest.
# aarch64-unknown-linux-gnu: the KVM backend's aarch64 vCPU code, checked (not linked).
# aarch64-unknown-linux-musl: the static mapwalk inside the arm64 guest.
rustup target add x86_64-unknown-none aarch64-unknown-none x86_64-unknown-linux-musl \
    aarch64-unknown-linux-gnu aarch64-unknown-linux-musl >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (workspace, all targets, all features)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "rustdoc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features

step "bare-metal builds of the core (no_std, no alloc)"
for target in x86_64-unknown-none aarch64-unknown-none; do
    cargo build -p mapwalk-core --no-default-features --target "$target"
    cargo build -p mapwalk-core --no-default-features --features alloc --target "$target"
done

step "the KVM backend for aarch64 hosts (type-checked)"
cargo check -p mapwalk-kvm --all-features --target aarch64-unknown-linux-gnu

step "licences"
bash scripts/check-licences.sh

step "real-kernel prerequisites (QEMU, Debian kernels, bpftool; cached)"
if ! bash e2e/setup.sh; then
    if [ "${CI:-}" = true ]; then
        echo "real-kernel prerequisites could not be installed" >&2
        exit 1
    fi
    echo "WARNING: real-kernel prerequisites missing: those tests will say so and skip" >&2
fi

step "tests"
cargo test --workspace --all-features
# The core's own tests also pass without any feature (what a no_std user builds).
cargo test -p mapwalk-core

step "example VMM: a KVM guest's BPF maps read while its vCPU is stopped (needs /dev/kvm)"
cargo run -p mapwalk-kvm --features kvm,vm-memory --example vmm

step "miri: the backends' unsafe code (the tests that make no syscalls)"
bash backends/file/miri.sh
bash backends/kvm/miri.sh

step "no_std agent: a static, freestanding program walking a synthetic guest"
bash agent/run.sh

step "fuzz: the corpus and regressions replayed, the seed encoders checked (stable)"
(cd fuzz && cargo test)

step "fuzz smoke: every target briefly (nightly, cargo-fuzz)"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
SMOKE_SECONDS="${SMOKE_SECONDS:-15}" bash fuzz/smoke.sh
