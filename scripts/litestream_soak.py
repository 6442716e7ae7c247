#!/usr/bin/env python3
"""Litestream soak: `serve` with Litestream replicating its database to a file
replica, under cycles of steady writes and pauses (hours of a day's rhythm
compressed into minutes), sampled every second: the WAL's size, the write
latency, Litestream's positions (shadow WAL vs replica) and error counters
from its Prometheus metrics, its log's errors and generations. At the end the
writes stop, the replica catches up, and `litestream restore` must give back
every defect of the source.

Every loop is bounded. Prints a summary (and --json FILE writes it whole).
Usage:
  cargo build --release
  python3 scripts/litestream_soak.py --minutes 5 [--litestream PATH] [--config exporter.toml]
"""
import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BIN = os.path.join(ROOT, "target", "release", "bug-escape-exporter")
STAGES = ["development", "code_review", "automated_tests", "qa", "production"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, what):
    for _ in range(600):  # at most 60 s
        if proc.poll() is not None:
            sys.exit(f"{what} exited: {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{what} did not become ready")


def post(port, events):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", data=json.dumps(events).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()


def metrics(port):
    """Litestream's samples as {name: value}, summed over labels."""
    out = {}
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return out
    for line in text.splitlines():
        if line.startswith("litestream_"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            labels = line[len(name):line.rfind(" ")]
            key = name + ("{mode=" + re.search(r'mode="(\w+)"', labels).group(1) + "}" if 'mode="' in labels else "")
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def lag(m):
    """WAL bytes Litestream has shadowed but not yet written to the replica."""
    return max(0, int(m.get("litestream_total_wal_bytes", 0) - m.get("litestream_replica_wal_bytes", 0)))


class Writer(threading.Thread):
    """Posts batches at `rate` requests/s for `burst` s, pauses `pause` s (the
    writer goes idle and runs its idle chores), until stopped."""

    def __init__(self, port, rate, batch, burst, pause):
        super().__init__(daemon=True)
        self.port, self.rate, self.batch, self.burst, self.pause = port, rate, batch, burst, pause
        self.stop = threading.Event()
        self.acked = 0
        self.latencies = []  # (time, seconds)
        self.errors = 0

    def run(self):
        i = 0
        while not self.stop.is_set():
            end = time.monotonic() + self.burst
            while time.monotonic() < end and not self.stop.is_set():
                events = [{"id": f"s{i + k}", "product": f"p{(i + k) % 7}", "release": f"1.{(i + k) % 40}",
                           "stage": STAGES[(i + k) % 5], "found_at": "2024-02-01T00:00:00Z"}
                          for k in range(self.batch)]
                t0 = time.monotonic()
                try:
                    post(self.port, events)
                    self.acked += self.batch
                except OSError:
                    self.errors += 1
                self.latencies.append((t0, time.monotonic() - t0))
                i += self.batch
                time.sleep(max(0.0, 1.0 / self.rate - (time.monotonic() - t0)))
            self.stop.wait(self.pause)


def file_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def run(args):
    work = tempfile.mkdtemp(prefix="litestream-soak-")
    db = os.path.join(work, "bug-escape.db")
    replica = os.path.join(work, "replica")
    port, ls_port = free_port(), free_port()
    cfg = os.path.join(work, "litestream.yml")
    with open(cfg, "w") as f:
        f.write(f"addr: 127.0.0.1:{ls_port}\ndbs:\n  - path: {db}\n    replicas:\n"
                f"      - type: file\n        path: {replica}\n        sync-interval: 1s\n")
    cmd = [args.binary, "serve", "--listen", f"127.0.0.1:{port}", "--db", db]
    if args.config:
        cmd += ["--config", args.config]
    serve_log = open(os.path.join(work, "serve.log"), "w")
    serve = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=serve_log)
    wait_ready(f"http://127.0.0.1:{port}/readyz", serve, "serve")
    ls_log_path = os.path.join(work, "litestream.log")
    ls_log = open(ls_log_path, "w")
    ls = subprocess.Popen([args.litestream, "replicate", "-config", cfg], stdout=ls_log, stderr=ls_log)
    wait_ready(f"http://127.0.0.1:{ls_port}/metrics", ls, "litestream")

    writer = Writer(port, args.rate, args.batch, args.burst, args.pause)
    writer.start()
    samples = []
    t_start = time.monotonic()
    deadline = t_start + args.minutes * 60
    while time.monotonic() < deadline:
        time.sleep(1)
        m = metrics(ls_port)
        samples.append({
            "t": round(time.monotonic() - t_start, 1),
            "wal": file_size(db + "-wal"),
            "acked": writer.acked,
            "shadow": (m.get("litestream_shadow_wal_index", 0), m.get("litestream_shadow_wal_size", 0)),
            "replica": (m.get("litestream_replica_wal_index", 0), m.get("litestream_replica_wal_offset", 0)),
            "metrics": m,
        })
    writer.stop.set()
    writer.join(timeout=120)
    acked = writer.acked
    # The replica catches up (bounded), then Litestream and serve stop.
    caught_up = None
    for k in range(30):
        m = metrics(ls_port)
        if lag(m) == 0:
            caught_up = k * 0.5
            break
        time.sleep(0.5)
    final = metrics(ls_port)
    ls.send_signal(signal.SIGTERM)
    ls.wait(timeout=60)
    serve.send_signal(signal.SIGTERM)
    serve.wait(timeout=120)

    source = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
        "SELECT COUNT(*) FROM defects WHERE id LIKE 's%'").fetchone()[0]
    restored_path = os.path.join(work, "restored.db")
    t0 = time.monotonic()
    r = subprocess.run([args.litestream, "restore", "-o", restored_path, "-config", cfg, db],
                       capture_output=True, text=True)
    restore_s = time.monotonic() - t0
    restored = None
    integrity = None
    if r.returncode == 0:
        conn = sqlite3.connect(restored_path)
        restored = conn.execute("SELECT COUNT(*) FROM defects WHERE id LIKE 's%'").fetchone()[0]
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]

    log = open(ls_log_path).read()
    lat = sorted(l for _, l in writer.latencies)
    walmax = max(s["wal"] for s in samples)
    lag_bytes = [lag(s["metrics"]) for s in samples]
    summary = {
        "minutes": args.minutes, "rate": args.rate, "batch": args.batch, "burst_s": args.burst,
        "pause_s": args.pause, "config": args.config,
        "requests": len(lat), "acked_defects": acked, "write_errors": writer.errors,
        "latency_ms": {"p50": round(lat[len(lat) // 2] * 1000, 1), "p99": round(lat[int(len(lat) * 0.99)] * 1000, 1),
                       "max": round(lat[-1] * 1000, 1),
                       "over_1s": sum(1 for l in lat if l > 1.0)},
        "wal_bytes": {"max": walmax, "mean": int(sum(s["wal"] for s in samples) / len(samples)),
                      "final": samples[-1]["wal"]},
        "litestream": {
            "errors_logged": len(re.findall(r"level=ERROR", log)),
            "error_lines": sorted(set(re.sub(r"time=\S+ ", "", l) for l in log.splitlines() if "level=ERROR" in l))[:5],
            "generations": len(re.findall(r"new generation", log)),
            "generation_reasons": sorted(set(re.findall(r'new generation.*reason="([^"]+)"', log))),
            "sync_errors": final.get("litestream_sync_error_count"),
            "checkpoints": {k: v for k, v in final.items() if k.startswith("litestream_checkpoint")},
            "wal_index_final": final.get("litestream_shadow_wal_index"),
            "lag_bytes": {"max": max(lag_bytes), "mean": int(sum(lag_bytes) / len(lag_bytes))},
            "samples_lagging": sum(1 for b in lag_bytes if b > 0),
            "caught_up_after_stop_s": caught_up,
        },
        "restore": {"source_defects": source, "restored_defects": restored, "integrity": integrity,
                    "seconds": round(restore_s, 2), "error": r.stderr[-500:] if r.returncode else None},
        "work_dir": work,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "samples": samples}, f)
    print(json.dumps(summary, indent=2))
    return 0 if restored == source and integrity == "ok" else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=BIN)
    p.add_argument("--litestream", default=os.environ.get("BUG_ESCAPE_LITESTREAM", "litestream"))
    p.add_argument("--config", help="exporter TOML (e.g. with checkpoint = \"external\")")
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--rate", type=float, default=100, help="requests/s while writing")
    p.add_argument("--batch", type=int, default=20, help="defects per request")
    p.add_argument("--burst", type=float, default=4, help="seconds of writes per cycle")
    p.add_argument("--pause", type=float, default=1.5, help="seconds of pause per cycle (> 0.5: the writer idles)")
    p.add_argument("--json", help="write summary and samples to this file")
    sys.exit(run(p.parse_args()))


if __name__ == "__main__":
    main()
