#!/usr/bin/env bash
# Regenerates docs/images/summary.png, the README's picture of the summary
# page: runs the exporter on a loopback port with a temporary configuration and
# database, posts a made-up but realistic history (six products of 30 releases
# each, in several bands) through the API, and takes a headless Chromium
# screenshot of `/` (WIDTH x HEIGHT, 1280x1100 by default).
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

# The history: six products, 30 releases each (one every two weeks), with
# defects spread over the stages so that each product's releases drift around
# a chosen escape rate, in several bands: a product that got worse lately,
# one with small samples, one on the attention/leaking edge. Fixed dates and a
# fixed seed, so the picture only changes when the page does.
python3 - "$tmp" <<'PY'
import json, random, sys
from datetime import datetime, timedelta, timezone
random.seed(23)
stages = ["development", "code_review", "automated_tests", "qa"]
causes = ["coverage", "review", "requirements", "release", "unknown"]
severities = ["critical", "high", "medium", "low"]
# product -> (defects per release, escape rate of the first and last release, prefix)
profiles = {
    "payments": (45, 0.07, 0.06, "2."),
    "search": (40, 0.12, 0.30, "5."),
    "mobile-app": (35, 0.13, 0.15, "2026."),
    "checkout": (50, 0.03, 0.025, "8."),
    "identity": (6, 0.15, 0.35, "1."),
    "reporting": (22, 0.16, 0.22, "3."),
}
start = datetime(2025, 9, 1, 9, tzinfo=timezone.utc)
events, releases = [], []
for p, (product, (size, first, last, prefix)) in enumerate(profiles.items()):
    for r in range(30):
        release = f"{prefix}{r // 10}.{r % 10}" if prefix != "2026." else f"2026.{r + 1:02}"
        shipped = start + timedelta(days=14 * r + p)
        releases.append({"product": product, "release": release,
                         "released_at": shipped.strftime("%Y-%m-%dT%H:%M:%SZ")})
        rate = first + (last - first) * r / 29
        total = max(3, size + random.randint(-size // 4, size // 4))
        escaped = sum(random.random() < rate for _ in range(total))
        for n in range(total):
            if n < escaped:
                found = shipped + timedelta(hours=random.randint(1, 500))
                stage, extra = "production", {
                    "cause": random.choice(causes),
                    "detected_by": random.choice(["user", "monitoring", "monitoring"]),
                }
            else:
                found = shipped - timedelta(hours=random.randint(1, 300))
                stage, extra = random.choices(stages, weights=[1, 3, 4, 3])[0], {}
            t = found.strftime("%Y-%m-%dT%H:%M:%SZ")
            events.append({"id": f"{product[:3].upper()}-{r}-{n}", "product": product,
                           "release": release, "stage": stage,
                           "severity": random.choice(severities),
                           "found_at": t, "updated_at": t, **extra})
# A few defects not yet attributed to a release, as in real trackers.
for n in range(3):
    events.append({"id": f"SEA-x{n}", "product": "search", "stage": "qa"})
for i in range(0, len(events), 1000):
    with open(f"{sys.argv[1]}/events-{i // 1000:03}.json", "w") as f:
        json.dump(events[i:i + 1000], f)
open(sys.argv[1] + "/releases.json", "w").write(json.dumps(releases))
PY

for f in "$tmp"/events-*.json; do
  curl -sS --fail-with-body "$BASE/api/v1/events" -H 'content-type: application/json' \
    --data-binary @"$f" -o "$tmp/answer" || { cat "$tmp/answer" >&2; exit 1; }
done
curl -sf "$BASE/api/v1/releases" -H 'content-type: application/json' \
  --data-binary @"$tmp/releases.json" >/dev/null

mkdir -p "$(dirname "$OUT")"
"$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$tmp/chromium" --screenshot="$OUT" --window-size="${WIDTH:-1280},${HEIGHT:-1100}" \
  "$BASE/" 2>/dev/null
ls -l "$OUT"
