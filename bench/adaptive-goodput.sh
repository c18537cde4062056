#!/usr/bin/env bash
# Goodput at 2x overload: an origin that serves 32 requests at once in 20 ms each (1,600/s at most) gets
# 3,200 new requests a second from an open-model load (`spillway spike --rate`, so arrivals do not slow down
# when answers do), with a 1 s client timeout. Through a shield with a fixed, generous concurrency cap, the
# origin's own queue grows until nearly every answer is too late; through a shield with an adaptive (gradient)
# cap and a short line, the excess is shed at once with 503 and what is let through is answered in time.
# Goodput: 200s received within the timeout, per second. Alternating rounds.
#
#   bash bench/adaptive-goodput.sh
#   ROUNDS=3 DURATION=20s RATE=3200 bash bench/adaptive-goodput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-15s}
RATE=${RATE:-3200}
ORIGIN_PORT=18480 SPILLWAY_PORT=18481 ADMIN_PORT=18491

gateway_config "$SPILLWAY_PORT" "$ADMIN_PORT"
cat >>"$WORK/spillway.toml" <<TOML
[upstreams.origin]
addresses = ["127.0.0.1:$ORIGIN_PORT"]
request_timeout = "60s"
[shields.fixed]
max_concurrency = 4096
max_queue = 4096
queue_timeout = "60s"
minimum_calls = 1000000
timeout = "60s"
[shields.adaptive]
max_concurrency = 4096
min_concurrency = 8
adaptive = "gradient"
max_queue = 64
queue_timeout = "100ms"
minimum_calls = 1000000
timeout = "60s"
[[routes]]
path = "/fixed"
upstream = "origin"
policies = ["shield:fixed"]
[[routes]]
path = "/adaptive"
upstream = "origin"
policies = ["shield:adaptive"]
TOML

goodput() { # route -> "goodput/s ok late_or_failed shed"
    # A fresh origin each run, so no queue is left over from the run before.
    start_origin origin $ORIGIN_PORT --latency 20ms --max-concurrency 32 --overflow wait
    local origin=$!
    rm -rf "$WORK/out"
    "$BIN" spike --url "http://127.0.0.1:$SPILLWAY_PORT/$1" --rate "$RATE" --duration "$DURATION" --grace 2s \
        --timeout 1s --connections 4096 --max-users 10000000 --out "$WORK/out" --quiet >/dev/null 2>&1 || true
    stop "$origin"
    python3 - "$WORK/out/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
q = r["requests"]
ok = q["by_status"].get("200", 0)
shed = q["by_status"].get("503", 0)
failed = q.get("failed", 0)
print(f'{ok / r["elapsed_seconds"]:.0f} {ok} {failed} {shed}')
PY
}

start_gateway
wait_for "http://127.0.0.1:$ADMIN_PORT/healthz"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; $RATE new requests/s for $DURATION, 1 s client timeout; origin capacity 1,600/s"
printf "%-6s %-9s %10s %10s %16s %10s\n" round shield goodput/s ok timed_out/failed shed_503
: >"$WORK/ratio"
for round in $(seq "$ROUNDS"); do
    read -r f_g f_ok f_fail f_shed < <(goodput fixed)
    printf "%-6s %-9s %10s %10s %16s %10s\n" "$round" fixed "$f_g" "$f_ok" "$f_fail" "$f_shed"
    read -r a_g a_ok a_fail a_shed < <(goodput adaptive)
    printf "%-6s %-9s %10s %10s %16s %10s\n" "$round" adaptive "$a_g" "$a_ok" "$a_fail" "$a_shed"
    ratio "$a_g" "$(awk -v f="$f_g" 'BEGIN { print (f > 0 ? f : 1) }')" >>"$WORK/ratio"
done
echo "median goodput ratio adaptive/fixed: $(median <"$WORK/ratio")"
