#!/usr/bin/env bash
# Spillway vs nginx as reverse proxies in front of the same origin, under the same wrk load.
#
#   bash bench/proxy-vs-nginx.sh            # 3 pairs x {64, 256} connections x 10 s
#   PAIRS=5 DURATION=15s bash bench/proxy-vs-nginx.sh
#
# Runs alternate (spillway, nginx, spillway, nginx, ...) so drift on a shared machine hits both alike, and
# prints req/s, p50 and p99 of every run, then the median ratio Spillway/nginx per connection count.
# nginx is measured twice over: as a plain keep-alive proxy, and with limit_req (the brief's reference); Spillway
# likewise, plain and on a route with a rate limit.
# Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-"64 256"}
BASE_PORT=${BASE_PORT:-18080}  # another base avoids clashing with a run from another checkout
ORIGIN_PORT=$BASE_PORT SPILLWAY_PORT=$((BASE_PORT + 1)) NGINX_PORT=$((BASE_PORT + 2)) NGINX_LIMIT_PORT=$((BASE_PORT + 3))
ADMIN_PORT=$((BASE_PORT + 11))

source bench/lib.sh
need_packages nginx wrk

start_origin origin $ORIGIN_PORT

gateway_config "$SPILLWAY_PORT" "$ADMIN_PORT"
cat >>"$WORK/spillway.toml" <<TOML
[upstreams.origin]
addresses = ["127.0.0.1:$ORIGIN_PORT"]
# A limit that never refuses, so the figure is the cost of the check (as nginx's limit_req zone below).
[limits.bench]
rate = "100000000/s"
burst = 1000000
[[routes]]
upstream = "origin"
[[routes]]
path = "/limited"
upstream = "origin"
policies = ["limit:bench"]
TOML
start_gateway

start_nginx $ORIGIN_PORT 256 <<CONF
    limit_req_zone \$binary_remote_addr zone=perip:10m rate=1000000r/s;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { $NGINX_PROXY }
    }
    server {
        listen 127.0.0.1:$NGINX_LIMIT_PORT;
        location / {
            limit_req zone=perip burst=1000000 nodelay;
            $NGINX_PROXY
        }
    }
CONF

for port in $SPILLWAY_PORT $NGINX_PORT $NGINX_LIMIT_PORT; do
    wait_for "http://127.0.0.1:$port/"
done

run() { # port conns [path] -> "rps p50 p99"
    local rps p50 p99
    read -r rps p50 p99 _ < <(wrk_run "$2" "http://127.0.0.1:$1${3:-/}")
    echo "$rps $p50 $p99"
}


echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; wrk -t2 -d$DURATION; $PAIRS alternating pairs"
printf "%-6s %-5s %-14s %10s %9s %9s\n" conns pair proxy req/s p50_ms p99_ms
for c in $CONNS; do
    : >"$WORK/ratio_plain_$c"; : >"$WORK/ratio_limit_$c"; : >"$WORK/p99_$c"
    : >"$WORK/ratio_both_$c"; : >"$WORK/p99_both_$c"
    for pair in $(seq "$PAIRS"); do
        read -r s_rps s_p50 s_p99 < <(run $SPILLWAY_PORT "$c")
        read -r sl_rps sl_p50 sl_p99 < <(run $SPILLWAY_PORT "$c" /limited/)
        read -r n_rps n_p50 n_p99 < <(run $NGINX_PORT "$c")
        read -r l_rps l_p50 l_p99 < <(run $NGINX_LIMIT_PORT "$c")
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" spillway "$s_rps" "$s_p50" "$s_p99"
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" spillway-limit "$sl_rps" "$sl_p50" "$sl_p99"
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" nginx "$n_rps" "$n_p50" "$n_p99"
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" nginx-limit_req "$l_rps" "$l_p50" "$l_p99"
        ratio "$s_rps" "$n_rps" >>"$WORK/ratio_plain_$c"
        ratio "$s_rps" "$l_rps" >>"$WORK/ratio_limit_$c"
        ratio "$s_p99" "$l_p99" >>"$WORK/p99_$c"
        ratio "$sl_rps" "$l_rps" >>"$WORK/ratio_both_$c"
        ratio "$sl_p99" "$l_p99" >>"$WORK/p99_both_$c"
    done
done
echo
for c in $CONNS; do
    echo "c=$c  median req/s ratio spillway/nginx: $(median <"$WORK/ratio_plain_$c")" \
         "  spillway/nginx-limit_req: $(median <"$WORK/ratio_limit_$c")" \
         "  p99 ratio spillway/nginx-limit_req: $(median <"$WORK/p99_$c") (<= 1 is no worse)"
    echo "c=$c  with a rate limit on both: median req/s ratio spillway-limit/nginx-limit_req:" \
         "$(median <"$WORK/ratio_both_$c")   p99 ratio: $(median <"$WORK/p99_both_$c")"
done
