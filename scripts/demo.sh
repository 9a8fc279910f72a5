#!/usr/bin/env bash
# The whole plan on the embedded store with the shipped fixtures, phase 0 to 4
# and back: import, phase 0, dual-write on and checked, backup, a dry run, the
# migration, a second run that writes nothing, the validation, the switch and
# its job dashboard, the cleanup, then every rollback in reverse order, ending
# with a byte-for-byte comparison against the store as it was before the
# migration. The backend's .env is a copy under ./demo/ and the "restart" is an
# echo. No server needed; a fresh store under ./demo/ each time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/edn-migrate
rm -rf demo && mkdir -p demo
export MONGO_URL=sqlite:demo/edn-migrate.db EDN_BACKUP_DIR=demo/backups EDN_REPORT_DIR=demo/reports
export EDN_ENV_FILE=demo/backend.env EDN_RESTART_CMD='echo "    (the backend would restart here)"'
cat > demo/backend.env <<'ENV'
# EDN360 backend (demo copy)
CORS_ORIGINS="*"

# FEATURE FLAGS
export USE_CLIENT_DRAWER_WRITE=false
USE_CLIENT_DRAWER_READ="false"
ENV
step() { printf '\n== %s\n' "$*"; }
flags() { printf '    .env: %s\n' "$(grep -E '^(export )?(USE_|DISABLE_)' "$EDN_ENV_FILE" | tr '\n' ' ')"; }
state() { "$bin" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print("    status: phase %s (%s); next: %s" % (s["phase"], s["phase_state"], s["next"]))'; }

step "import fixtures/legacy";                       "$bin" import fixtures/legacy
state
step "phase0 prepare";                               "$bin" phase0 prepare
step "phase1 enable";                                "$bin" phase1 enable; flags; state
step "phase1 dual-write-check --since 2026-10-01 (dual-write began in October)"
"$bin" phase1 dual-write-check --since 2026-10-01
step "phase2 backup";                                "$bin" phase2 backup
"$bin" export demo/before > /dev/null
step "phase2 migrate all --dry-run";                 "$bin" phase2 migrate all --dry-run
step "phase2 migrate all";                           "$bin" phase2 migrate all
step "phase2 migrate all (again)";                   "$bin" phase2 migrate all --json | python3 -c "import json,sys; r=json.load(sys.stdin); print('second run: %d documents written, %d of %d drawers unchanged' % (r['writes'], r['drawers_unchanged'], r['users']))"
# The phase 3 gate wants a validation after the last migration run, even one that wrote nothing.
step "phase2 validate";                              "$bin" phase2 validate
state
step "phase3 switch --yes";                          "$bin" phase3 switch --yes; flags
step "phase3 status --since 2026-11-01 (the fixtures' jobs after the switch)"
"$bin" phase3 status --since 2026-11-01
step "phase4 cleanup (its 48 h of monitoring are simulated with --force --reason)"
"$bin" phase4 cleanup --yes --force --reason "demo: 48 h of monitoring simulated"; flags
step "status";                                       "$bin" status
step "rollback --phase 4 --yes";                     "$bin" rollback --phase 4 --yes; flags; state
step "rollback --phase 3 --yes --json (the incident script)"
"$bin" rollback --phase 3 --yes --json; flags; state
step "rollback --phase 2 --yes";                     "$bin" rollback --phase 2 --yes; state
step "rollback --phase 1 --yes";                     "$bin" rollback --phase 1 --yes; flags; state
step "the store against the export taken before the migration (the tool's own records aside)"
"$bin" export demo/after > /dev/null
if diff -r -x migration_runs.jsonl -x migration_lock.jsonl -x dual_write_validations.jsonl demo/before demo/after; then
  echo "    identical"
else
  echo "    DIFFERENT"; exit 1
fi
