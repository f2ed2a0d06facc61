#!/bin/sh
# Builds mapwalk-agent (stable toolchain, release) and runs it.
#
# Fails unless
#   - the binary is a static, non-PIE executable with no ELF interpreter, no dynamic
#     section and none of the C runtime's start files (it brings its own `_start`);
#   - it exits 0 (every page walk, map and value as the guest was built);
#   - with AGENT_SELFTEST=1 (the default), builds with a wrong expectation planted by
#     build.rs (MAPWALK_AGENT_BREAK) make it fail with the status of that check.
#
# Environment: CARGO (default `cargo`), AGENT_SELFTEST (1 or 0).
set -eu
cd "$(dirname "$0")"
CARGO=${CARGO:-cargo}
AGENT_SELFTEST=${AGENT_SELFTEST:-1}
TARGET=x86_64-unknown-linux-gnu

fail() {
    echo "agent/run.sh: FAIL: $*" >&2
    exit 1
}

"$CARGO" build --release
bin=${CARGO_TARGET_DIR:-target}/$TARGET/release/mapwalk-agent
[ -x "$bin" ] || fail "no binary at $bin"

# Static and free of the C runtime.
if command -v readelf >/dev/null 2>&1; then
    readelf -h "$bin" | grep -q 'Type:.*EXEC' || fail "not a non-PIE executable"
    if readelf -l "$bin" | grep -qE 'INTERP|DYNAMIC'; then
        fail "has an ELF interpreter or a dynamic section"
    fi
else
    echo "agent/run.sh: readelf not found, skipping the ELF checks" >&2
fi
if command -v nm >/dev/null 2>&1; then
    # Symbols of crt1.o / crti.o / libc start-up.
    if nm "$bin" | grep -qE ' (__libc_start_main|__libc_csu_init|_init|_fini|__libc_start_call_main)$'; then
        fail "links C runtime start files"
    fi
fi
if command -v file >/dev/null 2>&1; then
    file "$bin"
    file "$bin" | grep -q 'statically linked' || fail "not statically linked"
fi
if command -v ldd >/dev/null 2>&1; then
    ldd "$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked' ||
        fail "ldd lists shared libraries: $(ldd "$bin" 2>&1)"
fi

status=0
"$bin" || status=$?
[ "$status" -eq 0 ] || fail "mapwalk-agent exited with status $status"

if [ "$AGENT_SELFTEST" = 1 ]; then
    # A separate target directory keeps the real build's output untouched.
    for case in value:32 hash:52 percpu:61 translation:11 maps:21; do
        what=${case%:*}
        want=${case#*:}
        MAPWALK_AGENT_BREAK=$what "$CARGO" build --release --quiet --target-dir target/selftest
        status=0
        out=$(target/selftest/$TARGET/release/mapwalk-agent) || status=$?
        [ "$status" -eq "$want" ] ||
            fail "self-test '$what': exit status $status, expected $want: $out"
        echo "agent/run.sh: self-test '$what' failed as it must: $out"
    done
    echo "agent/run.sh: ok (self-test: a wrong ARRAY value, hash value, per-CPU copy, page walk and map set each fail with their own status)"
else
    echo "agent/run.sh: ok"
fi
