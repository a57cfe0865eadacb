#!/usr/bin/env bash
# Load test of clinic-server with and without guardrail, on loopback only.
#
#   examples/clinic-server/load/run.sh            # 10 s per cell
#   DURATION=30s examples/clinic-server/load/run.sh
#   CLINIC_SERVER_BIN=path/to/clinic-server run.sh   # a binary built with `bench-unguarded`
#   ROUNDS=5 examples/clinic-server/load/run.sh   # each cell measured 5 times, medians
#   FLOOR=1 examples/clinic-server/load/run.sh    # and a third server: the durable floor
#   LOAD_DATABASE_URL=postgres://postgres@127.0.0.1:5432 run.sh   # PostgreSQL, not SQLite
#
# Builds clinic-server (release, feature `bench-unguarded`), starts two servers on
# 127.0.0.1 with fresh data directories under target/load/ (SQLite, the file trail in Fsync
# mode with its checkpoints, as the server ships): one guarded, one `--unguarded` (the same
# routes, statements and transactions without guardrail). For each route (a chart read, a
# diagnosis update) and each number of connections (1, 16, 64) it warms up, then runs `wrk
# --latency` against each server in turn, and prints a table: req/s, p50, p99 and
# guarded / unguarded. With ROUNDS > 1 each cell is measured that many times, the two
# servers taking turns to go first, and the table shows the medians and the range of the
# rounds' guarded / unguarded ratios: on a shared 2-core machine one 5-second run of either
# server can be a third off its usual rate. With FLOOR=1 a third server runs
# `--unguarded-floor`: the unguarded routes plus one durable decision-shaped event per request
# in the same kind of trail (clinic_server::unguarded::Baseline::DurableFloor), the least any
# guard that records its decision before the body must add; the table then also shows its
# rate and floor / unguarded. With LOAD_DATABASE_URL (a PostgreSQL server URL without a
# database; loopback only) each server gets a fresh database `clinic_load_<server>` there,
# dropped and created with `psql`. Needs `wrk` (Debian: `apt-get install wrk`).
set -euo pipefail
cd "$(dirname "$0")/../../.."

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-"1 16 64"}
ROUNDS=${ROUNDS:-1}
ROUTES=${ROUTES:-"chart update"}
OUT=target/load

command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 2; }
if [ -n "${CLINIC_SERVER_BIN:-}" ]; then
    BIN=$CLINIC_SERVER_BIN
else
    cargo build --release -q -p clinic-server --features bench-unguarded
    BIN=target/release/clinic-server
fi

rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

if [ -n "${LOAD_DATABASE_URL:-}" ]; then
    case "$LOAD_DATABASE_URL" in
    postgres://*@127.0.0.1[:/]* | postgres://*@localhost[:/]* | postgres://*@\[::1\][:/]*) ;;
    *)
        echo "LOAD_DATABASE_URL must be a loopback postgres:// URL" >&2
        exit 2
        ;;
    esac
    command -v psql >/dev/null || { echo "psql is missing (apt-get install postgresql-client)" >&2; exit 2; }
fi

# start MODE [FLAGS..]: starts a server, waits for its address, sets URL_<MODE>.
start() {
    local mode=$1
    shift
    mkdir -p "$OUT/$mode"
    local db=""
    if [ -n "${LOAD_DATABASE_URL:-}" ]; then
        psql -q "${LOAD_DATABASE_URL%/}/postgres" \
            -c "DROP DATABASE IF EXISTS clinic_load_$mode" -c "CREATE DATABASE clinic_load_$mode"
        db="${LOAD_DATABASE_URL%/}/clinic_load_$mode"
    fi
    DATABASE_URL=$db CLINIC_SERVER_UNGUARDED_BENCHMARK=i-am-benchmarking-synthetic-data \
        "$BIN" --listen 127.0.0.1:0 --data "$OUT/$mode" "$@" \
        >"$OUT/$mode.out" 2>"$OUT/$mode.log" &
    PIDS+=("$!")
    for _ in $(seq 1 300); do
        if grep -q "listening on" "$OUT/$mode.out" 2>/dev/null; then
            printf -v "URL_$mode" '%s' "$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$OUT/$mode.out")"
            return
        fi
        sleep 0.1
    done
    echo "the $mode server did not start:" >&2
    cat "$OUT/$mode.log" >&2
    exit 1
}
start guarded
start unguarded --unguarded
MODES="unguarded guarded"
if [ -n "${FLOOR:-}" ]; then
    start floor --unguarded-floor
    MODES="unguarded guarded floor"
fi

