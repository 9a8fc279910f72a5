#!/usr/bin/env bash
# Benchmark of `phase2 migrate all` on synthetic legacy data.
#
#   scripts/bench_migrate.sh                 # 10k and 100k users on the embedded store, 1k over the wire
#   scripts/bench_migrate.sh 2000 20000      # other sizes
#
# Settings (environment): RUNS (runs per size, median reported; default 3),
# WIRE_USERS (users for the wire test server run; 0 skips it; default 1000),
# BENCH_DIR (scratch space; default target/bench; 100k users need ~6 GB).
# Generated data and imported stores are cached per size in BENCH_DIR; each
# run migrates a fresh copy of the imported store. Prints elapsed seconds,
# legacy documents per second and peak RSS (from /usr/bin/time), per run and
# the median, plus the 100k/10k ratios when both sizes ran.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)
runs=${RUNS:-3}
wire_users=${WIRE_USERS:-1000}
dir=${BENCH_DIR:-target/bench}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

cargo build --release --quiet --bin edn-migrate --example gen_legacy
bin=$PWD/target/release/edn-migrate
gen=$PWD/target/release/examples/gen_legacy

prepare_store() { # users url
  local users=$1 url=$2 data="$dir/gen-$1"
  [ -d "$data" ] || "$gen" --users "$users" --seed 1 "$data" 2>/dev/null
  MONGO_URL=$url "$bin" import "$data" >/dev/null
  MONGO_URL=$url "$bin" phase0 prepare >/dev/null
}

# One timed migration: prints "seconds documents peak_rss_kb".
timed_migrate() { # url
  local out=$dir/run.json tm=$dir/run.time
  MONGO_URL=$1 EDN_BACKUP_DIR=$dir/backups /usr/bin/time -f '%e %M' -o "$tm" \
    "$bin" phase2 migrate all --force --reason benchmark --json >"$out"
  python3 - "$out" "$tm" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
wall, rss = open(sys.argv[2]).read().split()[-2:]
print(wall, r["documents"], rss)
EOF
}

summary() { # label users results...
  python3 - "$@" <<'EOF'
import statistics, sys
label, users, rows = sys.argv[1], int(sys.argv[2]), [r.split() for r in sys.argv[3:]]
secs = [float(r[0]) for r in rows]; docs = int(rows[0][1]); rss = [int(r[2]) / 1024 for r in rows]
med = statistics.median(secs)
for i, (s, m) in enumerate(zip(secs, rss), 1):
    print(f"  run {i}: {s:7.2f} s  {docs / s:9.0f} docs/s  peak RSS {m:6.1f} MB")
print(f"{label:>8} {users:>7} users {docs:>8} docs  median {med:7.2f} s  {docs / med:9.0f} docs/s  peak RSS max {max(rss):6.1f} MB")
print(f"RESULT {label} {users} {docs} {med:.2f} {docs / med:.0f} {max(rss):.1f}")
EOF
}

results=()
for users in "${sizes[@]}"; do
  base="$dir/sqlite-$users.db"
  if [ ! -f "$base" ]; then
    echo "preparing $users users (generate, import, phase0)…" >&2
    rm -f "$base" "$base-wal" "$base-shm"
    prepare_store "$users" "sqlite:$base"
  fi
  rows=()
  for ((i = 1; i <= runs; i++)); do
    work="$dir/work.db"
    rm -f "$work" "$work-wal" "$work-shm"
    cp "$base" "$work"
    rows+=("$(timed_migrate "sqlite:$work")")
  done
  results+=("$(summary sqlite "$users" "${rows[@]}")")
  echo "${results[-1]}" | grep -v '^RESULT'
done

if [ "$wire_users" -gt 0 ]; then
  echo "wire test server (mongomock, not MongoDB), $wire_users users…" >&2
  python3 -m pip install --quiet --disable-pip-version-check -r tests/wire_server/requirements.txt
  coproc SERVER { exec python3 tests/wire_server/server.py --port 0; }
  read -r line <&"${SERVER[0]}"
  port=${line#LISTENING }
  url="mongodb://127.0.0.1:$port/?directConnection=true"
  prepare_store "$wire_users" "$url"
  rows=("$(timed_migrate "$url")")
  kill "$SERVER_PID" 2>/dev/null || true
  results+=("$(summary wire "$wire_users" "${rows[@]}")")
  echo "${results[-1]}" | grep -v '^RESULT'
fi

printf '%s\n' "${results[@]}" | python3 -c '
import sys
rows = {(r[1], int(r[2])): r for r in (l.split() for l in sys.stdin if l.startswith("RESULT"))}
small, big = rows.get(("sqlite", 10000)), rows.get(("sqlite", 100000))
if small and big:
    print(f"ratio 100k/10k: time x{float(big[4]) / float(small[4]):.1f}, peak RSS x{float(big[6]) / float(small[6]):.2f}")
'
