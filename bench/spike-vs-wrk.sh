#!/usr/bin/env bash
# `spillway spike` as a plain load generator, against wrk and oha on the same hello server (`spillway origin`):
# the same connections and duration, alternating in the same run. Reports each tool's req/s and the CPU it
# used (user + system seconds, from bash's `time`), and the median ratio spike/wrk (target >= 0.9).
#
#   bash bench/spike-vs-wrk.sh                       # 3 rounds x 10 s, 64 connections
#   ROUNDS=5 DURATION=15 CONNS=128 bash bench/spike-vs-wrk.sh
#
# spike runs `--burst CONNS --until-end`: CONNS users arrive at once and each loops until the end, on at most
# CONNS connections, which is the load wrk -cCONNS and oha -cCONNS apply. Everything listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
HELLO_PORT=${HELLO_PORT:-18280}

source bench/lib.sh
need_packages wrk
OHA=${OHA:-$(command -v oha || true)}
if [ -z "$OHA" ]; then
    echo "installing oha from crates.io" >&2
    root=$(mktemp -d)
    cargo install --locked --quiet --root "$root" oha
    OHA=$root/bin/oha
fi

start_origin hello $HELLO_PORT
URL="http://127.0.0.1:$HELLO_PORT/"

# timed NAME CMD... : runs CMD with its output in $WORK/NAME.out; prints its CPU seconds (user + system).
timed() {
    local name=$1
    shift
    local TIMEFORMAT='%U %S'
    { time "$@" >"$WORK/$name.out" 2>&1; } 2>"$WORK/$name.cpu"
    awk '{ printf "%.2f\n", $1 + $2 }' "$WORK/$name.cpu"
}

run_wrk() {
    cpu=$(timed wrk wrk -t2 -c"$CONNS" -d"${DURATION}s" "$URL")
    rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.out")
}

run_oha() {
    cpu=$(timed oha "$OHA" -z "${DURATION}s" -c "$CONNS" --no-tui --output-format json "$URL")
    rps=$(grep -o '"requestsPerSec": *[0-9.]*' "$WORK/oha.out" | head -1 | awk -F: '{ gsub(/ /, "", $2); print $2 }')
}

run_spike() {
    cpu=$(timed spike "$BIN" spike --url "$URL" --burst "$CONNS" --until-end --duration "${DURATION}s" \
        --connections "$CONNS" --quiet --out "$WORK/spike-report")
    rps=$(grep -o '"per_second": *[0-9.]*' "$WORK/spike-report/report.json" | head -1 | awk -F: '{ gsub(/ /, "", $2); print $2 }')
    grep -q '"failed": 0' "$WORK/spike-report/report.json" || echo "  spike saw failures" >&2
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; $CONNS connections, ${DURATION}s; $ROUNDS alternating rounds"
echo "# wrk $(wrk -v 2>&1 | head -1 | awk '{ print $2 }'), $("$OHA" --version 2>/dev/null | head -1), $("$BIN" --version)"
printf "%-6s %10s %8s %10s %8s %10s %8s\n" round wrk_rps cpu_s oha_rps cpu_s spike_rps cpu_s
: >"$WORK/ratio_wrk"; : >"$WORK/ratio_oha"; : >"$WORK/cpu_ratio"
for round in $(seq "$ROUNDS"); do
    run_wrk; wrk_rps=$rps wrk_cpu=$cpu
    run_oha; oha_rps=$rps oha_cpu=$cpu
    run_spike; spike_rps=$rps spike_cpu=$cpu
    printf "%-6s %10.0f %8s %10.0f %8s %10.0f %8s\n" "$round" "$wrk_rps" "$wrk_cpu" "$oha_rps" "$oha_cpu" "$spike_rps" "$spike_cpu"
    ratio "$spike_rps" "$wrk_rps" >>"$WORK/ratio_wrk"
    ratio "$spike_rps" "$oha_rps" >>"$WORK/ratio_oha"
    # CPU per request, spike over wrk: above 1 means spike spends more per request.
    awk -v sc="$spike_cpu" -v sr="$spike_rps" -v wc="$wrk_cpu" -v wr="$wrk_rps" \
        'BEGIN { printf "%.3f\n", (sc / sr) / (wc / wr) }' >>"$WORK/cpu_ratio"
done
echo "median req/s ratio spike/wrk: $(median <"$WORK/ratio_wrk") (target >= 0.9)   spike/oha: $(median <"$WORK/ratio_oha")"
echo "median CPU per request, spike/wrk: $(median <"$WORK/cpu_ratio")"
echo "spike's last latency (ms, from scheduled send): $(grep -A7 '"latency_ms"' "$WORK/spike-report/report.json" | tr -d ' \n' | sed 's/"latency_ms"://')"
