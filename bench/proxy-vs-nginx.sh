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
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

start origin "$BIN" origin --listen 127.0.0.1:$ORIGIN_PORT

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
start spillway "$BIN" serve --config "$WORK/spillway.toml"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 256; }
    limit_req_zone \$binary_remote_addr zone=perip:10m rate=1000000r/s;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
    server {
        listen 127.0.0.1:$NGINX_LIMIT_PORT;
        location / {
            limit_req zone=perip burst=1000000 nodelay;
            proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
        }
    }
}
CONF
start nginx "$NGINX" -c "$WORK/nginx.conf" -g 'daemon off;'

for port in $SPILLWAY_PORT $NGINX_PORT $NGINX_LIMIT_PORT; do
    wait_for "http://127.0.0.1:$port/"
done


run() { # name port conns [path] -> "rps p50 p99"
    local out
    out=$(wrk -t2 -c"$3" -d"$DURATION" --latency "http://127.0.0.1:$2${4:-/}" 2>&1)
    local rps p50 p99 errors
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
    [ -n "$errors" ] && echo "  $1: $errors" >&2
    echo "$rps $p50 $p99"
}


echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores; wrk -t2 -d$DURATION; $PAIRS alternating pairs"
printf "%-6s %-5s %-14s %10s %9s %9s\n" conns pair proxy req/s p50_ms p99_ms
for c in $CONNS; do
    : >"$WORK/ratio_plain_$c"; : >"$WORK/ratio_limit_$c"; : >"$WORK/p99_$c"
    : >"$WORK/ratio_both_$c"; : >"$WORK/p99_both_$c"
    for pair in $(seq "$PAIRS"); do
        read -r s_rps s_p50 s_p99 < <(run spillway $SPILLWAY_PORT "$c")
        read -r sl_rps sl_p50 sl_p99 < <(run spillway-limit $SPILLWAY_PORT "$c" /limited/)
        read -r n_rps n_p50 n_p99 < <(run nginx $NGINX_PORT "$c")
        read -r l_rps l_p50 l_p99 < <(run nginx-limit $NGINX_LIMIT_PORT "$c")
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" spillway "$s_rps" "$s_p50" "$s_p99"
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" spillway-limit "$sl_rps" "$sl_p50" "$sl_p99"
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" nginx "$n_rps" "$n_p50" "$n_p99"
        printf "%-6s %-5s %-14s %10s %9s %9s\n" "$c" "$pair" nginx-limit_req "$l_rps" "$l_p50" "$l_p99"
        awk -v a="$s_rps" -v b="$n_rps" 'BEGIN { printf "%.3f\n", a/b }' >>"$WORK/ratio_plain_$c"
        awk -v a="$s_rps" -v b="$l_rps" 'BEGIN { printf "%.3f\n", a/b }' >>"$WORK/ratio_limit_$c"
        awk -v a="$s_p99" -v b="$l_p99" 'BEGIN { printf "%.3f\n", a/b }' >>"$WORK/p99_$c"
        awk -v a="$sl_rps" -v b="$l_rps" 'BEGIN { printf "%.3f\n", a/b }' >>"$WORK/ratio_both_$c"
        awk -v a="$sl_p99" -v b="$l_p99" 'BEGIN { printf "%.3f\n", a/b }' >>"$WORK/p99_both_$c"
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
