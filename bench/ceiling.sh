#!/usr/bin/env bash
# What a reverse proxy can reach on this machine, and where the CPU goes, beside proxy-vs-nginx.sh.
#
#   bash bench/ceiling.sh            # 5 rounds x {64, 256} connections x 4 s
#
# wrk, the origin and the proxy share the cores, so req/s is about (cores) / (CPU per request of all three).
# Runs alternate: wrk straight at the origin, through bench/l4-forward.c (no HTTP parsing at all: the least
# any proxy can do), through nginx with limit_req, and through Spillway. Each row gives medians of req/s and
# of CPU microseconds per request for the proxy (user + system), the origin and wrk. The last lines say how
# little CPU per request a proxy could use to reach 1.25x nginx's req/s, against what the forwarder uses.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4s}
CONNS=${CONNS:-"64 256"}
BASE_PORT=${BASE_PORT:-19080}
ORIGIN_PORT=$BASE_PORT SPILLWAY_PORT=$((BASE_PORT + 1)) NGINX_PORT=$((BASE_PORT + 3)) FORWARD_PORT=$((BASE_PORT + 4))
ADMIN_PORT=$((BASE_PORT + 11))
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

source bench/lib.sh
need_packages nginx wrk
cc -O2 -o "$WORK/l4-forward" bench/l4-forward.c

start_origin origin $ORIGIN_PORT
ORIGIN_PID=$!
gateway_config "$SPILLWAY_PORT" "$ADMIN_PORT"
cat >>"$WORK/spillway.toml" <<TOML
[upstreams.origin]
addresses = ["127.0.0.1:$ORIGIN_PORT"]
[[routes]]
upstream = "origin"
TOML
start_gateway
SPILLWAY_PID=$!
start_nginx $ORIGIN_PORT 256 <<CONF
    limit_req_zone \$binary_remote_addr zone=perip:10m rate=1000000r/s;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            limit_req zone=perip burst=1000000 nodelay;
            $NGINX_PROXY
        }
    }
CONF
NGINX_PID=$!
start l4-forward "$WORK/l4-forward" $FORWARD_PORT $ORIGIN_PORT "$(nproc)"
FORWARD_PID=$!
for port in $SPILLWAY_PORT $NGINX_PORT $FORWARD_PORT; do
    wait_for "http://127.0.0.1:$port/"
done

tick=$(getconf CLK_TCK)
cpu() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
run() { # name port pids... -> one line: name conns rps proxy_us origin_us wrk_us
    local name=$1 port=$2 c=$3; shift 3
    local p0 o0 out
    p0=$(cpu "$@"); o0=$(cpu $ORIGIN_PID)
    out=$( { /usr/bin/time -f "WRK %U %S" wrk -t2 -c"$c" -d"$DURATION" "http://127.0.0.1:$port/"; } 2>&1 )
    awk -v name="$name" -v c="$c" -v p=$(( $(cpu "$@") - p0 )) -v o=$(( $(cpu $ORIGIN_PID) - o0 )) -v tick="$tick" '
        /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } /^WRK/ { w = $2 + $3 }
        END { f = 1e6 / tick / n; printf "%s %s %.0f %.1f %.1f %.1f\n", name, c, rps, p * f, o * f, w * 1e6 / n }' <<<"$out"
}

for c in $CONNS; do
    for _ in $(seq "$ROUNDS"); do
        run direct $ORIGIN_PORT "$c"
        run l4-forward $FORWARD_PORT "$c" $FORWARD_PID $(pgrep -P $FORWARD_PID || true)
        run nginx-limit_req $NGINX_PORT "$c" $(pgrep -P $NGINX_PID)
        run spillway $SPILLWAY_PORT "$c" $SPILLWAY_PID
    done
done >"$WORK/runs"

python3 - "$WORK/runs" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, c, *v = line.split()
    rows[(int(c), name)].append([float(x) for x in v])
med = {k: [statistics.median(r[i] for r in v) for i in range(4)] for k, v in rows.items()}
print("CPU microseconds per request, medians of %d runs each" % len(next(iter(rows.values()))))
print(f"{'conns':>5} {'path':16} {'req/s':>8} {'proxy':>7} {'origin':>7} {'wrk':>6} {'total':>7}")
for (c, name), (rps, p, o, w) in sorted(med.items(), key=lambda kv: (kv[0][0], -kv[1][0])):
    print(f"{c:>5} {name:16} {rps:8.0f} {p:7.1f} {o:7.1f} {w:6.1f} {p + o + w:7.1f}")
for c in sorted({c for c, _ in med}):
    rps_n, p_n, o_n, w_n = med[(c, "nginx-limit_req")]
    rps_f, p_f, o_f, w_f = med[(c, "l4-forward")]
    budget = (p_n + o_n + w_n) / 1.25 - o_n - w_n
    print(f"c={c}: 1.25x nginx-limit_req needs a proxy at <= {budget:.1f} us/request (with this origin and wrk); "
          f"the forwarder, which parses nothing, uses {p_f:.1f} and reaches {rps_f / rps_n:.2f}x")
PY
