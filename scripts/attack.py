#!/usr/bin/env python3
"""Attack script: hostile traffic against the release binary on 127.0.0.1.

1. `--posts` (400) concurrent connections each POST 1 MiB with a wrong
   X-Hub-Signature-256 to /webhooks/github, while a correctly signed delivery is
   sent and /metrics is scraped every 100 ms: peak and settled resident memory,
   answers by status, scrape latency.
2. `--idle` (1000) idle sockets (the exporter runs under a 1024 file limit, as
   a default systemd unit would): /metrics and /healthz latency meanwhile, how
   many sockets were refused at once, when the last one was closed.
3. `--slow` (100) slow-header sockets (a byte every second): when the last one
   was closed.
Between 1 and 2, 24 unsigned deliveries declaring 1 MiB trickle their bodies
while a generic write (loopback, no token) is sent: unauthenticated bytes must
not take the write queue's room.

Every loop is bounded; the client raises its own file limit. Exits non-zero when
a promise of the exporter is broken (RSS >= 256 MiB, a probe slower than 1 s, a
socket left open past 60 s, the signed delivery not stored).
Usage: cargo build --release && python3 scripts/attack.py
"""
import argparse
import hashlib
import hmac
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "bug-escape-exporter")
SECRET = "attack-test-secret"
MIB = 1024 * 1024


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start(bin_path, db, port):
    env = dict(os.environ, BUG_ESCAPE_GITHUB_SECRET=SECRET, BUG_ESCAPE_LOG="warn")

    def limit_files():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    proc = subprocess.Popen([bin_path, "serve", "--listen", f"127.0.0.1:{port}", "--db", db], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=limit_files)
    for _ in range(600):  # at most 60 s
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("exporter did not become ready")


