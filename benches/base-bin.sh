#!/usr/bin/env bash
# Builds the release `mapwalk` of an earlier commit, for the benches that compare with
# it (`map_types`: MAPWALK_BASE_BIN). Prints the binary's path.
#
#   bash benches/base-bin.sh [COMMIT]      # default: 367796b, before programs and
#                                          # the other map types were read
#   MAPWALK_BASE_BIN=$(bash benches/base-bin.sh) cargo bench -p mapwalk-benches --bench map_types
set -euo pipefail
commit=${1:-367796b}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${TMPDIR:-/tmp}/mapwalk-base-$commit
if [ ! -d "$dir" ]; then
    git -C "$root" worktree add --detach "$dir" "$commit" >&2
fi
CARGO_TARGET_DIR="$dir/target" cargo build --release -p mapwalk-cli --manifest-path "$dir/Cargo.toml" >&2
echo "$dir/target/release/mapwalk"
