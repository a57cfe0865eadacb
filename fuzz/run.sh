#!/usr/bin/env bash
# Runs fuzz targets one after another and prints, per target, the executions reached, the
# seconds taken and the result (the figures docs/fuzzing.md quotes).
#
#   fuzz/run.sh TARGET SECONDS          run one target for SECONDS
#   fuzz/run.sh TARGET --runs N         run one target until N executions
#   fuzz/run.sh all SECONDS|--runs N    every target in turn, the same budget each
#
# Needs the nightly toolchain and `cargo install cargo-fuzz`. The targets are built once with
# `cargo +nightly fuzz build -s none -a`: no sanitizer (every crate fuzzed is
# `#![forbid(unsafe_code)]`, so AddressSanitizer has nothing to find and costs 3-10x) but
# with debug assertions and overflow checks on. Each target is then run directly under
# `nice -n 10` (the machine is shared), seeded from fuzz/seeds/TARGET, its growing corpus in
# fuzz/corpus/TARGET, a failing input in fuzz/artifacts/TARGET/, the log in
# fuzz/run-TARGET.log. Exit status: 0 when every target ran without a failure.
set -euo pipefail
usage="usage: fuzz/run.sh TARGET|all SECONDS | fuzz/run.sh TARGET|all --runs N"
what="${1:?$usage}"
shift
if [ "${1:-}" = "--runs" ]; then
    budget=(-runs="${2:?$usage}")
else
    budget=(-max_total_time="${1:?$usage}")
fi
cd "$(dirname "$0")"

all=(manifest event_line policy_parse scanner verify_chain checkpoint trail)
# Longest input per target: enough for several policy rules, a trail of a few dozen events,
# a page of text; longer inputs only slow the search down.
max_len() {
    case "$1" in
        checkpoint) echo 1024 ;;
        event_line | trail) echo 2048 ;;
        *) echo 4096 ;;
    esac
}

if [ "$what" = all ]; then targets=("${all[@]}"); else targets=("$what"); fi
cargo +nightly fuzz build -s none -a
bin_dir=target/x86_64-unknown-linux-gnu/release

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    start=$(date +%s)
    set +e
    nice -n 10 "$bin_dir/$t" "corpus/$t" "seeds/$t" "${budget[@]}" \
        -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"run-$t.log" 2>&1 &
    pid=$!
    wait "$pid"
    rc=$?
    set -e
    end=$(date +%s)
    secs=$((end - start))
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "run-$t.log" | grep -o '[0-9]*$' || echo 0)
    rate=$((execs / (secs > 0 ? secs : 1)))
    if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc, see fuzz/run-$t.log)"; status=1; fi
    echo "$t: $execs executions in $secs s ($rate exec/s), $result, $(date -u +%Y-%m-%dT%H:%MZ)"
    # The trail target's scratch directory (named after the fuzzer's process id).
    rm -rf "/dev/shm/guardrail-fuzz-trail-$pid" "${TMPDIR:-/tmp}/guardrail-fuzz-trail-$pid"
done
exit "$status"
