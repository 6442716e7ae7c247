#!/usr/bin/env python3
"""`import` throughput: generates an NDJSON file of N realistic defects
(tracker ids in no order: random 64-bit hex; every field set; P products x R
releases, one release-time line per release) in a temp dir, imports it into an
empty database with the release binary, and prints defects/s (wall clock of
the whole process: open, parse, apply, commit, checkpoint). Bounded: N lines,
one run per --runs, temp dir removed.

Usage: cargo build --release && python3 scripts/import_bench.py [--events 300000] [--runs 3]
       [--keep FILE | --input FILE] [--bin PATH] [--compare PATH] [--links N]

--links N: N of the defects come as linked records (docs/semantics.md,
"Linked records"), in link groups as monitoring and trackers make them: mostly
pairs, a Sentry issue (source `sentry`, production, `detected_by`
monitoring, no cause or team) and the Jira ticket made from it (source
`jira`, every field set, a link to the Sentry issue; one in ten names no
release, one in seven was found at `qa`; for one pair in five Sentry's first
release is one to three releases before the ticket's); and a tenth of the
links in chains of three (a GitHub issue linking the Jira ticket). Every line
is shuffled, so a link often arrives before the record it points at. The same
file without the `links` fields is written beside it (`*-nolinks.ndjson`, kept
as `FILE.nolinks` with --keep), so a store with and without links can be
compared on the same records (and a build before links can import it); kept as
`NAME-nolinks.ndjson` beside --keep NAME.ndjson. The runs import the file with
links; `--runs 0` only writes the files.
"""
import argparse, json, os, random, shutil, subprocess, sys, tempfile, time

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "bug-escape-exporter")
STAGES = ["development", "code_review", "automated_tests", "qa", "production"]
CAUSES = ["coverage", "review", "requirements", "release", "unknown"]
SEVERITIES = ["critical", "high", "medium", "low"]
DETECTORS = ["user", "monitoring", "other"]
TEAMS = ["payments", "search", "mobile", "platform"]
DAY = 86_400


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def generate(path, events, products, releases, seed=1, links=0, nolinks=None):
    """Writes the file with plain string formatting (json.dumps per line took
    about a minute for a million lines; this takes a few seconds). Every
    value is a plain token that needs no JSON escaping."""
    rng = random.Random(seed)
    base = 1_700_000_000  # Nov 2023: every time well in the past
    days = {}  # day number -> "YYYY-MM-DDT"

    def stamp(t):
        d, s = divmod(t, DAY)
        day = days.get(d)
        if day is None:
            day = days[d] = time.strftime("%Y-%m-%dT", time.gmtime(d * DAY))
        h, s = divmod(s, 3600)
        m, s = divmod(s, 60)
        return f"{day}{h:02}:{m:02}:{s:02}Z"

    names = [f"v{r // 10}.{r % 10}.0" for r in range(releases)]
    statuses = ["valid"] * 90 + ["invalid"] * 5 + ["duplicate"] * 5
    rand, bits, choice = rng.randrange, rng.getrandbits, rng.choice
    if links:
        return generate_linked(path, nolinks, events, products, releases, links, rng, names, statuses, stamp,
                               base)
    with open(path, "w", buffering=1 << 20) as f:
        for p in range(products):
            for r in range(releases):
                f.write(json.dumps({"kind": "release", "product": f"product-{p}",
                                    "release": names[r], "released_at": iso(base + r * 7 * DAY)}) + "\n")
        out = []
        for i in range(events):
            p, r = rand(products), rand(releases)
            found = base + r * 7 * DAY + rand(60 * DAY)
            out.append(
                f'{{"id":"{bits(64):016x}","source":"tracker","product":"product-{p}",'
                f'"stage":"{choice(STAGES)}","release":"{names[r]}","detected_by":"{choice(DETECTORS)}",'
                f'"cause":"{choice(CAUSES)}","severity":"{choice(SEVERITIES)}","team":"{choice(TEAMS)}",'
                f'"status":"{statuses[rand(100)]}","deleted":false,"found_at":"{stamp(found)}",'
                f'"updated_at":"{stamp(found + rand(DAY))}"}}\n')
            if len(out) == 10_000:
                f.write("".join(out))
                out.clear()
        f.write("".join(out))


