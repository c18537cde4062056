#!/usr/bin/env bash
# The cache-hit path against nginx proxy_cache, and how fast shed requests are answered under overload.
#
#   bash bench/shield-vs-nginx.sh            # 3 alternating rounds x 10 s, 64 connections
#   ROUNDS=5 DURATION=15s bash bench/shield-vs-nginx.sh
#
# hit:  GET /item, cached (60 s) by Spillway's cache:c and by nginx's proxy_cache in front of the same
#       origin; after the first request every request is a hit. Ratio Spillway/nginx, req/s and p99.
# shed: the origin takes 50 ms a request; Spillway's shield lets 8 through at once with a line of 8, and 256
#       connections ask: all but a few requests are shed at once with 503, so the latency percentiles up to
#       p99 are the shed path's.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ORIGIN_PORT=18380 SLOW_PORT=18381 SPILLWAY_PORT=18382 NGINX_PORT=18383 ADMIN_PORT=18391
need_packages nginx wrk

start_origin origin $ORIGIN_PORT
start_origin slow $SLOW_PORT --latency 50ms
gateway_config "$SPILLWAY_PORT" "$ADMIN_PORT"
cat >>"$WORK/spillway.toml" <<TOML
[upstreams.origin]
addresses = ["127.0.0.1:$ORIGIN_PORT"]
[upstreams.slow]
addresses = ["127.0.0.1:$SLOW_PORT"]
[caches.c]
ttl = "60s"
[shields.s]
max_concurrency = 8
max_queue = 8
queue_timeout = "5s"
minimum_calls = 1000000
[[routes]]
path = "/item"
upstream = "origin"
policies = ["cache:c"]
[[routes]]
path = "/normal"
upstream = "slow"
policies = ["shield:s"]
[[routes]]
path = "/low"
upstream = "slow"
policies = ["shield:s"]
priority = "low"
TOML
start_gateway
mkdir -p "$WORK/nginx-cache"
# nginx workers run as an unprivileged user: let them into the cache directory.
chmod 777 "$WORK/nginx-cache"
start_nginx $ORIGIN_PORT 64 2 <<NGINX
    proxy_cache_path $WORK/nginx-cache keys_zone=c:10m;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            $NGINX_PROXY
            proxy_cache c;
            proxy_cache_valid 200 60s;
            proxy_cache_lock on;
        }
    }
NGINX
wait_for "http://127.0.0.1:$SPILLWAY_PORT/item"
wait_for "http://127.0.0.1:$NGINX_PORT/item"
curl -fs "http://127.0.0.1:$NGINX_PORT/item" >/dev/null

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; wrk -t2 -c$CONNS -d$DURATION; $ROUNDS alternating rounds"
printf "%-6s %14s %10s %14s %10s\n" round spillway_rps p99_ms nginx_rps p99_ms
: >"$WORK/ratio"; : >"$WORK/p99"
for round in $(seq "$ROUNDS"); do
    read -r s_rps _ s_p99 _ < <(wrk_run "$CONNS" "http://127.0.0.1:$SPILLWAY_PORT/item")
    read -r n_rps _ n_p99 _ < <(wrk_run "$CONNS" "http://127.0.0.1:$NGINX_PORT/item")
    printf "%-6s %14s %10s %14s %10s\n" "$round" "$s_rps" "$s_p99" "$n_rps" "$n_p99"
    ratio "$s_rps" "$n_rps" >>"$WORK/ratio"
    ratio "$s_p99" "$n_p99" >>"$WORK/p99"
done
echo "cache hit: median req/s ratio spillway/nginx proxy_cache: $(median <"$WORK/ratio")   p99 ratio: $(median <"$WORK/p99") (<= 1 is no worse)"

echo
echo "--- shed under overload: 256 connections on a route whose shield lets 8 through with a line of 8"
read -r _ p50 p99 non2xx total < <(NON2XX_OK=1 wrk_run 256 "http://127.0.0.1:$SPILLWAY_PORT/normal")
awk -v t="$total" -v n="$non2xx" -v p50="$p50" -v p99="$p99" 'BEGIN {
    printf "%d answers, %.2f%% of them 503 overloaded (shed); latency of all answers p50 %s ms, p99 %s ms\n", t, 100 * n / t, p50, p99
    if (n / t > 0.99) print "more than 99% were shed, so the p99 is the shed path'"'"'s (the few served wait 50 ms at the origin)"
}'
