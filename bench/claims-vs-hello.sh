#!/usr/bin/env bash
# Durable claims over HTTP against the hello-server ceiling (`spillway origin`, a bare hyper server) under
# the same wrk load, in alternating runs; then the in-process figures and the PostgreSQL and Redis peers.
#
#   bash bench/claims-vs-hello.sh            # 3 rounds x 10 s, 64 connections
#   ROUNDS=5 DURATION=15s bash bench/claims-vs-hello.sh
#   HTTP_ONLY=1 bash bench/claims-vs-hello.sh     # without the in-process and peer benches
#
# hello:    the hello server under exactly the requests the claims get (the same wrk Lua script: a POST with a
#           new user in its JSON body every request). This is the ceiling the ratio is taken against: the
#           client's work per request is then the same in both arms (on 2 cores, wrk's Lua takes 10-30% of
#           the hello server's throughput). `hello GET` (wrk without a script) is printed beside it.
# claim:    POST /api/inventories/drop/claims, a new user every request (wrk Lua), per-user limit 1, stock
#           that never runs out: every request is a granted claim, fsync'd (group commit) before its 201.
# sold out: the same against an inventory of 1 item: every request is a `sold_out` 409.
# Targets from the brief: claims >= 0.6 x hello; >= 20 x PostgreSQL's hot row.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
HELLO_PORT=18280 GATEWAY_PORT=18281 ADMIN_PORT=18291
need_packages wrk

start_origin hello $HELLO_PORT
gateway_config "$GATEWAY_PORT" "$ADMIN_PORT"
cat >>"$WORK/spillway.toml" <<TOML
[reservations]
ledger = "$WORK/ledger.db"
[inventories.drop]
stock = 1000000000
per_user_limit = 1
[inventories.gone]
stock = 1
[[routes]]
path = "/api"
target = "reservations"
TOML
start_gateway
wait_for "http://127.0.0.1:$GATEWAY_PORT/api/inventories"
curl -fs -X POST -d '{"user":"first"}' "http://127.0.0.1:$GATEWAY_PORT/api/inventories/gone/claims" >/dev/null

cat >"$WORK/claims.lua" <<'LUA'
-- A new user on every request: "<round>-<thread>-<n>".
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("tid", threads)
end
function init(args)
    prefix = (args[1] or "r") .. "-" .. tid .. "-"
    n = 0
end
function request()
    n = n + 1
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" },
        '{"user":"' .. prefix .. n .. '","idempotency_key":"k"}')
end
LUA

claims() { # url round -> req/s, a new user every request
    wrk_rps "$CONNS" "$1" -s "$WORK/claims.lua" -- "$2"
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; wrk -t2 -c$CONNS -d$DURATION; $ROUNDS alternating rounds"
printf "%-6s %12s %12s %12s %12s\n" round "hello GET" hello claim sold_out
: >"$WORK/claim"; : >"$WORK/gone"; : >"$WORK/claim_get"; : >"$WORK/claim_abs"
for round in $(seq "$ROUNDS"); do
    hello_get=$(wrk_rps "$CONNS" "http://127.0.0.1:$HELLO_PORT/")
    hello=$(claims "http://127.0.0.1:$HELLO_PORT/api/inventories/drop/claims" "h$round")
    claim=$(claims "http://127.0.0.1:$GATEWAY_PORT/api/inventories/drop/claims" "r$round")
    # Every one of these is a sold_out 409.
    gone=$(NON2XX_OK=1 claims "http://127.0.0.1:$GATEWAY_PORT/api/inventories/gone/claims" "g$round")
    printf "%-6s %12s %12s %12s %12s\n" "$round" "$hello_get" "$hello" "$claim" "$gone"
    ratio "$claim" "$hello" >>"$WORK/claim"
    ratio "$gone" "$hello" >>"$WORK/gone"
    ratio "$claim" "$hello_get" >>"$WORK/claim_get"
    echo "$claim" >>"$WORK/claim_abs"
done
echo "median ratio claim/hello: $(median <"$WORK/claim")   sold_out/hello: $(median <"$WORK/gone")   (target >= 0.6)"
echo "median ratio claim/hello GET (no script on the hello side): $(median <"$WORK/claim_get")"
curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$ADMIN_PORT/inventories/drop" \
    | awk '{ match($0, /"confirmed":[0-9]+/); print "claims confirmed and durable after the run: " substr($0, RSTART + 12, RLENGTH - 12) }'
curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '
    /^spillway_reserve_ledger_commits_total / { c = $2 } /^spillway_reserve_ledger_appends_total / { a = $2 }
    /^spillway_reserve_ledger_commit_seconds_total / { s = $2 }
    END { if (c > 0) printf "ledger: %d commits, %.1f operations per commit, %.2f ms per commit\n", c, a / c, 1000 * s / c }'
HTTP_CLAIMS=$(median <"$WORK/claim_abs")

if [ -n "${HTTP_ONLY:-}" ]; then exit 0; fi
echo
echo "--- in process, and the peers (same run)"
cargo bench --quiet -p spillway-reserve --bench claims
cargo bench --quiet -p spillway-reserve --bench peers | tee "$WORK/peers"
# The first PostgreSQL figure is at 64 connections, the same concurrency as wrk's 64 connections above.
awk -v http="$HTTP_CLAIMS" '$1 == "postgres" && $2 == "claims" && !pg { pg = $3 + 0 }
    END { if (pg > 0) printf "claims over HTTP / PostgreSQL hot row (64 connections): %.1f (target >= 20)\n", http / pg }' "$WORK/peers"
