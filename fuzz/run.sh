#!/usr/bin/env bash
# Runs one fuzz target for a number of seconds, seeded from fuzz/seeds/TARGET, and prints
# the executions reached (the figure docs/masking.md quotes).
#   fuzz/run.sh scanner 600
#   fuzz/run.sh policy_parse 600
# Needs a nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
target="${1:?usage: fuzz/run.sh TARGET SECONDS}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS}"
cd "$(dirname "$0")"
mkdir -p "corpus/$target"
cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 2>&1 |
    tee "run-$target.log" | grep -E 'stat::number_of_executed_units|Done|ERROR|panicked' || true
