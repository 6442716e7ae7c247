#!/usr/bin/env python3
"""Durable single-event writes against a bare axum no-op, in one run.

Starts the release exporter (temp database, synchronous=FULL as always) and
the no-op server built from this repository (`examples/noop.rs`: axum + tokio,
POST reads the body, answers 200 `{}`), both on 127.0.0.1, and drives each in
turn with `wrk -t2 -c64 -d10s` posting one small JSON event per request with
a distinct id (a Lua counter per wrk thread). Rounds alternate exporter and
no-op; every answer must be 2xx (wrk's non-2xx count is checked, and the
exporter's stored defects are counted through `/metrics` afterwards).
Prints both rates and their ratio, and each server's CPU time per request
(from /proc: steadier than the rates on a shared machine).

Usage: cargo build --release --bin bug-escape-exporter --example noop &&
       python3 scripts/single.py [--rounds 2] [--duration 10] [--connections 64]
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
EXPORTER = os.path.join(ROOT, "target", "release", "bug-escape-exporter")
NOOP = os.path.join(ROOT, "target", "release", "examples", "noop")

# One event per request, distinct ids: "<round>-<thread>-<n>".
LUA = r"""
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = (args[1] or "r") .. "-" .. tostring(tid) .. "-"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  counter = counter + 1
  local body = '{"id":"' .. prefix .. counter .. '","product":"shop","release":"1.2.0",' ..
               '"stage":"qa","found_at":"2026-01-01T00:00:00Z"}'
  return wrk.format(nil, "/api/v1/events", nil, body)
end
"""


def wait_ready(url, proc):
    for _ in range(600):  # at most 60 s
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except urllib.error.HTTPError:
            return  # answering (405 on a GET of the no-op's POST route)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit(f"{url} did not answer")


def wrk(port, lua, tag, args):
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
         "--timeout", "10s", "-s", lua, f"http://127.0.0.1:{port}", "--", tag],
        capture_output=True, text=True, timeout=args.duration + 60, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return rate, total, int(bad.group(1)) if bad else 0, errors.group(1) if errors else None


def cpu_seconds(pid):
    """User + system CPU time a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(port):
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    n = 0
    for line in body.splitlines():
        if line.startswith("bug_escape_release_defects{"):
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--exporter", default=EXPORTER)
    ap.add_argument("--port", type=int, default=10997)
    ap.add_argument("--noop-port", type=int, default=10998)
    ap.add_argument("--compare", metavar="BIN",
                    help="a second exporter binary (say, a build before a change), run in the same rounds")
    ap.add_argument("--compare-port", type=int, default=10996)
    ap.add_argument("--hold", action="store_true",
                    help="print the exporter's pid and wait 3 s before each exporter round (for perf)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    lua = os.path.join(tmp, "post.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    exporter = subprocess.Popen(
        [args.exporter, "serve", "--listen", f"127.0.0.1:{args.port}", "--db", os.path.join(tmp, "single.db")],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "exporter.log"), "w"))
    noop = subprocess.Popen([NOOP, f"127.0.0.1:{args.noop_port}"], stdout=subprocess.DEVNULL)
    servers = [("exporter", args.port), ("noop", args.noop_port)]
    procs = [exporter, noop]
    if args.compare:
        procs.append(subprocess.Popen(
            [args.compare, "serve", "--listen", f"127.0.0.1:{args.compare_port}",
             "--db", os.path.join(tmp, "compare.db")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        servers.append(("compare", args.compare_port))
    try:
        wait_ready(f"http://127.0.0.1:{args.port}/readyz", exporter)
        wait_ready(f"http://127.0.0.1:{args.noop_port}/api/v1/events", noop)
        if args.compare:
            wait_ready(f"http://127.0.0.1:{args.compare_port}/readyz", procs[2])
        rates = {name: [] for name, _ in servers}
        cpu = {name: [] for name, _ in servers}
        pids = {name: proc.pid for (name, _), proc in zip(servers, procs)}
        sent = 0
        for r in range(args.rounds):
            for name, port in servers:
                if args.hold and name == "exporter":
                    print(f"exporter pid {exporter.pid}", flush=True)
                    time.sleep(3)
                before = cpu_seconds(pids[name])
                rate, total, bad, errors = wrk(port, lua, f"r{r}", args)
                # The server's CPU per answered request: steadier than the
                # rate on a machine shared with other work.
                per = (cpu_seconds(pids[name]) - before) / max(total, 1) * 1e6
                cpu[name].append(per)
                print(f"round {r + 1} {name:8}: {rate:10,.0f} req/s  {per:5.1f} µs CPU/request  "
                      f"({total} requests, non-2xx {bad}"
                      f"{', socket errors ' + errors if errors else ''})", flush=True)
                if bad:
                    sys.exit(f"{name}: {bad} answers were not 2xx")
                rates[name].append(rate)
                if name == "exporter":
                    sent += total
                time.sleep(1)
        exp = sum(rates["exporter"]) / len(rates["exporter"])
        nop = sum(rates["noop"]) / len(rates["noop"])
        mean = lambda v: sum(v) / len(v)
        print(f"exporter {exp:,.0f} req/s, no-op {nop:,.0f} req/s, ratio {exp / nop:.2f}")
        print(f"CPU per request: exporter {mean(cpu['exporter']):.1f} µs, no-op {mean(cpu['noop']):.1f} µs")
        if args.compare:
            cmp_ = sum(rates["compare"]) / len(rates["compare"])
            print(f"compare  {cmp_:,.0f} req/s, ratio {cmp_ / nop:.2f}, "
                  f"CPU per request {mean(cpu['compare']):.1f} µs")
        print(f"stored defects counted by /metrics: {stored(args.port)} (requests completed: {sent})")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