def generate_linked(path, nolinks, events, products, releases, links, rng, names, statuses, stamp, base):
    """The file of --links: the same defects as `generate` would make for
    the unlinked ones, plus link groups (pairs and chains of three), every
    line shuffled; `nolinks` gets the same lines without their `links`."""
    rand, bits, choice = rng.randrange, rng.getrandbits, rng.choice
    chains = links // 20  # a tenth of the links, two per chain
    pairs = links - 2 * chains
    if 2 * pairs + 3 * chains > events:
        sys.exit(f"--links {links} needs {2 * pairs + 3 * chains} defects; --events is {events}")
    lines = []  # (text without links, links suffix or "")

    def record(source, kind, rid, p, r, stage, detected, found, ticket, status):
        rel = f'"release":"{names[r]}",' if r is not None else ""
        extra = (f'"cause":"{choice(CAUSES)}","severity":"{choice(SEVERITIES)}","team":"{choice(TEAMS)}",'
                 if ticket else f'"severity":"{choice(SEVERITIES)}",')
        return (f'{{"id":"{rid}","source":"{source}","product_kind":"{kind}","product":"product-{p}",'
                f'"stage":"{stage}",{rel}"detected_by":"{detected}",{extra}'
                f'"status":"{status}","deleted":false,"found_at":"{stamp(found)}",'
                f'"updated_at":"{stamp(found + rand(DAY))}"')

    def link(source, rid):
        return f',"links":[{{"source":"{source}","id":"{rid}"}}]'

    n = 0
    for g in range(pairs + chains):
        p, r = rand(products), rand(releases)
        found = base + r * 7 * DAY + rand(60 * DAY)
        # Sentry saw it first, often in an earlier release than the ticket names.
        rs = max(0, r - 1 - rand(3)) if rand(5) == 0 else r
        sid = f"{4_000_000_000 + g}"
        lines.append((record("sentry", "sentry", sid, p, rs, "production", "monitoring", found - rand(DAY), False,
                             "valid"), ""))
        jid = f"P{p}-{g}"
        stage = "qa" if rand(7) == 0 else "production"
        lines.append((record("jira", "jira", jid, p, None if rand(10) == 0 else r, stage, choice(DETECTORS),
                             found, True, statuses[rand(100)]), link("sentry", sid)))
        n += 2
        if g >= pairs:
            lines.append((record("github", "github", f"{g}", p, r, stage, choice(DETECTORS), found + rand(DAY),
                                 True, statuses[rand(100)]), link("jira", jid)))
            n += 1
    for _ in range(events - n):
        p, r = rand(products), rand(releases)
        found = base + r * 7 * DAY + rand(60 * DAY)
        lines.append((f'{{"id":"{bits(64):016x}","source":"tracker","product":"product-{p}",'
                      f'"stage":"{choice(STAGES)}","release":"{names[r]}","detected_by":"{choice(DETECTORS)}",'
                      f'"cause":"{choice(CAUSES)}","severity":"{choice(SEVERITIES)}","team":"{choice(TEAMS)}",'
                      f'"status":"{statuses[rand(100)]}","deleted":false,"found_at":"{stamp(found)}",'
                      f'"updated_at":"{stamp(found + rand(DAY))}"', ""))
    rng.shuffle(lines)
    head = [json.dumps({"kind": "release", "product": f"product-{p}", "release": names[r],
                        "released_at": iso(base + r * 7 * DAY)}) + "\n"
            for p in range(products) for r in range(releases)]
    with open(path, "w", buffering=1 << 20) as f, open(nolinks, "w", buffering=1 << 20) as g:
        f.write("".join(head))
        g.write("".join(head))
        for i in range(0, len(lines), 10_000):
            chunk = lines[i:i + 10_000]
            f.write("".join(f"{a}{b}}}\n" for a, b in chunk))
            g.write("".join(f"{a}}}\n" for a, _ in chunk))
    print(f"{pairs:,} pairs and {chains:,} chains of three: {links:,} links over {n:,} linked defects; "
          f"{events - n:,} unlinked")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--products", type=int, default=10)
    ap.add_argument("--releases", type=int, default=60)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="copy the generated file here")
    ap.add_argument("--input", help="import this file (e.g. one kept by --keep) instead of generating one")
    ap.add_argument("--links", type=int, default=0,
                    help="this many links among the defects (pairs and chains of three; see above)")
    ap.add_argument("--bin", default=BIN, help="the binary to time (to compare builds)")
    ap.add_argument("--compare", metavar="BIN",
                    help="a second binary, run alternately with --bin (pairs back to back: "
                         "the host's speed drifts between minutes, so only pairs compare)")
    args = ap.parse_args()
    for b in ([args.bin] + ([args.compare] if args.compare else [])) if args.runs else []:
        if not os.path.exists(b):
            sys.exit(f"{b} missing: cargo build --release first")
    tmp = tempfile.mkdtemp(prefix="import-bench-")
    try:
        if args.input:
            src = args.input
        else:
            src = os.path.join(tmp, "defects.ndjson")
            t0 = time.time()
            nolinks = os.path.join(tmp, "defects-nolinks.ndjson")
            generate(src, args.events, args.products, args.releases, links=args.links, nolinks=nolinks)
            size = os.path.getsize(src)
            print(f"generated {args.events} defects + {args.products * args.releases} release times, "
                  f"{size / 1e6:.0f} MB, in {time.time() - t0:.1f}s")
        if args.keep and not args.input:
            shutil.copy(src, args.keep)
            if args.links:
                root, ext = os.path.splitext(args.keep)
                shutil.copy(nolinks, f"{root}-nolinks{ext}")
        bins = [("bin", args.bin)] + ([("compare", args.compare)] if args.compare else [])
        rates = {name: [] for name, _ in bins}
        walls = []
        for run in range(args.runs):
            pair = {}
            for name, path in bins:
                db = os.path.join(tmp, f"run{run}-{name}.db")
                t = time.time()
                out = subprocess.run([path, "import", "--db", db, src], capture_output=True, text=True,
                                     timeout=600)
                wall = time.time() - t
                if out.returncode != 0:
                    sys.exit(f"import failed ({out.returncode}): {out.stderr[-2000:]}")
                rate = args.events / wall
                rates[name].append(rate)
                pair[name] = wall
                label = f" {name}" if args.compare else ""
                print(f"run {run + 1}{label}: {wall:.2f}s, {rate:,.0f} defects/s; {out.stdout.strip()}")
                for suffix in ("", "-wal", "-shm", ".lock", "-journal"):
                    if os.path.exists(db + suffix):
                        os.remove(db + suffix)
            walls.append(pair)
        for name, _ in bins if args.runs else []:
            r = sorted(rates[name])
            label = f"{name}: " if args.compare else ""
            print(f"{label}median {r[len(r) // 2]:,.0f} defects/s, best {r[-1]:,.0f} "
                  f"(runs: {args.runs}, cores: {os.cpu_count()})")
        if args.compare and args.runs:
            faster = sum(1 for p in walls if p["bin"] < p["compare"])
            print(f"bin faster than compare in {faster} of {len(walls)} pairs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
