#!/usr/bin/env bash
# The main job end to end on the embedded store with the shipped fixtures.
# Uses a fresh store under ./demo/ each time; no server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/edn-migrate
rm -rf demo && mkdir -p demo
export MONGO_URL=sqlite:demo/edn-migrate.db
echo "== import fixtures/legacy";  "$bin" import fixtures/legacy
echo "== phase0 prepare";          "$bin" phase0 prepare
echo "== status";                  "$bin" status
