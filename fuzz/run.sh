#!/usr/bin/env bash
# Runs the fuzz targets for a bounded time each and says whether any crashed.
#
#   fuzz/run.sh                 every target, FUZZ_SECONDS (default 600) each
#   fuzz/run.sh engine token    only those
#   FUZZ_SECONDS=60 fuzz/run.sh
#   FUZZ_ARGS="-fork=2 -ignore_crashes=1" fuzz/run.sh engine   extra libFuzzer flags
#   FUZZ_BUILD="--dev" fuzz/run.sh                             unoptimized build: quicker to build, slower to run
#
# The committed corpus in fuzz/corpus/<target>/ is the starting point; inputs the run finds are written to a
# scratch copy under fuzz/target/, so the committed seeds stay small (add one by hand, or with `cargo fuzz
# cmin`). Crashes go to fuzz/artifacts/<target>/. Exits 1 if any target crashed, 2 on a usage or build error.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here" || exit 2

# cargo-fuzz needs nightly flags (-Z sanitizer); this lets the stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-600}"
extra="${FUZZ_ARGS:-}"
build="${FUZZ_BUILD:-}"
all=(config token engine path claim_body)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz || { echo "cannot install cargo-fuzz" >&2; exit 2; }
fi

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
for t in "${targets[@]}"; do
    [ -f "fuzz_targets/$t.rs" ] || { echo "no fuzz target $t (have: ${all[*]})" >&2; exit 2; }
done

echo "== building ${targets[*]}"
build_start=$(date +%s)
for t in "${targets[@]}"; do
    # shellcheck disable=SC2086 # FUZZ_BUILD is a list of flags
    cargo fuzz build $build "$t" || { echo "build of $t failed" >&2; exit 2; }
done
echo "== built in $(( $(date +%s) - build_start )) s"

failed=0
summary=()
for t in "${targets[@]}"; do
    work="target/corpus-run/$t"
    rm -rf "$work"
    mkdir -p "$work" "corpus/$t" "artifacts/$t"
    cp -r "corpus/$t/." "$work/" 2>/dev/null || true
    log="target/run-$t.log"
    before=$(ls "artifacts/$t" | wc -l)
    echo "== $t: ${seconds} s"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    cargo fuzz run $build "$t" "$work" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 $extra \
        >"$log" 2>&1
    rc=$?
    after=$(ls "artifacts/$t" | wc -l)
    execs=$(grep -E '^stat::number_of_executed_units:' "$log" | awk '{s += $2} END {print s + 0}')
    if [ "$execs" = 0 ]; then
        # Fork mode and an early crash print no final stats; take the last progress line's count.
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
        execs=${execs:-0}
    fi
    if [ $rc -ne 0 ] || [ "$after" -gt "$before" ]; then
        failed=1
        summary+=("$t: $execs executions, CRASHED (exit $rc); artifacts in fuzz/artifacts/$t, log in fuzz/$log")
        grep -m1 -A12 -E "panicked at|ERROR: libFuzzer|==ERROR" "$log" | sed 's/^/    /'
    else
        summary+=("$t: $execs executions, no crash")
    fi
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $failed
