#!/usr/bin/env bash
# The cluster simulation over many seeds, optimized (CI runs a handful unoptimized). A failure prints
# SEED=n; `SEED=n cargo test -p spillway-sim --release` replays it exactly.
#   SIM_SEEDS=2000 bash scripts/sim.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIM_SEEDS="${SIM_SEEDS:-500}" cargo test --release --locked -p spillway-sim --test sim -- --test-threads 2
