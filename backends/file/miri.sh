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
exec bash "$(dirname "$0")/../../scripts/miri.sh" mapwalk-file "$@"
