#!/usr/bin/env python3
"""A realistic history for trying the page, `report` and the alerts as a new
user would: six products, 30 releases each, one every 24 days up to a week
ago (two years), with a band apiece and a stage that fails in some releases.
Writes NDJSON that `import` reads (release times, then defects). Seeded, so
the same file each time.

Usage: python3 scripts/history.py > history.ndjson
       bug-escape-exporter import --db h.db history.ndjson
"""
import argparse, json, random, sys, time

STAGES = ["development", "code_review", "automated_tests", "qa"]
DAY = 86400

# Per product: defects per release (min, max), the share of the pre-release
# net each stage catches, and (stage, catch, releases) where it fails.
PRODUCTS = {
    "payments": ((80, 150), [0.04, 0.25, 0.45, 0.85], None),
    "search":   ((40, 90),  [0.03, 0.20, 0.40, 0.72], None),
    "checkout": ((40, 80),  [0.03, 0.20, 0.40, 0.55], ("qa", 0.35, range(24, 30))),
    "mobile":   ((30, 70),  [0.02, 0.15, 0.30, 0.45], ("automated_tests", 0.10, range(27, 30))),
    "auth":     ((4, 9),    [0.05, 0.20, 0.40, 0.55], None),
    "billing":  ((30, 60),  [0.04, 0.25, 0.45, 0.78], ("automated_tests", 0.05, range(29, 30))),
}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--now", type=int, default=int(time.time()))
    ap.add_argument("--seed", type=int, default=23)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = sys.stdout
    for product, (size, catch, failing) in PRODUCTS.items():
        for r in range(30):
            shipped = args.now - 7 * DAY - (29 - r) * 24 * DAY
            release = f"{1 + r // 10}.{r % 10}.0"
            out.write(json.dumps({"kind": "release", "product": product, "release": release,
                                  "released_at": iso(shipped)}) + "\n")
            c = list(catch)
            if failing and r in failing[2]:
                c[STAGES.index(failing[0])] = failing[1]
            for i in range(rng.randint(*size)):
                stage = "production"
                for k, s in enumerate(STAGES):
                    if rng.random() < c[k]:
                        stage = s
                        break
                if stage == "production":
                    found = shipped + rng.randint(0, 60 * DAY)
                    if found > args.now:
                        continue  # not found yet: the newest release is young
                else:
                    found = shipped - rng.randint(DAY, 20 * DAY)
                ev = {"id": f"{product}-{r}-{i}", "source": "tracker", "product": product,
                      "release": release, "stage": stage, "found_at": iso(found),
                      "updated_at": iso(found)}
                if stage == "production":
                    ev["cause"] = rng.choice(["coverage", "review", "requirements", "release"])
                    ev["detected_by"] = rng.choice(["user", "monitoring"])
                out.write(json.dumps(ev) + "\n")


if __name__ == "__main__":
    main()
