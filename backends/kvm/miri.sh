#!/usr/bin/env bash
# Miri over the KVM backend's unsafe constructor (the tests of src/sys.rs, which make no
# system call). The copies themselves are mapwalk-file's, checked by its own miri.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
    rustup +nightly component add miri rust-src
fi
cargo +nightly miri setup
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-strict-provenance"
exec cargo +nightly miri test -p mapwalk-kvm --lib -- sys:: regions:: pause:: "$@"
