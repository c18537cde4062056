#!/usr/bin/env bash
# Waiting-room join and status throughput, served by the gateway, against the hyper hello-server ceiling
# (`spillway origin`, a bare hyper HTTP/1.1 server) under the same wrk load, in alternating runs.
#
#   bash bench/room-vs-hello.sh            # 3 rounds x 10 s, 64 connections
#   ROUNDS=5 DURATION=15s bash bench/room-vs-hello.sh
#
# join:   GET /_spillway/rooms/bench/status with no cookie: every request takes a new place in line, signs a
#         ticket and answers JSON (the line grows by several hundred thousand during the run).
# status: the same with a valid ticket: verify, keep the place, compute the position, answer JSON (the ticket
#         is fresh, so it is not re-signed). The room is paused throughout so that nobody is admitted.
# Target from the brief: both >= 0.8 x hello. Then the pass-verification micro-benchmark and the memory held
# per waiting client with 1,000,000 in line. Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
HELLO_PORT=18180 GATEWAY_PORT=18181 ADMIN_PORT=18191

source bench/lib.sh
need_packages wrk

start_origin hello $HELLO_PORT
gateway_config "$GATEWAY_PORT" "$ADMIN_PORT"
cat >>"$WORK/spillway.toml" <<TOML
[[keys]]
id = "bench"
secret = "bench-secret-0123456789abcdef0123456789"
[upstreams.origin]
addresses = ["127.0.0.1:$HELLO_PORT"]
[rooms.bench]
new_users_per_minute = 60
queue_grace = "1h"
[[routes]]
upstream = "origin"
policies = ["room:bench"]
TOML
start_gateway

STATUS="http://127.0.0.1:$GATEWAY_PORT/_spillway/rooms/bench/status"
wait_for "$STATUS"
# The room is paused for the whole run, so nobody is admitted: every join takes a place and every status poll
# is a waiting client's poll (a released ticket would be spent, and its next poll would be a join again).
curl -fs -X POST -H 'Authorization: Bearer bench' "http://127.0.0.1:$ADMIN_PORT/rooms/bench/pause" >/dev/null
TICKET=$(curl -fs -D - -o /dev/null "$STATUS" | awk -F'[=;]' 'tolower($1) == "set-cookie: spw_ticket_bench" { print $2 }')
[ -n "$TICKET" ] || { echo "no ticket issued" >&2; exit 1; }

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; wrk -t2 -c$CONNS -d$DURATION; $ROUNDS alternating rounds"
printf "%-6s %12s %12s %12s\n" round hello join status
: >"$WORK/join"; : >"$WORK/status"
for round in $(seq "$ROUNDS"); do
    hello=$(wrk_rps "$CONNS" "http://127.0.0.1:$HELLO_PORT/")
    join=$(wrk_rps "$CONNS" "$STATUS")
    status=$(wrk_rps "$CONNS" "$STATUS" -H "Cookie: spw_ticket_bench=$TICKET")
    printf "%-6s %12s %12s %12s\n" "$round" "$hello" "$join" "$status"
    ratio "$join" "$hello" >>"$WORK/join"
    ratio "$status" "$hello" >>"$WORK/status"
done
echo "median ratio join/hello: $(median <"$WORK/join")   status/hello: $(median <"$WORK/status")   (target >= 0.8)"
curl -fs -H 'Authorization: Bearer bench' "http://127.0.0.1:$ADMIN_PORT/rooms/bench" \
    | awk '{ match($0, /"waiting":[0-9]+/); print "clients in line after the run: " substr($0, RSTART + 10, RLENGTH - 10) }'

echo
echo "--- pass verification (criterion)"
cargo bench --quiet -p spillway-core --bench token -- --noplot 2>/dev/null | grep -E "^pass_|time:"
echo
echo "--- memory per waiting client"
cargo bench --quiet -p spillway-core --bench room_memory
