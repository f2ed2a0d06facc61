#!/usr/bin/env bash
# Runs the library tests of one package under Miri: `scripts/miri.sh PACKAGE
# [TEST-NAME-FILTER...]`. Needs a nightly toolchain with Miri; installs the components
# when missing (rustup downloads them; Miri's own setup then builds the standard library
# from rust-src and downloads nothing). Strict provenance: the raw-pointer code must
# not cast integers to pointers.
set -euo pipefail
cd "$(dirname "$0")/.."
package=$1
shift

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
    rustup +nightly component add miri rust-src
fi
cargo +nightly miri setup
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-strict-provenance"
exec cargo +nightly miri test -p "$package" --lib -- "$@"
