#!/usr/bin/env python3
"""Memory follows what is exported: resident memory, scrape time and start-up
with long histories, against a small store exporting the same series.

Scenarios (each on its own temp database, release binary on 127.0.0.1):
  small    1,000 defects: 50 products x 20 releases, one defect each
  history  1,000,000 defects over 1,000 products x 1,000 releases, plus one
           product with 100,000 releases (a release per deployment, each with a
           release time and one defect)
  flood    150,000 products of one or two releases each (225,000 defects)
  linked   history, with 300,000 links: the defects of 600 products in odd
           releases each link to the same product's defect of the release
           before (300,000 link groups of two records)
small, history and linked run with max_products = 50 so all export 50 x 20
releases.

Reported per scenario: RSS after load and a scrape (3 s after the last write, so
the post-burst trim has run), median scrape time, then the same after a restart
with the start-up time. Every loop is bounded.
Usage: cargo build --release && python3 scripts/memory.py [small history flood linked]

A stored database instead (e.g. one `scripts/import_bench.py --links` made):
  python3 scripts/memory.py --stored LABEL BIN DB [--stored LABEL BIN DB ...] [--rounds 3]
starts BIN on (a copy of) DB with the default configuration, round after round,
the stores in turn, and reports per start: time to ready, RSS once ready, median
scrape of OpenMetrics and of the classic text (20 each), RSS after them; then
min / median / max per store.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "bug-escape-exporter")
STAGES = ["development", "code_review", "automated_tests", "qa", "production"]
DAY = 86_400


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def start(db, port, config, binary=None):
    t0 = time.monotonic()
    proc = subprocess.Popen([binary or BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", db, "--config", config],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(3000):  # at most 300 s
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read()
            return proc, time.monotonic() - t0
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("exporter did not become ready")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def post(port, path, items):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(items).encode(),
                                 headers={"content-type": "application/json"})
    for _ in range(100):  # a full queue answers 503: retry, bounded
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise
            time.sleep(0.2)
    sys.exit("write queue stayed full")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def scrape(port, n=20, accept=None):
    times, body = [], b""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"accept": accept} if accept else {})
    for _ in range(n):
        t0 = time.monotonic()
        body = urllib.request.urlopen(req, timeout=30).read()
        times.append((time.monotonic() - t0) * 1000)
    series = sum(1 for l in body.decode().splitlines() if l.startswith("bug_escape_rate_ratio{"))
    return statistics.median(times), series


def events(scenario):
    """Yields (path, batch) in batches of 5,000."""
    base = 1_600_000_000
    batch = []
    if scenario == "small":
        for p in range(50):
            for r in range(20):
                batch.append({"id": f"s-{p}-{r}", "product": f"p{p}", "release": f"1.{r}.0",
                              "stage": STAGES[(p + r) % 5], "found_at": iso(base + r * DAY)})
        yield "/api/v1/events", batch
        return
    if scenario in ("history", "linked"):
        for r in range(1000):
            for p in range(1000):
                batch.append({"id": f"h-{p}-{r}", "product": f"p{p}", "release": f"1.{r}.0",
                              "stage": STAGES[(p + r) % 5], "found_at": iso(base + r * 3600)})
                if scenario == "linked" and p < 600 and r % 2 == 1:
                    batch[-1]["links"] = [{"source": "generic", "id": f"h-{p}-{r - 1}"}]
                if len(batch) == 5000:
                    yield "/api/v1/events", batch
                    batch = []
        for r in range(100_000):
            batch.append({"id": f"d-{r}", "product": "deploys", "release": f"2.{r}.0",
                          "stage": STAGES[r % 5], "found_at": iso(base + r * 600 + 60)})
            if len(batch) == 5000:
                times = [{"product": "deploys", "release": e["release"],
                          "released_at": iso(base + int(e["id"][2:]) * 600)} for e in batch]
                yield "/api/v1/releases", times
                yield "/api/v1/events", batch
                batch = []
        return
    if scenario == "flood":
        for p in range(150_000):
            for r in range(1 + p % 2):
                batch.append({"id": f"f-{p}-{r}", "product": f"flood-{p}", "release": f"1.{r}.0",
                              "stage": STAGES[(p + r) % 5], "found_at": iso(base + p)})
                if len(batch) == 5000:
                    yield "/api/v1/events", batch
                    batch = []
        if batch:
            yield "/api/v1/events", batch


def run(scenario, port):
    keep = os.environ.get("MEMORY_KEEP")  # a directory to leave the database in
    with tempfile.TemporaryDirectory() as d:
        if keep:
            d = keep
            os.makedirs(d, exist_ok=True)
        db, config = os.path.join(d, "m.db"), os.path.join(d, "m.toml")
        with open(config, "w") as f:
            f.write("max_products = 50\n" if scenario in ("small", "history", "linked") else "")
        proc, _ = start(db, port, config)
        t0 = time.monotonic()
        n = 0
        with ThreadPoolExecutor(4) as pool:
            for r in pool.map(lambda pb: post(port, *pb), events(scenario)):
                n += r.get("accepted", 0)
        load_s = time.monotonic() - t0
        time.sleep(3)
        ms, series = scrape(port)
        rss = rss_mib(proc.pid)
        stop(proc)
        proc, startup = start(db, port, config)
        ms2, series2 = scrape(port)
        rss2 = rss_mib(proc.pid)
        stop(proc)
        print(f"{scenario:8} {n:>9,} accepted in {load_s:6.1f} s | RSS {rss:6.1f} MiB, scrape {ms:6.2f} ms, "
              f"{series} releases exported | restart {startup:5.2f} s to ready, RSS {rss2:6.1f} MiB, "
              f"scrape {ms2:6.2f} ms ({series2})", flush=True)


def stored(runs, rounds, port):
    """--stored: each store started `rounds` times, the stores in turn."""
    figures = {label: [] for label, _, _ in runs}
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "default.toml")
        open(config, "w").close()
        for rnd in range(rounds):
            for label, binary, src in runs:
                db = os.path.join(d, "s.db")
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(src + suffix):
                        shutil.copy(src + suffix, db + suffix)
                proc, ready = start(db, port, config, binary)
                rss0 = rss_mib(proc.pid)
                om, series = scrape(port, accept=OPENMETRICS)
                text, _ = scrape(port)
                rss1 = rss_mib(proc.pid)
                time.sleep(3)  # a trim after the scrapes, as after a burst
                om2, _ = scrape(port, accept=OPENMETRICS)
                rss2 = rss_mib(proc.pid)
                stop(proc)
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(db + suffix):
                        os.remove(db + suffix)
                row = (ready, rss0, om, text, rss1, om2, rss2)
                figures[label].append(row)
                print(f"round {rnd + 1} {label:12} ready {ready:5.2f} s, RSS {rss0:6.1f} MiB | scrape OpenMetrics "
                      f"{om:6.2f} ms, text {text:6.2f} ms ({series} releases) | RSS {rss1:6.1f} MiB | 3 s later "
                      f"scrape {om2:6.2f} ms, RSS {rss2:6.1f} MiB", flush=True)
    names = ["ready s", "RSS ready MiB", "OpenMetrics ms", "text ms", "RSS scraped MiB", "OpenMetrics 2 ms",
             "RSS 3 s later MiB"]
    for label, rows in figures.items():
        cols = list(zip(*rows))
        print(f"{label}: " + "; ".join(f"{n} {min(c):.2f} / {statistics.median(c):.2f} / {max(c):.2f}"
                                        for n, c in zip(names, cols)) + " (min / median / max)")


def main():
    if "--stored" in sys.argv:
        args, runs, rounds = sys.argv[1:], [], 3
        while args:
            a = args.pop(0)
            if a == "--stored" and len(args) >= 3:
                runs.append((args.pop(0), args.pop(0), args.pop(0)))
            elif a == "--rounds" and args:
                rounds = int(args.pop(0))
            else:
                sys.exit(__doc__)
        stored(runs, rounds, 18970)
        return
    scenarios = sys.argv[1:] or ["small", "history", "flood"]
    for i, s in enumerate(scenarios):
        run(s, 18960 + i)


if __name__ == "__main__":
    main()
