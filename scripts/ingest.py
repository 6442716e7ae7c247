#!/usr/bin/env python3
"""Realistic batch ingest: C clients each POST batches of B events as trackers
produce them (ids in random order, every field set, P products x R releases),
against the release binary on loopback. Reports events/s. Bounded: N events.

Usage: cargo build --release && python3 scripts/ingest.py [--events 400000] [--bin PATH]
"""
import argparse, json, os, random, signal, subprocess, sys, tempfile, threading, time, http.client

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "bug-escape-exporter")
STAGES = ["development", "code_review", "automated_tests", "qa", "production"]
CAUSES = ["coverage", "review", "requirements", "release", "unknown"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=400_000)
    ap.add_argument("--batch", type=int, default=2500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--products", type=int, default=50)
    ap.add_argument("--releases", type=int, default=200)
    ap.add_argument("--port", type=int, default=18941)
    ap.add_argument("--bin", default=BIN, help="the binary to time (to compare builds)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "ingest.db")
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{args.port}", "--db", db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    rng = random.Random(1)
    bodies = []
    for b in range(args.events // args.batch):
        ev = []
        for _ in range(args.batch):
            p = rng.randrange(args.products)
            ev.append({"id": f"{rng.getrandbits(64):016x}", "source": "tracker",
                       "product": f"product-{p}", "release": f"{rng.randrange(args.releases)}.{p}.0",
                       "stage": rng.choice(STAGES), "cause": rng.choice(CAUSES),
                       "detected_by": rng.choice(["user", "monitoring"]), "severity": rng.choice(["high", "low"]),
                       "team": "payments", "status": "valid",
                       "found_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"})
        bodies.append(json.dumps(ev).encode())
    lock = threading.Lock()
    todo = list(bodies)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
        while True:
            with lock:
                if not todo:
                    return
                body = todo.pop()
            conn.request("POST", "/api/v1/events", body=body, headers={"content-type": "application/json"})
            r = conn.getresponse(); r.read()
            assert r.status == 200, r.status

    t0 = time.monotonic()
    ts = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in ts: t.start()
    for t in ts: t.join()
    dt = time.monotonic() - t0
    print(f"{len(bodies) * args.batch} events in {dt:.2f} s: {len(bodies) * args.batch / dt:,.0f} events/s "
          f"({args.clients} clients, batches of {args.batch}, {args.products} products x {args.releases} releases)")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


if __name__ == "__main__":
    main()
