#!/usr/bin/env bash
# Benchmark of the data-moving commands on synthetic legacy data.
#
#   scripts/bench_migrate.sh                  # 10k users, both shapes, embedded store
#   USERS=100000 scripts/bench_migrate.sh     # the full table (~1M legacy documents)
#   scripts/bench_migrate.sh --wire           # also: commands per 1,000 documents on the wire test server
#   scripts/bench_migrate.sh --wire-only      # only that
#
# For each data shape (the generator's default, and `--varied`: six plans per
# user, more unmapped keys and unparsable values), on the embedded store:
# `import`, `phase2 migrate all --dry-run`, `phase2 migrate all`,
# `phase2 validate` and `export`, RUNS times each (every run on a fresh copy
# of the store it needs), printing per run and as the median with the range:
# seconds, documents per second, CPU seconds (user + system, all threads:
# steadier than the wall clock on a shared machine; the system part apart,
# since on a virtual machine it swings with the host's memory, see
# docs/perf/profiles.md "The same binary, 18 to 34 seconds") and peak RSS (from
# /usr/bin/time).
# Documents are the legacy documents read (dry run, migrate, validate), the
# lines loaded (import) or written (export).
#
# --wire starts tests/wire_server/server.py (mongomock behind the MongoDB wire
# protocol; not MongoDB, and far slower than it), loads WIRE_USERS users and
# counts, from the server's serverStatus metrics.commands, the commands each
# of dry run, migrate and validate sends per 1,000 legacy documents.
#
# Settings (environment): USERS (default 10000), RUNS (default 3),
# SHAPES (default "default varied"), COMMANDS (default
# "import dry-run migrate validate export"), WIRE_USERS (default 1000),
# BENCH_DIR (scratch space, default target/bench; generated data and imported
# stores are cached there per shape and size; 100k users need ~10 GB),
# EDN_BIN (an edn-migrate binary to measure instead of building this tree's,
# e.g. a copy of an older build to compare), EXPORT_DIR (where `export`
# writes, default BENCH_DIR/export: at 100k users it writes 4 GB, which this
# machine's disk takes more slowly than export makes it; /dev/shm measures
# export itself).
# Runs under `nice -n 10`: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."
embedded=1 wire=0
for arg in "$@"; do
  case $arg in
    --wire) wire=1 ;;
    --wire-only) wire=1 embedded=0 ;;
    *) echo "usage: $0 [--wire | --wire-only] (sizes and runs: see the header)" >&2; exit 2 ;;
  esac
done
users=${USERS:-10000}
runs=${RUNS:-3}
shapes=${SHAPES:-default varied}
commands=${COMMANDS:-import dry-run migrate validate export}
wire_users=${WIRE_USERS:-1000}
dir=${BENCH_DIR:-target/bench}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# Runs share scratch files (the store copy, run.out): one run per folder.
exec 9>"$dir/.lock"
flock -n 9 || { echo "another bench_migrate.sh is using $dir; wait for it, or set BENCH_DIR to another folder" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

bin=${EDN_BIN:-$PWD/target/release/edn-migrate}
gen=$PWD/target/release/examples/gen_legacy
if [ -z "${EDN_BIN:-}" ] || [ ! -x "$gen" ]; then
  nice -n 10 cargo build --release --quiet --bin edn-migrate --example gen_legacy
fi
export EDN_BACKUP_DIR=$dir/backups EDN_REPORT_DIR=$dir/reports NO_COLOR=1
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), binary $bin"

generate() { # shape users -> data dir
  local data="$dir/gen-$1-$2" flags=()
  [ "$1" = varied ] && flags=(--varied)
  [ -d "$data" ] || nice -n 10 "$gen" --users "$2" --seed 1 "${flags[@]}" "$data" >&2
  echo "$data"
}

