#!/usr/bin/env bash
# Runs the tests of mapwalk-file that make no system calls under Miri: the raw-pointer
# copy logic of src/sys.rs over heap buffers (RawRegion), the layout and segment maps
# that drive it, ELF core parsing from memory (ElfCore::from_bytes) and the VMCOREINFO
# search. Tests that open or map files are `#[cfg_attr(miri, ignore)]`.
#
# Usage: backends/file/miri.sh [TEST-NAME-FILTER...]
# Needs a nightly toolchain with Miri; installs the components when missing (rustup
# downloads them; Miri's own setup then builds the standard library from rust-src and
# downloads nothing).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
    rustup +nightly component add miri rust-src
fi
cargo +nightly miri setup
# Stacked Borrows is the default; also check that no pointer is made up from an integer.
export MIRIFLAGS="${MIRIFLAGS:-} -Zmiri-strict-provenance"
exec cargo +nightly miri test -p mapwalk-file --lib -- "$@"
