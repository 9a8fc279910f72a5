#!/usr/bin/env bash
# The screenshot of the rehearsal report in docs/: a mongodump folder of the
# fixtures (written by pymongo's bson, tests/mongodump/make_dump.py), its
# rehearsal, and headless Chromium (Debian's `chromium` package).
#
#   scripts/rehearsal_screenshot.sh [OUT.png]     # default docs/rehearsal-report.png
set -euo pipefail
cd "$(dirname "$0")/.."
png=${1:-docs/rehearsal-report.png}
command -v chromium >/dev/null || { echo "needs chromium (apt-get install -y chromium)" >&2; exit 1; }
cargo build --quiet --bin edn-migrate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '{}' >"$work/indexes.json"
python3 tests/mongodump/make_dump.py --fixtures fixtures/legacy --layout directory --gzip \
  --out "$work/dump" --indexes "$work/indexes.json" --offsets "$work/offsets.json"
# Exit 3 is expected: from its earliest entry, the fixtures' dual-write misses
# one follow-up (fixtures/README.md), and the report shows it.
(cd "$work" && "$OLDPWD/target/debug/edn-migrate" rehearse dump --out rehearsal) || [ $? -eq 3 ]
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/chromium" --hide-scrollbars --screenshot="$PWD/$png" \
  --window-size=1280,2400 "file://$work/rehearsal/report.html" 2>/dev/null
echo "wrote $png"
