#!/usr/bin/env bash
# CPU time of one pass of `scan_ir` (benches/scan_ir.rs) over the dense notes, for one or more
# builds of it side by side: each binary in turn runs MODE (scanner, regexset or floor) for
# 300 passes and for 0 passes, ROUNDS times; the smallest of each, `perf stat -e task-clock`
# (CPU time, which another process on the machine does not add to), gives the time of one
# pass as (300 passes - 0 passes) / 300.
#
#   benches/scan_passes.sh ROUNDS MODE BINARY...
#
# Needs `perf` (Debian's linux-perf). Build the binaries with
# `cargo bench -p guardrail-benches --bench scan_ir --no-run` (copy each build aside).
set -euo pipefail
usage="usage: benches/scan_passes.sh ROUNDS scanner|regexset|floor BINARY..."
rounds="${1:?$usage}"
mode="${2:?$usage}"
shift 2
[ "$#" -gt 0 ] || { echo "$usage" >&2; exit 2; }
passes=300
cpu_ms() {
    perf stat -x, -e task-clock "$@" 2>&1 >/dev/null | awk -F, '/task-clock/ { print $1 }'
}
declare -A best zero
for _ in $(seq "$rounds"); do
    for bin in "$@"; do
        full=$(cpu_ms "$bin" "$mode" "$passes")
        none=$(cpu_ms "$bin" "$mode" 0)
        if [ -z "${best[$bin]:-}" ] || awk -v a="$full" -v b="${best[$bin]}" 'BEGIN { exit !(a < b) }'; then
            best[$bin]=$full
        fi
        if [ -z "${zero[$bin]:-}" ] || awk -v a="$none" -v b="${zero[$bin]}" 'BEGIN { exit !(a < b) }'; then
            zero[$bin]=$none
        fi
    done
done
for bin in "$@"; do
    awk -v f="${best[$bin]}" -v z="${zero[$bin]}" -v n="$passes" -v b="$bin" -v m="$mode" -v r="$rounds" \
        'BEGIN { printf "%s %s: %.3f ms per pass (smallest of %d: %.1f ms for %d passes, %.1f ms for none)\n", b, m, (f - z) / n, r, f, n, z }'
done
