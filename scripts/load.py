#!/usr/bin/env python3
"""Load script: ingest throughput, scrape latency at 1 thousand and at 1 million
defects (same series), and start-up time with a million stored defects.

Runs the release binary on 127.0.0.1 with a temp database; every loop is bounded.
Usage: cargo build --release && python3 scripts/load.py [--defects 1000000]
"""
import argparse
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

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "bug-escape-exporter")
STAGES = ["development", "code_review", "automated_tests", "qa", "production"]


def start(db, port):
    t0 = time.monotonic()
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--db", db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(6000):  # at most 600 s
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read()
            return proc, time.monotonic() - t0
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("exporter did not become ready")


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)


def post(port, events):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", data=json.dumps(events).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)


def scrape_ms(port, n=50):
    times = []
    size = 0
    for _ in range(n):
        t0 = time.monotonic()
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        times.append((time.monotonic() - t0) * 1000)
        size = len(body)
    return statistics.median(times), max(times), size


def feed(port, start_id, count, batch=5000):
    t0 = time.monotonic()
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        events = []
        for i in range(start_id + sent, start_id + sent + n):
            events.append({"id": str(i), "product": f"product-{i % 5}", "release": f"1.{(i // 5) % 20}.0",
                           "stage": STAGES[i % 5], "cause": "coverage" if i % 5 == 4 else None,
                           "found_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"})
        assert post(port, events)["accepted"] == n
        sent += n
    return count / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--defects", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=10999)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "load.db")
    try:
        proc, _ = start(db, args.port)
        feed(args.port, 0, 1000)
        med, worst, size = scrape_ms(args.port)
        print(f"1000 defects: scrape median {med:.2f} ms, max {worst:.2f} ms, {size} bytes")
        rate = feed(args.port, 1000, args.defects - 1000)
        print(f"ingest: {rate:,.0f} events/s (batches of 5000, synchronous=FULL)")
        med, worst, size = scrape_ms(args.port)
        print(f"{args.defects} defects: scrape median {med:.2f} ms, max {worst:.2f} ms, {size} bytes")
        stop(proc)
        proc, startup = start(db, args.port)
        print(f"restart with {args.defects} stored defects: ready in {startup:.2f} s; "
              f"db {os.path.getsize(db) / 1e6:.0f} MB")
        med, worst, _ = scrape_ms(args.port)
        print(f"after restart: scrape median {med:.2f} ms")
        stop(proc)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
