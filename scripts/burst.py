#!/usr/bin/env python3
"""Backpressure figures: a burst of concurrent large batches against the release
binary. Reports answers by status, peak and settled resident memory, and the
latency of /readyz probes taken during the burst.

Usage: cargo build --release && python3 scripts/burst.py [--clients 64] [--events 9000]
Bounded: one burst, then at most 60 s of settling. Loopback only.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import http.client

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "bug-escape-exporter")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def request(port, method, path, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--events", type=int, default=9000)
    ap.add_argument("--port", type=int, default=18931)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "burst.db")
    proc = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{args.port}", "--db", db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if request(args.port, "GET", "/readyz", timeout=1)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        sys.exit("exporter not ready")
    rng = random.Random(7)
    bodies = []
    for c in range(args.clients):
        events = [{"id": f"{c}-{rng.randrange(1 << 40):x}", "stage": rng.choice(["qa", "production"]),
                   "release": f"{rng.randrange(30)}.0"} for _ in range(args.events)]
        bodies.append(json.dumps(events, separators=(",", ":")).encode())
    print(f"body size: {len(bodies[0]) / 1024:.0f} KiB; idle RSS {rss_mib(proc.pid):.0f} MiB")
    results = []
    peak = [rss_mib(proc.pid)]
    ready_ms = []
    done = threading.Event()

    def client(body):
        t0 = time.monotonic()
        status, _ = request(args.port, "POST", "/api/v1/events", body)
        results.append((status, time.monotonic() - t0))

    # /readyz is probed from a process of its own, so the clients' threads do
    # not delay the probe's own clock.
    probe_code = (
        "import http.client,sys,time\n"
        "port=int(sys.argv[1])\n"
        "while True:\n"
        "    t0=time.monotonic()\n"
        "    c=http.client.HTTPConnection('127.0.0.1',port,timeout=5)\n"
        "    c.request('GET','/readyz'); r=c.getresponse(); r.read(); c.close()\n"
        "    print(f'{r.status} {(time.monotonic()-t0)*1000:.2f}',flush=True)\n"
        "    time.sleep(0.02)\n"
    )
    prober = subprocess.Popen([sys.executable, "-c", probe_code, str(args.port)],
                              stdout=subprocess.PIPE, text=True)

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mib(proc.pid))
            time.sleep(0.02)

    w = threading.Thread(target=watch)
    w.start()
    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    done.set()
    w.join()
    prober.terminate()
    out, _ = prober.communicate(timeout=10)
    for line in out.split("\n"):
        parts = line.split()
        if len(parts) == 2:
            ready_ms.append(float(parts[1]))
    by_status = {}
    for s, _ in results:
        by_status[s] = by_status.get(s, 0) + 1
    lat = sorted(d for _, d in results)
    print(f"answers: {by_status}; wall {wall:.1f} s; p50 {lat[len(lat) // 2]:.2f} s; max {lat[-1]:.2f} s")
    ready_ms.sort()
    print(f"/readyz during the burst: {len(ready_ms)} probes, p50 {ready_ms[len(ready_ms) // 2]:.1f} ms, "
          f"p99 {ready_ms[int(len(ready_ms) * 0.99)]:.1f} ms, max {ready_ms[-1]:.1f} ms")
    print(f"peak RSS {peak[0]:.0f} MiB")
    for _ in range(60):
        time.sleep(1)
        settled = rss_mib(proc.pid)
        if settled < 64:
            break
    print(f"settled RSS {rss_mib(proc.pid):.0f} MiB after {_ + 1} s")
    wal = db + "-wal"
    print(f"WAL after the burst: {os.path.getsize(wal) if os.path.exists(wal) else 0} bytes")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


if __name__ == "__main__":
    main()
