#!/usr/bin/env python3
"""Realistic batch ingest: C clients each POST batches of B events as trackers
produce them (ids in random order, every field set, P products x R releases),
against the release binary on loopback. Reports events/s. Bounded: N events.

Usage: cargo build --release && python3 scripts/ingest.py [--events 400000] [--bin PATH] [--links N]

--links N: N of the events' records are linked in pairs (N/2 links): a record
as monitoring makes it (source `monitor`, production, `detected_by`
monitoring; the API cannot mark a record Sentry's) and a ticket (source
`ticket`) linking it, each anywhere in the stream (the same events otherwise,
so a run without links compares).
"""
import argparse, json, os, random, shutil, signal, subprocess, sys, tempfile, threading, time, http.client

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
    ap.add_argument("--links", type=int, default=0, help="records linked in pairs (see above)")
    ap.add_argument("--bin", default=BIN, help="the binary to time (to compare builds)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "ingest.db")
    proc = subprocess.Popen([args.bin, "serve", "--listen", f"127.0.0.1:{args.port}", "--db", db],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):  # ready within 120 s (slow under valgrind)
        try:
            c = http.client.HTTPConnection("127.0.0.1", args.port, timeout=5)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    rng = random.Random(1)
    total = args.events // args.batch * args.batch
    flat = []
    for i in range(total):
        p = rng.randrange(args.products)
        ev = {"id": f"{rng.getrandbits(64):016x}", "source": "tracker",
              "product": f"product-{p}", "release": f"{rng.randrange(args.releases)}.{p}.0",
              "stage": rng.choice(STAGES), "cause": rng.choice(CAUSES),
              "detected_by": rng.choice(["user", "monitoring"]), "severity": rng.choice(["high", "low"]),
              "team": "payments", "status": "valid",
              "found_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"}
        if i < args.links // 2 * 2:
            # Pairs (2k, 2k + 1): a monitoring record and the ticket made from it.
            if i % 2 == 0:
                ev.update(source="monitor", stage="production", detected_by="monitoring")
            else:
                mon = flat[i - 1]
                ev.update(source="ticket", product=mon["product"], release=mon["release"],
                          links=[{"source": "monitor", "id": mon["id"]}])
        flat.append(ev)
    if args.links:
        rng.shuffle(flat)
    bodies = [json.dumps(flat[b:b + args.batch]).encode() for b in range(0, total, args.batch)]
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

    def cpu_s():  # the server's user + system time
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    cpu0 = cpu_s()
    t0 = time.monotonic()
    ts = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in ts: t.start()
    for t in ts: t.join()
    dt = time.monotonic() - t0
    cpu = cpu_s() - cpu0
    print(f"{len(bodies) * args.batch} events in {dt:.2f} s: {len(bodies) * args.batch / dt:,.0f} events/s "
          f"({args.clients} clients, batches of {args.batch}, {args.products} products x {args.releases} releases); "
          f"server CPU {cpu:.2f} s, {cpu * 1e6 / (len(bodies) * args.batch):.1f} µs per event")
    time.sleep(3)  # the post-burst trim
    with open(f"/proc/{proc.pid}/status") as f:
        rss = next((int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS:")), 0.0)
    print(f"RSS 3 s after the last write: {rss:.1f} MiB")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=600)
    shutil.rmtree(tmp, ignore_errors=True)  # the database (50 MB per 200,000 events)


if __name__ == "__main__":
    main()
