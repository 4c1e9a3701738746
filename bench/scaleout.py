"""Verify throughput with three instances beside one (`python3 bench/run.py --only scaleout`).

Issue 23, must 5. Deployed as docs/SCALING.md describes, on one machine: one PostgreSQL database
(bench/pg.py: fresh, migrated by its owner, served as gatehouse_app under row-level security),
one Redis (GH_TEST_REDIS_URL, default redis://127.0.0.1:6379) carrying revocations and the rate
limits (`rate_limits.store = "redis"`, quotas raised far above the load so every request still
pays its limiter decision in Redis but none is refused), one master key, three `gatehouse serve`
processes. No reverse proxy: the load generator spreads the connections itself, so the figure is
Gatehouse's and not a proxy's.

Load: GET /v1/auth/verify with one access token (signed in once; each instance has the session
cached after its first verify), as three wrk processes of one thread each sharing the
connections (16: 6 + 5 + 5). "one": all three aim at instance 1; "three": one at each instance.
The bare baseline (crates/gatehouse-bench) takes the same three wrk processes in the same run.
The topologies alternate over the rounds; medians are reported, with each round's figures, and
the servers' CPU time per request (all instances together, from /proc/<pid>/stat).

On a machine with few cores the three instances and the load generator share them: the ratio
shows what running three processes costs against one (overhead or equivalence), not what three
hosts would give.
"""

import argparse
import base64
import os
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pg
import run as R

QUOTA = "1000000000"


def redis_url() -> str:
    return os.environ.get("GH_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def require_redis(url: str) -> None:
    u = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=2) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                raise RuntimeError("no PONG")
    except (OSError, RuntimeError) as e:
        raise SystemExit(f"scaleout: Redis at {url} does not answer ({e}); it is part of the "
                         "deployment this measures") from e


def redis_script_calls(url: str) -> int:
    """EVALSHA calls Redis has served (the limiter's decisions), from INFO commandstats."""
    u = urllib.parse.urlsplit(url)
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379), timeout=2) as s:
        s.sendall(b"INFO commandstats\r\n")
        data = b""
        while b"\r\n" not in data:
            data += s.recv(65536)
        header, _, body = data.partition(b"\r\n")
        size = int(header[1:])  # a bulk reply: $<length>
        while len(body) < size:
            body += s.recv(65536)
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def split(total: int, parts: int) -> list:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def load(ports, args, headers, pids, redis=None) -> dict:
    """Three wrk processes at once, the i-th at ports[i]; their sum, the servers' CPU, and (with
    `redis`) the limiter's decisions in Redis per request."""
    before = sum(cpu_ticks(p) for p in pids)
    scripts = redis_script_calls(redis) if redis else 0
    procs = [R.wrk(port, "/v1/auth/verify", args, headers=headers, threads=1, connections=c,
                   background=True)
             for port, c in zip(ports, split(args.connections, len(ports)))]
    parts = []
    for proc, cmd in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0, out
        parts.append(R.wrk_parse(out, cmd))
    ticks = sum(cpu_ticks(p) for p in pids) - before
    rps = sum(p["requests_per_sec"] for p in parts)
    decisions = (redis_script_calls(redis) - scripts) if redis else 0
    return {
        "redis_decisions_per_request": decisions / (rps * args.duration),
        "requests_per_sec": rps,
        "p99_ms": max(p["p99_ms"] for p in parts),
        "p50_ms": max(p["p50_ms"] for p in parts),
        "non_2xx": sum(p["non_2xx"] for p in parts),
        "server_cpu_us_per_request": ticks / os.sysconf("SC_CLK_TCK") * 1e6 / (rps * args.duration),
        "each": [p["requests_per_sec"] for p in parts],
        "commands": [p["command"] for p in parts],
    }


