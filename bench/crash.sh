#!/usr/bin/env bash
# SIGKILL the real server under concurrent claims, CYCLES times (default 100), restarting on the same
# ledger each time, and check after every restart that no acknowledged claim was lost, nothing was oversold
# and nobody holds two claims. The test suite runs the same test with 20 cycles.
#
#     bash bench/crash.sh            # 100 cycles
#     CYCLES=500 bash bench/crash.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SPILLWAY_CRASH_CYCLES="${CYCLES:-100}" cargo test --release --locked -p spillway --test crash -- --nocapture
