# Shared by the benchmark scripts: sourced, not run. Installs what is missing, builds the release binary,
# starts processes that are stopped when the script exits, and the small helpers every script needs.
# Everything it starts listens on 127.0.0.1 only.

# need_packages CMD... : installs the Debian packages of missing commands (wrk, nginx).
need_packages() {
    local missing=()
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing ${missing[*]} from Debian" >&2
    local pkgs=()
    for cmd in "${missing[@]}"; do
        case "$cmd" in nginx) pkgs+=(nginx-light) ;; *) pkgs+=("$cmd") ;; esac
    done
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/spillway
WORK=$(mktemp -d)
PIDS=()
# Stops what start started, and the children of each (nginx's workers, the forwarder's other processes).
cleanup() {
    for p in "${PIDS[@]}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME CMD... : runs CMD in the background, its stderr in $WORK/NAME.log, stopped at exit; $! is its PID.
start() {
    local name=$1
    shift
    "$@" 2>"$WORK/$name.log" &
    PIDS+=($!)
}

# stop PID : stops a process that start started, before the script ends.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_for URL [CURL ARGS...] : until it answers 2xx, or fails with the logs after 10 s.
wait_for() {
    local url=$1
    shift
    for _ in $(seq 100); do curl -fs "$@" "$url" >/dev/null && return 0; sleep 0.1; done
    echo "$url never answered" >&2
    cat "$WORK"/*.log >&2
    exit 1
}

# gateway_config PORT ADMIN_PORT : starts $WORK/spillway.toml with the listeners (127.0.0.1), the admin token
# `bench` and quiet logs; the script appends its own sections (cat >>).
gateway_config() {
    cat >"$WORK/spillway.toml" <<TOML
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
admin_token = "bench"
[log]
level = "warn"
TOML
}

# start_origin NAME PORT [ARGS...] : `spillway origin --listen 127.0.0.1:PORT ARGS...`, once it answers; $! is its
# PID.
start_origin() {
    local name=$1 port=$2
    shift 2
    start "$name" "$BIN" origin --listen "127.0.0.1:$port" "$@"
    wait_for "http://127.0.0.1:$port/"
}

# start_gateway : `spillway serve` on $WORK/spillway.toml (gateway_config and the script's sections); $! is its
# PID. The script waits for whichever of its routes it needs.
start_gateway() {
    start spillway "$BIN" serve --config "$WORK/spillway.toml"
}

# What a location of start_nginx's needs to proxy to `upstream origin` on kept-alive connections.
NGINX_PROXY='proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";'

# start_nginx ORIGIN_PORT KEEPALIVE [WORKERS] <<CONF : nginx (installed if missing) with WORKERS worker processes
# (default auto) and, in its http block, `upstream origin` keeping up to KEEPALIVE idle connections to
# 127.0.0.1:ORIGIN_PORT, then the script's own lines from stdin (its servers, on 127.0.0.1). The pid file, the
# error log and the temp files are in $WORK; $! is the master's PID.
start_nginx() {
    need_packages nginx
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
    mkdir -p "$WORK/nginx"
    # The workers run as an unprivileged user: let them reach their directories in $WORK.
    chmod 755 "$WORK"
    {
        cat <<CONF
worker_processes ${3:-auto};
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
    upstream origin { server 127.0.0.1:$1; keepalive $2; }
CONF
        cat
        echo "}"
    } >"$WORK/nginx.conf"
    start nginx "$NGINX" -c "$WORK/nginx.conf" -g 'daemon off;'
}

# wrk_run CONNS URL [WRK OPTIONS...] [-- SCRIPT ARGS...] : wrk -t2 -cCONNS -d$DURATION --latency at URL; prints
# one line, "req/s p50_ms p99_ms non2xx total". Socket errors are told on stderr, and so are non-2xx answers
# unless NON2XX_OK is set (for a run that expects refusals).
wrk_run() {
    local conns=$1 url=$2 options=() out
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1"); shift; done
    out=$(wrk -t2 -c"$conns" -d"$DURATION" --latency "${options[@]}" "$url" "$@" 2>&1)
    local rps p50 p99 non2xx total
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    non2xx=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
    total=$(awk '/requests in/ { print $1 }' <<<"$out")
    awk -v url="$url" '/Socket errors/ { print "  " url ": " $0 > "/dev/stderr" }' <<<"$out"
    [ -z "$non2xx" ] || [ -n "${NON2XX_OK:-}" ] || echo "  $url: $non2xx non-2xx answers" >&2
    echo "${rps:-0} $p50 $p99 ${non2xx:-0} ${total:-0}"
}

# wrk_rps CONNS URL [...] : wrk_run's req/s alone.
wrk_rps() { wrk_run "$@" | awk '{ print $1 }'; }

median() { sort -g | awk '{ a[NR]=$1 } END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
# to_ms VALUE : a wrk latency (1.23us, 1.23ms, 1.23s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v !~ /ms$/ && v ~ /s$/) n *= 1000; printf "%.3f\n", n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a/b }'; }