# run MODE ROUTE CONNS DURATION: one wrk run; prints its RESULT line.
run() {
    local url_var="URL_$1"
    local threads=$(($3 < 2 ? $3 : 2))
    ROUTE=$2 wrk -t "$threads" -c "$3" -d "$4" --latency \
        -s examples/clinic-server/load/request.lua "${!url_var}" \
        >"$OUT/wrk-$1-$2-$3.txt"
    grep '^RESULT' "$OUT/wrk-$1-$2-$3.txt"
}

ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
# median N..: the middle value (the lower of the two middle ones for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$ROUNDS" -gt 1 ]; then
    echo "medians of $ROUNDS rounds; the ratio's range in parentheses"
fi
FLOOR_HEAD="" FLOOR_RULE=""
if [ -n "${FLOOR:-}" ]; then
    FLOOR_HEAD=" floor req/s | floor / unguarded |" FLOOR_RULE="---:|---:|"
fi
printf '\n| route | conns | unguarded req/s | guarded req/s | guarded / unguarded |%s unguarded p50 / p99 ms | guarded p50 / p99 ms |\n' "$FLOOR_HEAD"
printf '|---|---:|---:|---:|---:|%s---:|---:|\n' "$FLOOR_RULE"
bad=0
# ratio_of NAME: the median of the ratios in array NAME (and their range, with ROUNDS > 1).
ratio_of() {
    local -n rs=$1
    local r
    r="$(printf '%.0f%%' "$(median "${rs[@]}")")"
    if [ "$ROUNDS" -gt 1 ]; then
        local lo hi
        lo=$(printf '%s\n' "${rs[@]}" | sort -g | head -n1)
        hi=$(printf '%s\n' "${rs[@]}" | sort -g | tail -n1)
        r="$r ($(printf '%.0f' "$lo")–$(printf '%.0f' "$hi")%)"
    fi
    echo "$r"
}
for route in $ROUTES; do
    for c in $CONNECTIONS; do
        declare -A rps p50 p99
        for mode in $MODES; do rps[$mode]="" p50[$mode]="" p99[$mode]=""; done
        guarded_ratios=()
        floor_ratios=()
        for round in $(seq 1 "$ROUNDS"); do
            # The servers take turns to go first.
            order="$MODES"
            [ $((round % 2)) = 0 ] && order="$(echo "$MODES" | tr ' ' '\n' | tac | tr '\n' ' ')"
            declare -A this
            for mode in $order; do
                run "$mode" "$route" "$c" "$WARMUP" >/dev/null
                read -r _ r a b n status sock < <(run "$mode" "$route" "$c" "$DURATION")
                if [ "$status" != 0 ] || [ "$sock" != 0 ] || [ "$n" = 0 ]; then
                    echo "$mode $route c=$c: $n requests, $status non-2xx, $sock socket errors" >&2
                    bad=1
                fi
                rps[$mode]+=" $r" p50[$mode]+=" $a" p99[$mode]+=" $b"
                this[$mode]=$r
            done
            guarded_ratios+=("$(awk -v g="${this[guarded]}" -v u="${this[unguarded]}" 'BEGIN { printf "%.1f", 100 * g / u }')")
            if [ -n "${FLOOR:-}" ]; then
                floor_ratios+=("$(awk -v g="${this[floor]}" -v u="${this[unguarded]}" 'BEGIN { printf "%.1f", 100 * g / u }')")
            fi
        done
        floor_cells=""
        if [ -n "${FLOOR:-}" ]; then
            # shellcheck disable=SC2086 # the per-round values are space-separated on purpose
            floor_cells=" $(printf '%.0f' "$(median ${rps[floor]})") | $(ratio_of floor_ratios) |"
        fi
        # shellcheck disable=SC2086 # the per-round values are space-separated on purpose
        printf '| %s | %s | %.0f | %.0f | %s |%s %s / %s | %s / %s |\n' "$route" "$c" \
            "$(median ${rps[unguarded]})" "$(median ${rps[guarded]})" "$(ratio_of guarded_ratios)" \
            "$floor_cells" \
            "$(ms "$(median ${p50[unguarded]})")" "$(ms "$(median ${p99[unguarded]})")" \
            "$(ms "$(median ${p50[guarded]})")" "$(ms "$(median ${p99[guarded]})")"
    done
done
echo
trails="guarded trail: $(cat "$OUT"/guarded/audit/audit-*.jsonl | wc -l) events; unguarded trail: $(cat "$OUT"/unguarded/audit/audit-*.jsonl 2>/dev/null | wc -l) events"
if [ -n "${FLOOR:-}" ]; then
    trails="$trails; floor trail: $(cat "$OUT"/floor/audit/audit-*.jsonl | wc -l) events"
fi
echo "$trails"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); wrk -d $DURATION per cell; raw output in $OUT/"
exit "$bad"
