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
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

start origin "$BIN" origin --listen 127.0.0.1:$ORIGIN_PORT
start slow "$BIN" origin --listen 127.0.0.1:$SLOW_PORT --latency 50ms
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
start spillway "$BIN" serve --config "$WORK/spillway.toml"
mkdir -p "$WORK/nginx-cache"
# nginx workers run as an unprivileged user: let them into the cache directory.
chmod 755 "$WORK" && chmod 777 "$WORK/nginx-cache"
cat >"$WORK/nginx.conf" <<NGINX
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    proxy_cache_path $WORK/nginx-cache keys_zone=c:10m;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache c;
            proxy_cache_valid 200 60s;
            proxy_cache_lock on;
        }
    }
}
NGINX
start nginx "$NGINX" -c "$WORK/nginx.conf" -g 'daemon off;'
wait_for "http://127.0.0.1:$SPILLWAY_PORT/item"
wait_for "http://127.0.0.1:$NGINX_PORT/item"
curl -fs "http://127.0.0.1:$NGINX_PORT/item" >/dev/null

run() { # url conns -> "req/s p99ms non2xx"
    local out
    out=$(wrk -t2 -c"$2" -d"$DURATION" --latency "$1" 2>&1)
    local rps p99 non2xx
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    echo "$rps $p99 ${non2xx:-0}"
}

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; wrk -t2 -c$CONNS -d$DURATION; $ROUNDS alternating rounds"
printf "%-6s %14s %10s %14s %10s\n" round spillway_rps p99_ms nginx_rps p99_ms
: >"$WORK/ratio"; : >"$WORK/p99"
for round in $(seq "$ROUNDS"); do
    read -r s_rps s_p99 _ < <(run "http://127.0.0.1:$SPILLWAY_PORT/item" "$CONNS")
    read -r n_rps n_p99 _ < <(run "http://127.0.0.1:$NGINX_PORT/item" "$CONNS")
    printf "%-6s %14s %10s %14s %10s\n" "$round" "$s_rps" "$s_p99" "$n_rps" "$n_p99"
    ratio "$s_rps" "$n_rps" >>"$WORK/ratio"
    ratio "$s_p99" "$n_p99" >>"$WORK/p99"
done
echo "cache hit: median req/s ratio spillway/nginx proxy_cache: $(median <"$WORK/ratio")   p99 ratio: $(median <"$WORK/p99") (<= 1 is no worse)"

echo
echo "--- shed under overload: 256 connections on a route whose shield lets 8 through with a line of 8"
out=$(wrk -t2 -c256 -d"$DURATION" --latency "http://127.0.0.1:$SPILLWAY_PORT/normal" 2>&1)
total=$(awk '/requests in/ { print $1 }' <<<"$out")
non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
awk -v t="$total" -v n="${non2xx:-0}" -v p50="$p50" -v p99="$p99" 'BEGIN {
    printf "%d answers, %.2f%% of them 503 overloaded (shed); latency of all answers p50 %s ms, p99 %s ms\n", t, 100 * n / t, p50, p99
    if (n / t > 0.99) print "more than 99% were shed, so the p99 is the shed path'"'"'s (the few served wait 50 ms at the origin)"
}'