def get_ms(port, path):
    """Milliseconds for GET `path` on a fresh connection (None when it failed)."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            r.read()
            if r.status != 200:
                return None
    except OSError:
        return None
    return (time.monotonic() - t0) * 1000


class Watch:
    """Samples RSS and probe latency in the background until stopped."""

    def __init__(self, pid, port, paths=("/metrics",)):
        self.pid, self.port, self.paths = pid, port, paths
        self.peak, self.latencies, self.failures = 0.0, [], 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.rss, daemon=True),
                        threading.Thread(target=self.probe, daemon=True)]
        for t in self.threads:
            t.start()

    def rss(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def probe(self):
        while not self.stop.is_set():
            for p in self.paths:
                ms = get_ms(self.port, p)
                if ms is None:
                    self.failures += 1
                else:
                    self.latencies.append(ms)
            time.sleep(0.1)

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=10)
        lat = sorted(self.latencies) or [float("nan")]
        return {"peak_rss_mib": round(self.peak, 1), "probes": len(self.latencies), "probe_failures": self.failures,
                "probe_p50_ms": round(lat[len(lat) // 2], 1), "probe_max_ms": round(lat[-1], 1)}


def bad_post(port, results, body):
    head = (f"POST /webhooks/github HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"x-github-event: issues\r\nx-github-delivery: bad\r\nx-hub-signature-256: sha256={'0' * 64}\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(head)
            try:
                s.sendall(body)
            except OSError:
                pass  # refused early: read the answer anyway
            answer = b""
            while len(answer) < 64 * 1024:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.1 ") else "reset"
    except OSError as e:
        status = type(e).__name__
    results.append(status)


def signed_post(port):
    fixture = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "github", "issues_opened.json")
    with open(fixture, "rb") as f:
        payload = f.read()
    sig = hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/github", data=payload, headers={
        "content-type": "application/json", "x-github-event": "issues", "x-github-delivery": "good-1",
        "x-hub-signature-256": f"sha256={sig}"})
    for _ in range(50):  # retried on 503, at most ~10 s
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            if e.code != 503:
                return e.code
        except OSError:
            pass
        time.sleep(0.2)
    return 503


def phase_posts(proc, port, n):
    body = b" " * MIB
    before = rss_mib(proc.pid)
    watch = Watch(proc.pid, port)
    results = []
    threads = [threading.Thread(target=bad_post, args=(port, results, body)) for _ in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    good = signed_post(port)
    for t in threads:
        t.join(timeout=120)
    took = time.monotonic() - t0
    stats = watch.end()
    time.sleep(5)  # the trim runs 2 s after the last body is released
    settled = rss_mib(proc.pid)
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    return {"before_rss_mib": round(before, 1), **stats, "settled_rss_mib": round(settled, 1),
            "answers": counts, "signed_delivery": good, "seconds": round(took, 1)}


def open_sockets(port, n, results):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            results["connect_failed"] = results.get("connect_failed", 0) + 1
    return socks


def wait_closed(socks, limit_s, trickle=False):
    """Seconds until every socket saw the peer close (None past `limit_s`);
    counts sockets answered 503 at once. With `trickle`, sends a header byte per
    second on each until it is closed."""
    t0 = time.monotonic()
    open_ = {s.fileno(): s for s in socks}
    refused = 0
    for s in socks:
        s.setblocking(False)
    last_trickle = 0.0
    while open_ and time.monotonic() - t0 < limit_s:
        if trickle and time.monotonic() - last_trickle >= 1:
            last_trickle = time.monotonic()
            for fd, s in list(open_.items()):
                try:
                    s.send(b"x")
                except OSError:
                    s.close()
                    del open_[fd]
        for fd, s in list(open_.items()):
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 503"):
                refused += 1
            if not data or data.startswith(b"HTTP/1.1 503"):
                s.close()
                del open_[fd]
        time.sleep(0.05)
    for s in open_.values():
        s.close()
    took = time.monotonic() - t0
    return (round(took, 1) if not open_ else None), refused, len(open_)


def phase_idle(proc, port, n):
    watch = Watch(proc.pid, port, paths=("/metrics", "/healthz"))
    results = {}
    socks = open_sockets(port, n, results)
    closed_after, refused, left = wait_closed(socks, 70)
    stats = watch.end()
    return {"sockets": len(socks), **results, "refused_at_once": refused, "all_closed_after_s": closed_after,
            "left_open": left, **stats}


def phase_slow(proc, port, n):
    watch = Watch(proc.pid, port, paths=("/metrics", "/healthz"))
    results = {}
    socks = open_sockets(port, n, results)
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
    closed_after, refused, left = wait_closed(socks, 70, trickle=True)
    stats = watch.end()
    return {"sockets": len(socks), "all_closed_after_s": closed_after, "left_open": left, **stats}


def generic_post(port):
    event = [{"id": "attack-1", "product": "p", "release": "1.0", "stage": "qa",
              "found_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/events", data=json.dumps(event).encode(),
                                 headers={"content-type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        status = type(e).__name__
    return status, round((time.monotonic() - t0) * 1000, 1)


def phase_slow_bodies(proc, port, n):
    """`n` unsigned deliveries that declare 1 MiB and send a byte a second: do
    writes of the (loopback-authenticated) generic API still get through?"""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall((f"POST /webhooks/github HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                   f"x-github-event: issues\r\nx-hub-signature-256: sha256={'0' * 64}\r\n"
                   f"content-length: {MIB}\r\n\r\n{{").encode())
        socks.append(s)
    time.sleep(1)
    status, ms = generic_post(port)
    for s in socks:
        s.close()
    return {"slow_senders": n, "generic_write": status, "generic_write_ms": ms}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=400)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--slow", type=int, default=100)
    ap.add_argument("--port", type=int, default=10998)
    ap.add_argument("--bin", default=BIN, help="binary to attack (default: this tree's release build)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    threading.stack_size(256 * 1024)
    tmp = tempfile.mkdtemp()
    proc = start(args.bin, os.path.join(tmp, "attack.db"), args.port)
    report = {}
    try:
        report["bad_signature_posts"] = phase_posts(proc, args.port, args.posts)
        print(json.dumps({"bad_signature_posts": report["bad_signature_posts"]}), flush=True)
        report["slow_bodies"] = phase_slow_bodies(proc, args.port, 24)
        print(json.dumps({"slow_bodies": report["slow_bodies"]}), flush=True)
        report["idle_sockets"] = phase_idle(proc, args.port, args.idle)
        print(json.dumps({"idle_sockets": report["idle_sockets"]}), flush=True)
        report["slow_header_sockets"] = phase_slow(proc, args.port, args.slow)
        print(json.dumps({"slow_header_sockets": report["slow_header_sockets"]}), flush=True)
        report["final_rss_mib"] = round(rss_mib(proc.pid), 1)
        report["healthz_after_ms"] = get_ms(args.port, "/healthz")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2))
    p, i, s = report["bad_signature_posts"], report["idle_sockets"], report["slow_header_sockets"]
    broken = []
    if p["peak_rss_mib"] >= 256:
        broken.append("peak RSS >= 256 MiB under bad-signature posts")
    if report["slow_bodies"]["generic_write"] != 200:
        broken.append("a generic write was refused while unsigned bodies trickled in")
    if p["signed_delivery"] != 200:
        broken.append(f"signed delivery answered {p['signed_delivery']}")
    for name, ph in (("posts", p), ("idle", i), ("slow", s)):
        if ph["probe_failures"] or ph["probe_max_ms"] >= 1000:
            broken.append(f"{name}: probes failed or took >= 1 s")
    if i["all_closed_after_s"] is None or s["all_closed_after_s"] is None:
        broken.append("sockets left open past 60 s")
    if broken:
        sys.exit("BROKEN: " + "; ".join(broken))


if __name__ == "__main__":
    main()