def run(args, results) -> None:
    url = redis_url()
    require_redis(url)
    binary = R.TARGET / "gatehouse"
    db = pg.Database(binary, prefix="gh_bench_scaleout")
    root = Path(f"/tmp/gatehouse-bench-scaleout-{os.getpid()}")
    key = base64.b64encode(os.urandom(32)).decode()
    prefix = f"gh-bench-{os.urandom(4).hex()}:"
    common = {
        "GATEHOUSE_LOG_LEVEL": "info",
        "GATEHOUSE_MASTER_KEY": key,
        "GATEHOUSE_DATABASE_URL": db.app_url(),
        "GATEHOUSE_REDIS_URL": url,
        "GATEHOUSE_RATE_LIMITS__STORE": "redis",
        "GATEHOUSE_RATE_LIMITS__REDIS_KEY_PREFIX": prefix,
        "GATEHOUSE_RATE_LIMITS__PER_IP__AUTH": QUOTA,
        "GATEHOUSE_RATE_LIMITS__PER_IP__READ": QUOTA,
        "GATEHOUSE_RATE_LIMITS__PER_IP__WRITE": QUOTA,
        "GATEHOUSE_RATE_LIMITS__PER_USER": QUOTA,
    }
    servers = []
    base = None
    runs = {"bare": [], "one": [], "three": []}
    try:
        bport = R.free_port()
        base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{bport}"])
        for i in range(3):
            d = root / f"i{i}"
            d.mkdir(parents=True)
            port = R.free_port()
            # One at a time: the first start on a fresh database makes the keys.
            proc = R.start_gatehouse(d, port, {**common, "GATEHOUSE_DATA_DIR": str(d)})
            R.wait_for(port, "/health/ready", time.perf_counter(), limit=60.0)
            servers.append((proc, port))
        R.wait_for(bport, "/health/live", time.perf_counter())
        ports = [p for _, p in servers]
        pids = [s.pid for s, _ in servers]
        status, _ = R.http_json(ports[0], "POST", "/v1/auth/signup", {
            "email": "scale@example.com", "password": "bench passphrase 1729",
            "name": "Bench", "organization_name": "Bench Org"})
        assert status == 202, status
        status, t = R.http_json(ports[0], "POST", "/v1/auth/login", {
            "email": "scale@example.com", "password": "bench passphrase 1729"})
        assert status == 200, status
        auth = f"Authorization: Bearer {t['access_token']}"
        for port in ports:
            status, _ = R.http_json(port, "GET", "/v1/auth/verify",
                                    headers={"Authorization": f"Bearer {t['access_token']}"})
            assert status == 200, (port, status)
        for rnd in range(args.rounds):
            order = ("one", "three") if rnd % 2 == 0 else ("three", "one")
            runs["bare"].append(load([bport] * 3, args, [], [base.pid]))
            for topo in order:
                target = [ports[0]] * 3 if topo == "one" else ports
                r = load(target, args, [auth], pids, redis=url)
                assert r["non_2xx"] == 0, (topo, r)
                runs[topo].append(r)
    finally:
        for proc, _ in servers:
            assert R.stop(proc) == 0, "gatehouse did not exit 0 on SIGTERM"
        if base:
            R.stop(base)
        db.drop()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    summary = {name: {k: med([r[k] for r in rs]) for k in
                      ("requests_per_sec", "p50_ms", "p99_ms", "server_cpu_us_per_request")}
               for name, rs in runs.items()}
    summary["ratio_three_to_one"] = summary["three"]["requests_per_sec"] / summary["one"]["requests_per_sec"]
    summary["ratio_one_to_bare"] = summary["one"]["requests_per_sec"] / summary["bare"]["requests_per_sec"]
    summary["ratio_three_to_bare"] = summary["three"]["requests_per_sec"] / summary["bare"]["requests_per_sec"]
    summary["rounds_three_to_one"] = [t["requests_per_sec"] / o["requests_per_sec"]
                                      for t, o in zip(runs["three"], runs["one"])]
    results["scaleout_runs"] = runs
    results["scaleout"] = summary


def report(results) -> None:
    s = results["scaleout"]
    runs = results["scaleout_runs"]
    print(f"\nGET /v1/auth/verify, PostgreSQL + Redis (limits and revocations), wrk x3 -t1, "
          f"{results['load']['connections']} connections in all, {results['load']['duration_s']} s, "
          f"{os.cpu_count()} CPUs, medians of {len(runs['one'])} rounds")
    print(f"{'':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'server CPU us/req':>19}  each round (req/s)")
    for name, label in (("bare", "bare baseline"), ("one", "one instance"), ("three", "three instances")):
        r = s[name]
        each = ", ".join(f"{x['requests_per_sec']:.0f}" for x in runs[name])
        print(f"{label:<26}{r['requests_per_sec']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
              f"{r['server_cpu_us_per_request']:>19.1f}  {each}")
    print("limiter decisions in Redis per verify: " + ", ".join(
        f"{name} {sorted(r['redis_decisions_per_request'] for r in runs[name])[len(runs[name]) // 2]:.2f}"
        for name in ("one", "three")))
    print(f"three / one: {s['ratio_three_to_one']:.3f} (each round: "
          f"{', '.join(f'{x:.3f}' for x in s['rounds_three_to_one'])}); one / bare "
          f"{s['ratio_one_to_bare']:.3f}; three / bare {s['ratio_three_to_bare']:.3f}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rounds", type=int, default=3, help="scaleout: rounds of one and three")
