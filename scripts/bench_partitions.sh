#!/usr/bin/env bash
# One process against N concurrent partition workers on the embedded store:
# wall time of `phase2 migrate all` in one process, then of `--partition i/N`
# for i in 0..N-1 started at once, each on a fresh copy of the same store.
#
#   scripts/bench_partitions.sh              # 20k users, N = 2, 3 runs each
#   scripts/bench_partitions.sh 50000 4      # other size and N
#
# Settings (environment): RUNS (default 3, median reported), BENCH_DIR
# (default target/bench, shared with bench_migrate.sh's generated data).
# Prints, per run and as medians: wall seconds, legacy documents per second,
# and the CPU seconds (user + system) all processes used; then the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-20000}
n=${2:-2}
runs=${RUNS:-3}
dir=${BENCH_DIR:-target/bench}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

cargo build --release --quiet --bin edn-migrate --example gen_legacy
bin=$PWD/target/release/edn-migrate
gen=$PWD/target/release/examples/gen_legacy
base="$dir/sqlite-$users.db"
if [ ! -f "$base" ]; then
  echo "preparing $users users (generate, import, phase0)…" >&2
  data="$dir/gen-$users"
  [ -d "$data" ] || "$gen" --users "$users" --seed 1 "$data" 2>/dev/null
  MONGO_URL="sqlite:$base" "$bin" import "$data" >/dev/null
  MONGO_URL="sqlite:$base" "$bin" phase0 prepare >/dev/null
fi

# One timed round: `parts` processes at once (0: one process on `all`).
# Prints "wall_seconds documents cpu_seconds".
round() { # parts
  local parts=$1 work="$dir/part-work.db" pids=() i
  rm -f "$work" "$work-wal" "$work-shm" "$dir"/part-*.json "$dir"/part-*.time
  cp "$base" "$work"
  local start end
  start=$(date +%s.%N)
  if [ "$parts" -eq 0 ]; then
    MONGO_URL="sqlite:$work" /usr/bin/time -f '%U %S' -o "$dir/part-0.time" \
      "$bin" phase2 migrate all --force --reason benchmark --json >"$dir/part-0.json" &
    pids+=($!)
  else
    for ((i = 0; i < parts; i++)); do
      MONGO_URL="sqlite:$work" /usr/bin/time -f '%U %S' -o "$dir/part-$i.time" \
        "$bin" phase2 migrate all --partition "$i/$parts" --force --reason benchmark --json \
        >"$dir/part-$i.json" &
      pids+=($!)
    done
  fi
  for pid in "${pids[@]}"; do wait "$pid"; done
  end=$(date +%s.%N)
  python3 - "$start" "$end" "$dir" <<'PY'
import glob, json, sys
start, end, d = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
runs = [json.load(open(p)) for p in sorted(glob.glob(f"{d}/part-*.json"))]
assert all(r["outcome"] == "succeeded" for r in runs), runs
docs = sum(r["documents"] for r in runs)
cpu = sum(sum(map(float, open(p).read().split()[-2:])) for p in glob.glob(f"{d}/part-*.time"))
print(f"{end - start:.2f} {docs} {cpu:.2f}")
PY
}

summary() { # label rows...
  python3 - "$@" <<'PY'
import statistics, sys
label, rows = sys.argv[1], [r.split() for r in sys.argv[2:]]
wall = [float(r[0]) for r in rows]; docs = int(rows[0][1]); cpu = [float(r[2]) for r in rows]
for i, (w, c) in enumerate(zip(wall, cpu), 1):
    print(f"  {label} run {i}: {w:7.2f} s wall  {docs / w:8.0f} docs/s  {c:7.2f} s CPU")
print(f"RESULT {label} {statistics.median(wall):.2f} {docs} {statistics.median(cpu):.2f}")
PY
}

one=() many=()
for ((r = 1; r <= runs; r++)); do
  one+=("$(round 0)")
  many+=("$(round "$n")")
done
{
  summary "1-process" "${one[@]}"
  summary "$n-processes" "${many[@]}"
} | tee "$dir/partitions.out" | grep -v '^RESULT'
python3 - "$dir/partitions.out" "$users" "$n" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.startswith("RESULT")]
(_, _, w1, d1, c1), (_, _, wn, dn, cn) = rows
users, n = sys.argv[2], sys.argv[3]
print(f"{users} users, {d1} legacy documents read by one process ({dn} by {n} workers together)")
print(f"median wall: 1 process {w1} s ({int(d1) / float(w1):.0f} docs/s), {n} processes {wn} s: speed-up x{float(w1) / float(wn):.2f}")
print(f"median CPU:  1 process {c1} s, {n} processes {cn} s (x{float(cn) / float(c1):.2f})")
PY
