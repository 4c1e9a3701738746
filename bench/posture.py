#!/usr/bin/env python3
"""How long the posture report (H3) takes on a deployment with many organisations.

In one run, on 127.0.0.1 only, for each backend asked for (SQLite, and PostgreSQL served as
gatehouse_app with row-level security on):
  1. `gatehouse serve` starts on a fresh data directory (or database);
  2. --orgs sign-ups make that many users and organisations, each with its audit chain, data key
     and sealed personal data; the checkpoint job (every 2 s here) then signs every chain;
  3. an operator signs in, and GET /admin/v1/posture is called --rounds times one after another,
     alternating with GET /admin/v1/health (readiness with details, through the same edge and
     operator authentication): the baseline measured in the same run.
It prints, per backend: the report's own `elapsed_ms` (p50, p99, max), the client's wall-clock
time for each of the two endpoints (p50, p99) and their ratio, the slowest checks, and how
many chains and organisations the sampling checks read. Writes bench/out/posture.json.

Usage: python3 bench/posture.py [--bin target/release/gatehouse] [--orgs 1000] [--rounds 50]
                                [--backend sqlite|postgres|both] [--deep 40 [--deep-events 100]]
  --deep N: the first N organisations get --deep-events audited changes each after their chains
  were signed (the checkpoint job idle), so E1 recomputes its cap of 100 events on every chain
  it reads: its worst case.
Needs a built binary (cargo build --release -p gatehouse), and for PostgreSQL the server at
GH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) and psql.
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench passphrase 1729"
OPERATOR = "ops@bench.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, token=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, data


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def deep_events(port, orgs, events):
    """`events` audited changes (API keys made) in each of the first `orgs` organisations, after
    their chains were signed: the events E1 recomputes at its cap."""
    def one(i):
        status, body = call(port, "POST", "/v1/auth/login",
                            {"email": f"u{i}@org{i}.bench.example", "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"login {i}: {status} {body[:200]}")
        signed = json.loads(body)
        token, org = signed["access_token"], signed["organization_id"]
        for n in range(events):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("POST", "/v1/api-keys", body=json.dumps({"name": f"k{n}", "permissions": ["audit.read"]}),
                         headers={"content-type": "application/json",
                                  "authorization": f"Bearer {token}", "x-organization-id": org})
            res = conn.getresponse()
            res.read()
            conn.close()
            if res.status != 201:
                raise RuntimeError(f"api key {i}/{n}: {res.status}")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(orgs)))


def run_backend(args, backend):
    work = Path(tempfile.mkdtemp(prefix="gh-posture-bench-"))
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "GATEHOUSE_LISTEN": f"127.0.0.1:{port}",
        "GATEHOUSE_DATA_DIR": str(work / "data"),
        "GATEHOUSE_LOG_LEVEL": "warn",
        "GATEHOUSE_RATE_LIMITS__ENABLED": "false",
        # Every 2 s, so every chain is signed before measuring; with --deep, the job is left
        # idle and one `gatehouse audit checkpoint` signs the chains before the deep events.
        "GATEHOUSE_AUDIT__CHECKPOINT_INTERVAL_SECS": "3600" if args.deep else "2",
        "GATEHOUSE_MAIL__POLL_INTERVAL_MS": "3600000",
        "GATEHOUSE_PASSWORD_HASHING__QUEUE": "4096",
        "GATEHOUSE_MASTER_KEY": base64.b64encode(os.urandom(32)).decode(),
    }
    db = None
    if backend == "postgres":
        db = pg.Database(Path(args.bin))
        env["GATEHOUSE_DATABASE_URL"] = db.app_url(host="127.0.0.1")
    admin = subprocess.run([args.bin, "admin", "create-operator", "--email", OPERATOR, "--name", "Ops"],
                           input=PASSWORD, text=True, env=env, cwd=work, capture_output=True)
    if admin.returncode != 0:
        sys.exit(f"create-operator failed: {admin.stderr}")
    server = subprocess.Popen([args.bin, "serve"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                if call(port, "GET", "/health/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        started = time.time()

        def signup(i):
            status, body = call(port, "POST", "/v1/auth/signup", {
                "email": f"u{i}@org{i}.bench.example", "name": f"User {i}",
                "organization_name": f"Org {i}", "password": PASSWORD})
            if status != 202:
                raise RuntimeError(f"signup {i}: {status} {body[:200]}")

        # The deep organisations first, so they are the oldest: the first the rotation reads.
        for i in range(args.deep):
            signup(i)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(signup, range(args.deep, args.orgs)))
        if args.deep:
            done = subprocess.run([args.bin, "audit", "checkpoint"], env=env, cwd=work,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"audit checkpoint: {done.stderr}")
            deep_events(port, args.deep, args.deep_events)
        else:
            # Every chain signed at least once before measuring (the job runs every 2 s).
            time.sleep(5)
        made = time.time() - started
        status, body = call(port, "POST", "/admin/v1/auth/login",
                            {"email": OPERATOR, "password": PASSWORD})
        if status != 200:
            sys.exit(f"operator login: {status} {body[:200]}")
        token = json.loads(body)["access_token"]
        server_ms, posture_ms, health_ms, reports = [], [], [], []
        for i in range(args.rounds + 3):
            t = time.perf_counter()
            status, body = call(port, "GET", "/admin/v1/posture", token=token)
            p = (time.perf_counter() - t) * 1000
            if status != 200:
                sys.exit(f"posture: {status} {body[:300]}")
            t = time.perf_counter()
            status, _ = call(port, "GET", "/admin/v1/health", token=token)
            h = (time.perf_counter() - t) * 1000
            if i < 3:  # warm-up: the pools' connections and the caches
                continue
            report = json.loads(body)
            reports.append(report)
            server_ms.append(report["elapsed_ms"])
            posture_ms.append(p)
            health_ms.append(h)
        last = reports[-1]
        slowest = sorted(last["controls"], key=lambda c: -c["check_ms"])[:5]
        figures = {c["id"]: c["figures"] for c in last["controls"] if c["id"] in ("E1", "D1", "A1")}
        out = {
            "backend": backend, "orgs": args.orgs, "rounds": args.rounds,
            "deep": args.deep, "deep_events": args.deep_events if args.deep else 0,
            "signup_seconds": round(made, 1),
            "report_elapsed_ms": {"p50": pct(server_ms, 50), "p99": pct(server_ms, 99), "max": max(server_ms)},
            "posture_wall_ms": {"p50": round(pct(posture_ms, 50), 2), "p99": round(pct(posture_ms, 99), 2)},
            "health_wall_ms": {"p50": round(pct(health_ms, 50), 2), "p99": round(pct(health_ms, 99), 2)},
            "ratio_p50": round(pct(posture_ms, 50) / pct(health_ms, 50), 2),
            "slowest_checks": [(c["id"], c["check_ms"]) for c in slowest],
            "sampling_figures": figures,
            "e1_events_recomputed_max": max(
                next(c for c in r["controls"] if c["id"] == "E1")["figures"].get("events_recomputed", 0)
                for r in reports),
            "timed_out_checks": sum(
                1 for r in reports for c in r["controls"] if "did not finish within" in c["evidence"]),
            "summary": last["summary"],
        }
        return out
    finally:
        server.terminate()
        server.wait(timeout=30)
        if db:
            db.drop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "gatehouse"))
    ap.add_argument("--orgs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--deep", type=int, default=0,
                    help="organisations given --deep-events unsigned events each (E1's worst case)")
    ap.add_argument("--deep-events", type=int, default=100)
    args = ap.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [run_backend(args, b) for b in backends]
    for r in results:
        deep = f", {r['deep']} of them with {r['deep_events']} unsigned events" if r["deep"] else ""
        print(f"\n{r['backend']}: {r['orgs']} organisations{deep} (made in {r['signup_seconds']} s), {r['rounds']} reports")
        e = r["report_elapsed_ms"]
        print(f"  report elapsed_ms (server): p50 {e['p50']:.2f}  p99 {e['p99']:.2f}  max {e['max']:.2f}")
        print(f"  GET /admin/v1/posture wall: p50 {r['posture_wall_ms']['p50']} ms  p99 {r['posture_wall_ms']['p99']} ms")
        print(f"  GET /admin/v1/health  wall: p50 {r['health_wall_ms']['p50']} ms  p99 {r['health_wall_ms']['p99']} ms (baseline)")
        print(f"  ratio posture/health p50: {r['ratio_p50']}x")
        print(f"  slowest checks (ms): {r['slowest_checks']}")
        print(f"  sampling: {json.dumps(r['sampling_figures'])}")
        print(f"  E1 events recomputed in one report, most: {r['e1_events_recomputed_max']}; "
              f"checks past the deadline over all reports: {r['timed_out_checks']}")
        print(f"  verdicts: {r['summary']}")
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "posture.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
