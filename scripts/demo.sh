#!/usr/bin/env bash
# The main job end to end on the embedded store with the shipped fixtures:
# import, phase 0, backup, a dry run, the migration, its validation, a second
# run that must write nothing, and the final status. No server needed; a fresh
# store under ./demo/ each time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/edn-migrate
rm -rf demo && mkdir -p demo
export MONGO_URL=sqlite:demo/edn-migrate.db EDN_BACKUP_DIR=demo/backups EDN_REPORT_DIR=demo/reports
step() { printf '\n== %s\n' "$*"; }
step "import fixtures/legacy";          "$bin" import fixtures/legacy
step "phase0 prepare";                  "$bin" phase0 prepare
step "phase2 backup";                   "$bin" phase2 backup
step "phase2 migrate all --dry-run";    "$bin" phase2 migrate all --dry-run
step "phase2 migrate all";              "$bin" phase2 migrate all
step "phase2 validate";                 "$bin" phase2 validate
step "phase2 migrate all (again)";      "$bin" phase2 migrate all --json | python3 -c "import json,sys; r=json.load(sys.stdin); print('second run: %d documents written, %d of %d drawers unchanged' % (r['writes'], r['drawers_unchanged'], r['users']))"
step "status";                          "$bin" status
