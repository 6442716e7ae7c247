#!/usr/bin/env bash
# Regenerates docs/images/summary.png, the README's picture of the summary
# page: runs the exporter on a loopback port with a temporary configuration and
# database, posts a made-up but realistic history (three products, releases in
# every band) through the API, and takes a headless Chromium screenshot of `/`.
#
#   bash scripts/screenshot.sh            # writes docs/images/summary.png
#   CHROMIUM=chromium-browser PORT=19041 bash scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CHROMIUM=${CHROMIUM:-${BUG_ESCAPE_CHROMIUM:-chromium}}
PORT=${PORT:-19941}
OUT=${OUT:-docs/images/summary.png}
BASE=http://127.0.0.1:$PORT
tmp=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/exporter.toml" <<'TOML'
pinned_products = ["payments"]
[products.payments]
stage_owners = { qa = "payments-qa" }
TOML

# Build first, so the readiness wait below times the start, not a compile.
cargo build --quiet
cargo run --quiet -- serve --config "$tmp/exporter.toml" --db "$tmp/bug-escape.db" \
  --web.listen-address "127.0.0.1:$PORT" 2>"$tmp/serve.log" &
server=$!
# Ready when /readyz answers 200 (the store takes writes), not after a guess.
for _ in $(seq 1 300); do
  curl -sf "$BASE/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
  sleep 0.1
done
curl -sf "$BASE/readyz" >/dev/null

# The history: per product, releases with a release time and defects spread
# over the stages so that each release lands in a chosen band. Fixed dates and
# a fixed seed, so the picture only changes when the page does.
python3 - "$tmp" <<'PY'
import json, random, sys
from datetime import datetime, timedelta, timezone
random.seed(22)
stages = ["development", "code_review", "automated_tests", "qa"]
causes = ["coverage", "review", "requirements", "release", "unknown"]
severities = ["critical", "high", "medium", "low"]
# product -> [(release, defects, escaped)]
history = {
    "payments": [("2.1.0", 48, 2), ("2.2.0", 52, 4), ("2.3.0", 40, 6), ("2.4.0", 31, 2)],
    "search": [("5.8.0", 35, 3), ("5.9.0", 42, 9), ("6.0.0", 38, 11)],
    "mobile-app": [("2026.09", 27, 1), ("2026.10", 30, 2), ("2026.11", 8, 2)],
}
start = datetime(2026, 6, 1, 9, tzinfo=timezone.utc)
events, releases = [], []
for p, (product, rows) in enumerate(history.items()):
    for r, (release, total, escaped) in enumerate(rows):
        shipped = start + timedelta(days=30 * r + 3 * p)
        releases.append({"product": product, "release": release,
                         "released_at": shipped.strftime("%Y-%m-%dT%H:%M:%SZ")})
        for n in range(total):
            found = shipped + timedelta(hours=random.randint(1, 600))
            if n < escaped:
                stage, extra = "production", {
                    "cause": random.choice(causes),
                    "detected_by": random.choice(["user", "monitoring", "monitoring"]),
                }
            else:
                found = shipped - timedelta(hours=random.randint(1, 300))
                stage, extra = random.choices(stages, weights=[1, 3, 4, 3])[0], {}
            t = found.strftime("%Y-%m-%dT%H:%M:%SZ")
            events.append({"id": f"{product.upper()[:3]}-{r}{n:03}", "product": product,
                           "release": release, "stage": stage,
                           "severity": random.choice(severities),
                           "found_at": t, "updated_at": t, **extra})
# A few defects not yet attributed to a release, as in real trackers.
for n in range(3):
    events.append({"id": f"SEA-x{n}", "product": "search", "stage": "qa"})
open(sys.argv[1] + "/events.json", "w").write(json.dumps(events))
open(sys.argv[1] + "/releases.ndjson", "w").write("\n".join(map(json.dumps, releases)))
PY

curl -sf "$BASE/api/v1/events" -H 'content-type: application/json' \
  --data-binary @"$tmp/events.json" >/dev/null
while read -r release; do
  curl -sf "$BASE/api/v1/releases" -H 'content-type: application/json' -d "$release" >/dev/null
done <"$tmp/releases.ndjson"

mkdir -p "$(dirname "$OUT")"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$tmp/chromium" --screenshot="$OUT" --window-size=1280,900 \
  "$BASE/" 2>/dev/null
ls -l "$OUT"
