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
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# start NAME CMD... : runs CMD in the background, its stderr in $WORK/NAME.log, stopped at exit.
start() {
    local name=$1
    shift
    "$@" 2>"$WORK/$name.log" &
    PIDS+=($!)
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

median() { sort -g | awk '{ a[NR]=$1 } END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
# to_ms VALUE : a wrk latency (1.23us, 1.23ms, 1.23s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v !~ /ms$/ && v ~ /s$/) n *= 1000; printf "%.3f\n", n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", a/b }'; }
