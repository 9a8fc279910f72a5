#!/usr/bin/env bash
# Synthetic legacy EDN360 data for benchmarks (examples/gen_legacy.rs).
#
#   scripts/gen_legacy.sh OUT_DIR [USERS] [SEED] [extra gen_legacy flags…]
#   scripts/gen_legacy.sh bench/100k 100000 1 --drawers 5 --jobs
#
# Then: target/release/edn-migrate --store sqlite:bench.db import OUT_DIR
set -euo pipefail
if [[ $# -lt 1 ]]; then
  echo "usage: $0 OUT_DIR [USERS=10000] [SEED=1] [--drawers P] [--jobs]" >&2
  exit 2
fi
out=$1
users=${2:-10000}
seed=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
cd "$(dirname "$0")/.."
cargo build --release --quiet --example gen_legacy
exec "${CARGO_TARGET_DIR:-target}/release/examples/gen_legacy" \
  --users "$users" --seed "$seed" "$@" "$out"
