#!/bin/sh
# Builds every fuzz target and fuzzes each one briefly: the CI entry point.
#
# For each target: replays fuzz/regressions/<target>/ (every saved crash must now pass),
# then fuzzes for SMOKE_SECONDS starting from fuzz/corpus/<target>/. New corpus entries
# go to a temporary directory, so the committed seed corpus stays small. A crash,
# timeout or out-of-memory fails the script; its input is in fuzz/artifacts/<target>/.
#
# Environment:
#   SMOKE_SECONDS   seconds per target (default 20)
#   FUZZ_TARGETS    space-separated targets (default: every target, `cargo fuzz list`)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#   TOOLCHAIN       rustup toolchain for cargo-fuzz (default nightly)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`; installed here
# when missing).
set -eu
cd "$(dirname "$0")"
SMOKE_SECONDS=${SMOKE_SECONDS:-20}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
TOOLCHAIN=${TOOLCHAIN:-nightly}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz/smoke.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz
fi

cargo "+$TOOLCHAIN" fuzz build
targets=${FUZZ_TARGETS:-$(cargo "+$TOOLCHAIN" fuzz list)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
summary=""
for t in $targets; do
    if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
        echo "== $t: replaying regressions/$t"
        cargo "+$TOOLCHAIN" fuzz run "$t" "regressions/$t" -- -runs=0 \
            -timeout="$FUZZ_TIMEOUT"
    fi
    echo "== $t: fuzzing for ${SMOKE_SECONDS}s"
    mkdir -p "$work/$t"
    log="$work/$t.log"
    if ! cargo "+$TOOLCHAIN" fuzz run "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$SMOKE_SECONDS" -timeout="$FUZZ_TIMEOUT" \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        # The panic message comes before the (long) backtrace.
        grep -E -A3 "panicked at|ERROR: libFuzzer|SUMMARY:" "$log" | head -n 20 || true
        echo "fuzz/smoke.sh: FAIL: $t (reproducer in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    summary="$summary$t: $runs runs, $rate/s
"
done
echo "fuzz/smoke.sh: ok"
printf '%s' "$summary"