lines() { cat "$1"/*/*.jsonl | wc -l; }

# One timed command: prints "seconds peak_rss_kb cpu_seconds system_seconds"; exit codes 0 and 3 (a
# validation below its thresholds) are results, anything else stops.
timed() { # url command...
  local url=$1 tm=$dir/run.time rc=0
  shift
  MONGO_URL=$url nice -n 10 /usr/bin/time -f '%e %M %U %S' -o "$tm" "$bin" "$@" >"$dir/run.out" 2>"$dir/run.err" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then
    echo "'$*' failed (exit $rc):" >&2
    tail -5 "$dir/run.err" >&2
    exit 1
  fi
  tail -1 "$tm" | awk '{ print $1, $2, $3 + $4, $4 }'
}

fresh() { # source-db copy-db
  rm -f "$2" "$2-wal" "$2-shm"
  [ -z "$1" ] || cp "$1" "$2"
}

report() { # label documents "secs rss"...
  python3 - "$@" <<'EOF'
import statistics, sys
label, docs, rows = sys.argv[1], int(sys.argv[2]), [r.split() for r in sys.argv[3:]]
secs = [float(r[0]) for r in rows]
rss = [int(r[1]) / 1024 for r in rows]
cpu = [float(r[2]) for r in rows]
sys_ = [float(r[3]) for r in rows]
rates = [docs / max(s, 0.01) for s in secs]
for i, (s, m, c, k) in enumerate(zip(secs, rss, cpu, sys_), 1):
    print(f"    run {i}: {s:7.2f} s  {docs / max(s, 0.01):9.0f} docs/s  CPU {c:7.2f} s (system {k:.2f})  peak RSS {m:6.1f} MB")
med = statistics.median(secs)
print(f"  {label:<28} {docs:>8} docs  median {med:7.2f} s ({min(secs):.2f}-{max(secs):.2f})"
      f"  {docs / max(med, 0.01):8.0f} docs/s ({min(rates):.0f}-{max(rates):.0f})"
      f"  CPU {statistics.median(cpu):.2f} s ({min(cpu):.2f}-{max(cpu):.2f}, system {statistics.median(sys_):.2f})"
      f"  peak RSS {statistics.median(rss):.0f} MB ({min(rss):.0f}-{max(rss):.0f})")
EOF
}

bench_shape() { # shape
  local shape=$1 data base work migrated out docs legacy
  data=$(generate "$shape" "$users")
  docs=$(lines "$data")
  base=$dir/base-$shape-$users.db work=$dir/work.db migrated=$dir/migrated-$shape-$users.db
  echo "== $shape shape, $users users, $docs documents in $data"
  local rows=()
  if [[ " $commands " == *" import "* ]]; then
    for ((i = 1; i <= runs; i++)); do
      fresh "" "$work"
      rows+=("$(timed "sqlite:$work" import "$data")")
    done
    report import "$docs" "${rows[@]}"
    if [ ! -f "$base" ]; then
      MONGO_URL=sqlite:$work "$bin" phase0 prepare >/dev/null
      cp "$work" "$base"
    fi
  fi
  if [ ! -f "$base" ]; then
    fresh "" "$work"
    MONGO_URL=sqlite:$work "$bin" import "$data" >/dev/null
    MONGO_URL=sqlite:$work "$bin" phase0 prepare >/dev/null
    cp "$work" "$base"
  fi
  for step in dry-run migrate; do
    [[ " $commands " == *" $step "* ]] || continue
    local flag=() rows=()
    [ "$step" = dry-run ] && flag=(--dry-run)
    for ((i = 1; i <= runs; i++)); do
      fresh "$base" "$work"
      rows+=("$(timed "sqlite:$work" phase2 migrate all "${flag[@]}" --force --reason benchmark --json)")
      legacy=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["documents"])' "$dir/run.out")
    done
    report "phase2 migrate all ${flag[*]}" "$legacy" "${rows[@]}"
    if [ "$step" = migrate ]; then
      cp "$work" "$migrated"
    fi
  done
  if [ ! -f "$migrated" ]; then
    fresh "$base" "$migrated"
    MONGO_URL=sqlite:$migrated "$bin" phase2 migrate all --force --reason benchmark >/dev/null
  fi
  legacy=${legacy:-$(MONGO_URL=sqlite:$base "$bin" phase2 migrate all --dry-run --force --reason benchmark --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["documents"])')}
  if [[ " $commands " == *" validate "* ]]; then
    local rows=()
    for ((i = 1; i <= runs; i++)); do
      fresh "$migrated" "$work"
      rows+=("$(timed "sqlite:$work" phase2 validate)")
    done
    report "phase2 validate" "$legacy" "${rows[@]}"
  fi
  if [[ " $commands " == *" export "* ]]; then
    local rows=()
    out=${EXPORT_DIR:-$dir/export}
    for ((i = 1; i <= runs; i++)); do
      rm -rf "$out"
      rows+=("$(timed "sqlite:$migrated" export "$out")")
    done
    report export "$(lines "$out")" "${rows[@]}"
  fi
  rm -f "$work" "$work-wal" "$work-shm"
}

commands_sent() { # port -> JSON {name: total}
  python3 - "$1" <<'EOF'
import json, sys
from pymongo import MongoClient
c = MongoClient(f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true")
m = c.admin.command("serverStatus")["metrics"]["commands"]
print(json.dumps({k: v["total"] for k, v in m.items()}))
EOF
}

per_thousand() { # label documents before-json after-json
  python3 - "$@" <<'EOF'
import json, sys
label, docs, before, after = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
# The driver's handshake and monitoring, and this script's own serverStatus.
ignore = {"hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo", "endSessions", "serverStatus"}
delta = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}
sent = sum(v for k, v in delta.items() if k not in ignore)
by_name = ", ".join(f"{k} {v}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if k not in ignore)
print(f"  {label:<28} {docs:>8} docs  {sent:>7} commands  {1000 * sent / docs:7.1f} per 1,000 documents  ({by_name})")
EOF
}

bench_wire() {
  local data port url legacy before after
  data=$(generate default "$wire_users")
  echo "== wire test server (mongomock, not MongoDB), $wire_users users, default shape"
  coproc SERVER { exec python3 tests/wire_server/server.py --port 0; }
  read -r line <&"${SERVER[0]}"
  port=${line#LISTENING }
  url="mongodb://127.0.0.1:$port/?directConnection=true"
  MONGO_URL=$url "$bin" import "$data" >/dev/null
  MONGO_URL=$url "$bin" phase0 prepare >/dev/null
  for step in dry-run migrate validate; do
    before=$(commands_sent "$port")
    case $step in
      dry-run) MONGO_URL=$url "$bin" phase2 migrate all --dry-run --force --reason benchmark --json >"$dir/run.out" ;;
      migrate) MONGO_URL=$url "$bin" phase2 migrate all --force --reason benchmark --json >"$dir/run.out" ;;
      validate) MONGO_URL=$url "$bin" phase2 validate >/dev/null || [ $? -eq 3 ] ;;
    esac
    after=$(commands_sent "$port")
    [ "$step" = validate ] || legacy=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["documents"])' "$dir/run.out")
    per_thousand "$step" "$legacy" "$before" "$after"
  done
  kill "$SERVER_PID" 2>/dev/null || true
}

if [ "$embedded" = 1 ]; then
  for shape in $shapes; do
    bench_shape "$shape"
  done
fi
if [ "$wire" = 1 ] && [ "$wire_users" -gt 0 ]; then
  bench_wire
fi
