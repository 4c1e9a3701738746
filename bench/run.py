#!/usr/bin/env python3
"""Gatehouse benchmark harness.

In one run, on 127.0.0.1 only:
  1. a bare axum hello-world (crates/gatehouse-bench) and Gatehouse are each driven by the same
     load generator (wrk, from Debian's `wrk` package) with the same connections and duration;
  2. Gatehouse's time from process start to a 200 on /health/ready is measured on a fresh and on an
     existing data directory, and its idle resident memory (VmRSS) after start-up;
  3. identity (issue 5): GET /v1/auth/verify with a valid token at the same load as the baseline,
     sign-in throughput against the Argon2id bound (CPUs / one verification's time, measured by
     bench-argon2-time), and /v1/auth/verify latency at a light load while idle and during a
     sign-in flood at 32 connections.
It prints requests/s, p50 and p99 for each, the ratio Gatehouse/baseline, and writes the figures
as JSON to bench/out/latest.json.

Usage: python3 bench/run.py [--duration 10] [--connections 16] [--threads 2] [--skip-build]
                            [--only telemetry|endpoints|writes|access|lifecycle|links|backup|scaleout|connectors]
                            (one section, see bench/endpoints.py, bench/access.py,
                            bench/lifecycle.py, bench/scaleout.py and bench/connectors.py)
"""

import argparse
import signal
import base64
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target" / "release"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_status(port: int, path: str) -> int:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


def wait_for(port: int, path: str, started: float, limit: float = 30.0) -> float:
    """Seconds from `started` until `path` answers 200, polling every millisecond."""
    while time.perf_counter() - started < limit:
        if get_status(port, path) == 200:
            return time.perf_counter() - started
        time.sleep(0.001)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not become ready within {limit}s")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_latency(text: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        raise RuntimeError(f"wrk output has no {pct}% line:\n{text}")
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk(port: int, path: str, args, headers=(), script=None, threads=None, connections=None,
        background=False):
    cmd = [
        "wrk", f"-t{threads or args.threads}", f"-c{connections or args.connections}",
        f"-d{args.duration}s", "--latency",
    ]
    for h in headers:
        cmd += ["-H", h]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), cmd
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return wrk_parse(out, cmd)


def wrk_parse(out: str, cmd) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "requests_per_sec": rps,
        "p50_ms": parse_latency(out, "50"),
        "p99_ms": parse_latency(out, "99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "command": " ".join(c if not c.startswith("Authorization") else "Authorization: Bearer <token>" for c in cmd),
    }


def http_json(port: int, method: str, path: str, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    h = {"content-type": "application/json"} if body is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    res = conn.getresponse()
    payload = res.read()
    conn.close()
    return res.status, (json.loads(payload) if payload else None)


def probe(port: int, token: str, secs: int, rate: int = 500) -> dict:
    out = subprocess.run(
        [str(TARGET / "verify-probe"), f"http://127.0.0.1:{port}/v1/auth/verify", token,
         str(rate), str(secs)], check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    r["command"] = f"verify-probe http://127.0.0.1:{port}/v1/auth/verify <token> {rate} {secs}"
    return r


LOGIN_LUA = """
wrk.method = "POST"
wrk.body = '{"email":"bench@example.com","password":"bench passphrase 1729","device_name":"wrk"}'
wrk.headers["Content-Type"] = "application/json"
"""


def identity(args, results) -> None:
    """Issue 5's figures, in the same run as the baseline."""
    hash_s = float(subprocess.run([str(TARGET / "argon2-time"), "40"], check=True,
                                  capture_output=True, text=True).stdout)
    cpus = os.cpu_count()
    results["argon2_verify_ms"] = hash_s * 1e3
    results["argon2_bound_logins_per_sec"] = cpus / hash_s
    data_root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-id-"))
    lua = data_root / "login.lua"
    lua.write_text(LOGIN_LUA)
    secret_file = data_root / "service.key"
    service_secret = base64.b64encode(os.urandom(32)).decode()
    secret_file.write_text(service_secret)
    secret_file.chmod(0o600)
    port = free_port()
    t0 = time.perf_counter()
    # Rate limits and lockouts off: this measures the endpoints, not the limiter refusing wrk.
    gh = start_gatehouse(data_root, port, {
        "GATEHOUSE_LOG_LEVEL": "info",
        "GATEHOUSE_RATE_LIMITS__ENABLED": "false",
        "GATEHOUSE_SERVICE_AUTH__SECRET_FILES": json.dumps([str(secret_file)]),
    })
    try:
        wait_for(port, "/health/ready", t0)
        status, _ = http_json(port, "POST", "/v1/auth/signup", {
            "email": "bench@example.com", "password": "bench passphrase 1729",
            "name": "Bench", "organization_name": "Bench Org"})
        assert status == 202, status
        status, tokens = http_json(port, "POST", "/v1/auth/login", {
            "email": "bench@example.com", "password": "bench passphrase 1729"})
        assert status == 200, status
        auth = f"Authorization: Bearer {tokens['access_token']}"
        status, _ = http_json(port, "GET", "/v1/auth/verify",
                              headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert status == 200, status

        results["verify_16"] = wrk(port, "/v1/auth/verify", args, headers=[auth])
        status, key = http_json(port, "POST", "/v1/api-keys",
                                {"name": "bench", "permissions": ["audit.read"]},
                                headers={"Authorization": f"Bearer {tokens['access_token']}",
                                         "x-organization-id": tokens["organization_id"]})
        assert status == 202, status
        results["verify_api_key_16"] = wrk(port, "/v1/auth/verify", args,
                                           headers=[f"Authorization: Bearer {key['key']}"])
        key_lua = data_root / "key.lua"
        key_lua.write_text(
            'wrk.method = "POST"\n'
            f'wrk.body = \'{{"key":"{key["key"]}"}}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["X-Service-Auth"] = "{service_secret}"\n')
        results["internal_key_verify_16"] = wrk(port, "/internal/v1/api-keys/verify", args,
                                                script=key_lua)
        # Transit (issue 8): encrypt 256 bytes with an API key, one item and a batch of 100.
        status, tkey = http_json(port, "POST", "/v1/api-keys",
                                 {"name": "transit", "permissions": ["transit.encrypt"]},
                                 headers={"Authorization": f"Bearer {tokens['access_token']}",
                                          "x-organization-id": tokens["organization_id"]})
        assert status == 202, status
        plain = base64.b64encode(os.urandom(256)).decode()
        transit_headers = (
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {tkey["key"]}"\n'
            f'wrk.headers["x-organization-id"] = "{tokens["organization_id"]}"\n')
        one_lua = data_root / "transit1.lua"
        one_body = json.dumps({"plaintext": plain, "context": "bench/row"})
        one_lua.write_text(transit_headers + f"wrk.body = '{one_body}'\n")
        status, _ = http_json(port, "POST", "/v1/transit/encrypt",
                              {"plaintext": plain, "context": "bench/row"},
                              headers={"Authorization": f"Bearer {tkey['key']}",
                                       "x-organization-id": tokens["organization_id"]})
        assert status == 200, status
        results["transit_encrypt_16"] = wrk(port, "/v1/transit/encrypt", args, script=one_lua)
        batch_lua = data_root / "transit100.lua"
        batch_body = json.dumps(
            {"batch": [{"plaintext": plain, "context": f"bench/{i}"} for i in range(100)]})
        batch_lua.write_text(transit_headers + f"wrk.body = '{batch_body}'\n")
        results["transit_encrypt_batch100_16"] = wrk(port, "/v1/transit/encrypt", args,
                                                     script=batch_lua)
        results["login_32"] = wrk(port, "/v1/auth/login", args, script=lua, connections=32)
        # Verify latency as a client sees it: an open-loop probe at a fixed 500 req/s, idle and
        # during a sign-in flood at 32 connections.
        probe_secs = max(3, args.duration - 2)
        results["verify_probe_idle"] = probe(port, tokens["access_token"], probe_secs)
        flood, flood_cmd = wrk(port, "/v1/auth/login", args, script=lua, connections=32,
                               background=True)
        time.sleep(1.0)
        results["verify_probe_during_flood"] = probe(port, tokens["access_token"], probe_secs)
        out, _ = flood.communicate()
        results["login_flood"] = wrk_parse(out, flood_cmd)
    finally:
        assert stop(gh) == 0, "gatehouse did not exit 0 on SIGTERM"
        shutil.rmtree(data_root, ignore_errors=True)


TEL_ORDER = tuple(os.environ.get("GH_BENCH_TEL_ORDER", "on,off").split(","))


def cpu_ticks(pid: int) -> int:
    """utime + stime of `pid`, in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def telemetry_overhead(args, results) -> None:
    """Issue 9, must 7: the metrics and logging layers' cost on GET /v1/auth/verify. Two servers
    on one data directory, one with metrics and the access log on (the defaults), one with both
    off (metrics.enabled = false, log_level = warn), loaded in turn, six rounds each, in this run.
    Reports each one's median throughput and the server's CPU time per request (from
    /proc/<pid>/stat), which a neighbour's load on a shared machine moves less than throughput."""
    data_root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-tel-"))
    common = {"GATEHOUSE_RATE_LIMITS__ENABLED": "false"}
    envs = {"on": {**common, "GATEHOUSE_LOG_LEVEL": "info"},
            "off": {**common, "GATEHOUSE_LOG_LEVEL": "warn", "GATEHOUSE_METRICS__ENABLED": "false"}}
    # For looking into one layer at a time: extra settings for the "on" server.
    envs["on"].update(json.loads(os.environ.get("GH_BENCH_TEL_ON_EXTRA", "{}")))
    procs = {}
    try:
        for name, env in envs.items():
            port = free_port()
            procs[name] = (start_gatehouse(data_root, port, env), port)
            wait_for(port, "/health/ready", time.perf_counter())
        port = procs["on"][1]
        status, _ = http_json(port, "POST", "/v1/auth/signup", {
            "email": "tel@example.com", "password": "bench passphrase 1729",
            "name": "Bench", "organization_name": "Bench Org"})
        assert status == 202, status
        status, tokens = http_json(port, "POST", "/v1/auth/login", {
            "email": "tel@example.com", "password": "bench passphrase 1729"})
        assert status == 200, status
        auth = f"Authorization: Bearer {tokens['access_token']}"
        round_args = argparse.Namespace(**{**vars(args), "duration": max(3, args.duration // 2)})
        runs = {"on": [], "off": []}
        for rnd in range(6):
            # The order flips every round: a machine that speeds up or slows down through the
            # run (a neighbour's load coming or going) would otherwise favour whichever ran second.
            for name in (TEL_ORDER if rnd % 2 == 0 else TEL_ORDER[::-1]):
                proc, port = procs[name]
                before = cpu_ticks(proc.pid)
                r = wrk(port, "/v1/auth/verify", round_args, headers=[auth])
                ticks = cpu_ticks(proc.pid) - before
                assert r["non_2xx"] == 0, r
                served = r["requests_per_sec"] * round_args.duration
                r["server_cpu_us_per_request"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / served
                runs[name].append(r)
        results["telemetry_verify_runs"] = runs
        med = lambda xs: sorted(xs)[len(xs) // 2]
        for name in runs:
            results[f"telemetry_verify_{name}_rps"] = med([r["requests_per_sec"] for r in runs[name]])
            results[f"telemetry_verify_{name}_cpu_us"] = med([r["server_cpu_us_per_request"] for r in runs[name]])
        results["telemetry_overhead"] = 1.0 - results["telemetry_verify_on_rps"] / results["telemetry_verify_off_rps"]
        results["telemetry_cpu_overhead"] = (results["telemetry_verify_on_cpu_us"] / results["telemetry_verify_off_cpu_us"]) - 1.0
    finally:
        for proc, _ in procs.values():
            assert stop(proc) == 0, "gatehouse did not exit 0 on SIGTERM"
        shutil.rmtree(data_root, ignore_errors=True)


def telemetry_instructions(results, requests: int = 2000, rounds: int = int(os.environ.get("GH_BENCH_IR_ROUNDS", "3"))) -> None:
    """The same comparison counted in instructions (valgrind's callgrind: the same count for the
    same binary and inputs whatever else the machine is doing). Each server runs under callgrind,
    takes 200 requests to warm up, has its counters zeroed, then serves `requests` sequential
    GET /v1/auth/verify on one keep-alive connection; every thread counts (the log writer too)."""
    import http.client
    if not shutil.which("valgrind"):
        print("valgrind not found: instruction counts skipped", file=sys.stderr)
        return
    data_root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-ir-"))
    common = {"GATEHOUSE_RATE_LIMITS__ENABLED": "false"}
    envs = {"on": {**common, "GATEHOUSE_LOG_LEVEL": "info"},
            "off": {**common, "GATEHOUSE_LOG_LEVEL": "warn", "GATEHOUSE_METRICS__ENABLED": "false"}}
    token = None
    counts = {"on": [], "off": []}
    try:
        for rnd in range(rounds):
            for name, env in envs.items():
                port = free_port()
                out = data_root / f"callgrind.{rnd}.{name}"
                full_env = {"PATH": os.environ.get("PATH", ""), "GATEHOUSE_LISTEN": f"127.0.0.1:{port}", **env}
                proc = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p",
                     str(TARGET / "gatehouse"), "serve"],
                    cwd=data_root, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_for(port, "/health/ready", time.perf_counter(), limit=120.0)
                    if token is None:
                        status, _ = http_json(port, "POST", "/v1/auth/signup", {
                            "email": "ir@example.com", "password": "bench passphrase 1729",
                            "name": "Bench", "organization_name": "Bench Org"})
                        assert status == 202, status
                        status, tokens = http_json(port, "POST", "/v1/auth/login", {
                            "email": "ir@example.com", "password": "bench passphrase 1729"})
                        assert status == 200, status
                        token = tokens["access_token"]
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    def run(n):
                        for _ in range(n):
                            conn.request("GET", "/v1/auth/verify", headers={"Authorization": f"Bearer {token}"})
                            r = conn.getresponse()
                            r.read()
                            assert r.status == 200, r.status
                    run(200)
                    subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                                   capture_output=True)
                    run(requests)
                    subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], check=True,
                                   capture_output=True)
                    conn.close()
                finally:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=120)
                total = 0
                for f in data_root.glob(f"callgrind.{rnd}.{name}.*"):
                    text = f.read_text(errors="replace")
                    if re.search(r"^desc: Trigger: dump measured$", text, re.M):
                        total += int(re.search(r"^summary:\s+(\d+)", text, re.M).group(1))
                assert total > 0, f"no callgrind dump for {name}"
                counts[name].append(total / requests)
        results["telemetry_verify_instruction_runs"] = counts
        for name in counts:
            results[f"telemetry_verify_{name}_instructions"] = sorted(counts[name])[len(counts[name]) // 2]
        results["telemetry_instruction_overhead"] = (
            results["telemetry_verify_on_instructions"] / results["telemetry_verify_off_instructions"] - 1.0)
    finally:
        if os.environ.get("GH_BENCH_KEEP_CALLGRIND"):
            print(f"callgrind files kept in {data_root}", file=sys.stderr)
        else:
            shutil.rmtree(data_root, ignore_errors=True)


def start_gatehouse(data_root: Path, port: int, extra_env=None) -> subprocess.Popen:
    env = {"PATH": os.environ.get("PATH", ""), "GATEHOUSE_LISTEN": f"127.0.0.1:{port}"}
    env.update(extra_env or {})
    return subprocess.Popen(
        [str(TARGET / "gatehouse"), "serve"], cwd=data_root, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_port(port: int, limit: float = 10.0) -> None:
    """Returns once something accepts connections on 127.0.0.1:`port`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen) -> int:
    proc.terminate()
    return proc.wait(timeout=30)


def cpus_text() -> str:
    return f"{os.cpu_count()} CPUs"


def print_telemetry(results) -> None:
    print()
    if "telemetry_verify_runs" not in results:
        results["telemetry_verify_runs"] = {}
    for name, runs in results["telemetry_verify_runs"].items():
        figures = ", ".join(f"{r['requests_per_sec']:.0f}" for r in runs)
        cpu = ", ".join(f"{r['server_cpu_us_per_request']:.1f}" for r in runs)
        print(f"GET /v1/auth/verify, metrics+access log {name:<3}: req/s {figures}; server CPU us/request {cpu}")
    if "telemetry_overhead" in results:
        print(f"metrics and logging overhead on verify (medians): throughput {results['telemetry_overhead'] * 100:.1f} % "
              f"({results['telemetry_verify_on_rps']:.0f} vs {results['telemetry_verify_off_rps']:.0f} req/s), "
              f"server CPU per request {results['telemetry_cpu_overhead'] * 100:.1f} % "
              f"({results['telemetry_verify_on_cpu_us']:.1f} vs {results['telemetry_verify_off_cpu_us']:.1f} us); target <= 5 %")
    if "telemetry_instruction_overhead" in results:
        runs = results["telemetry_verify_instruction_runs"]
        print(f"instructions per verify, each round: on {', '.join(f'{x:.0f}' for x in runs['on'])}; "
              f"off {', '.join(f'{x:.0f}' for x in runs['off'])}")
        print(f"instructions per verify (callgrind, sequential, medians): on {results['telemetry_verify_on_instructions']:.0f}, "
              f"off {results['telemetry_verify_off_instructions']:.0f}: "
              f"{results['telemetry_instruction_overhead'] * 100:.1f} % more with metrics and logging on")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--only", choices=["telemetry", "endpoints", "writes", "access", "lifecycle", "links", "backup",
                                       "scaleout", "connectors"],
                    help="run one section only (no baseline)")
    import scaleout
    scaleout.add_arguments(ap)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is required: apt-get install wrk", file=sys.stderr)
        return 2
    if not args.skip_build:
        subprocess.run(
            ["cargo", "build", "--release", "-p", "gatehouse", "-p", "gatehouse-bench"],
            cwd=ROOT, check=True,
        )

    results = {"machine": {"cpus": os.cpu_count()}, "load": {
        "connections": args.connections, "threads": args.threads, "duration_s": args.duration}}

    if args.only == "endpoints":
        import endpoints
        endpoints.cpu_per_request(args, results)
        endpoints.instructions(results)
        endpoints.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "endpoints.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "writes":
        import endpoints
        endpoints.writes_under_load(args, results)
        endpoints.report_writes(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "writes.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "connectors":
        import connectors
        connectors.run(args, results)
        connectors.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "connectors.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "access":
        import access
        access.run(args, results)
        access.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "access.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "lifecycle":
        import lifecycle
        lifecycle.run(args, results)
        lifecycle.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "lifecycle.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "links":
        import links
        links.run(args, results)
        links.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "links.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "backup":
        import backup
        backup.run(args, results)
        backup.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "backup.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "scaleout":
        scaleout.run(args, results)
        scaleout.report(results)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "scaleout.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0

    if args.only == "telemetry":
        if not os.environ.get("GH_BENCH_ONLY_CALLGRIND"):
            telemetry_overhead(args, results)
        telemetry_instructions(results)
        print_telemetry(results)
        return 0

    # Baseline.
    port = free_port()
    base = subprocess.Popen([str(TARGET / "bench-baseline"), f"127.0.0.1:{port}"])
    try:
        wait_for(port, "/health/live", time.perf_counter())
        results["baseline_live"] = wrk(port, "/health/live", args)
    finally:
        stop(base)

    data_root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    try:
        # First start: creates the data directory, the key and the database.
        port = free_port()
        t0 = time.perf_counter()
        gh = start_gatehouse(data_root, port)
        results["ready_fresh_ms"] = wait_for(port, "/health/ready", t0) * 1e3
        assert stop(gh) == 0, "gatehouse did not exit 0 on SIGTERM"

        # Start on the existing data directory: the figure the target applies to.
        port = free_port()
        t0 = time.perf_counter()
        gh = start_gatehouse(data_root, port)
        results["ready_existing_ms"] = wait_for(port, "/health/ready", t0) * 1e3
        try:
            time.sleep(1.0)
            results["idle_rss_kib"] = rss_kib(gh.pid)
            results["gatehouse_live"] = wrk(port, "/health/live", args)
            results["rss_after_load_kib"] = rss_kib(gh.pid)
        finally:
            assert stop(gh) == 0, "gatehouse did not exit 0 on SIGTERM"

        # The same server without its per-request access log line: how much of the gap is logging.
        port = free_port()
        t0 = time.perf_counter()
        gh = start_gatehouse(data_root, port, {"GATEHOUSE_LOG_LEVEL": "warn"})
        wait_for(port, "/health/ready", t0)
        try:
            results["gatehouse_live_no_access_log"] = wrk(port, "/health/live", args)
        finally:
            assert stop(gh) == 0, "gatehouse did not exit 0 on SIGTERM"
    finally:
        shutil.rmtree(data_root, ignore_errors=True)

    identity(args, results)

    b, g = results["baseline_live"], results["gatehouse_live"]
    q = results["gatehouse_live_no_access_log"]
    results["ratio_live_rps"] = g["requests_per_sec"] / b["requests_per_sec"]
    results["ratio_live_rps_no_access_log"] = q["requests_per_sec"] / b["requests_per_sec"]

    print()
    print(f"load: wrk -t{args.threads} -c{args.connections} -d{args.duration}s on 127.0.0.1, {os.cpu_count()} CPUs")
    print(f"{'endpoint':<28}{'req/s':>12}{'p50 ms':>10}{'p99 ms':>10}")
    for name, r in (("baseline GET /health/live", b), ("gatehouse GET /health/live", g),
                    ("  same, log_level=warn", q)):
        print(f"{name:<28}{r['requests_per_sec']:>12.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}")
    print(f"ratio gatehouse/baseline (req/s): {results['ratio_live_rps']:.3f}  (target >= 0.85); "
          f"without the access log line {results['ratio_live_rps_no_access_log']:.3f}")
    print(f"idle RSS: {results['idle_rss_kib'] / 1024:.1f} MiB  (target <= 20 MB); after load {results['rss_after_load_kib'] / 1024:.1f} MiB")
    print(f"start to /health/ready: existing data dir {results['ready_existing_ms']:.1f} ms (target <= 200 ms); fresh {results['ready_fresh_ms']:.1f} ms")
    v = results["verify_16"]
    kv, ki = results["verify_api_key_16"], results["internal_key_verify_16"]
    results["ratio_api_key_verify_rps"] = kv["requests_per_sec"] / b["requests_per_sec"]
    results["ratio_internal_key_verify_rps"] = ki["requests_per_sec"] / b["requests_per_sec"]
    pi, pf = results["verify_probe_idle"], results["verify_probe_during_flood"]
    login = results["login_32"]
    results["ratio_verify_rps"] = v["requests_per_sec"] / b["requests_per_sec"]
    results["ratio_login_to_argon2_bound"] = login["requests_per_sec"] / results["argon2_bound_logins_per_sec"]
    results["verify_p99_flood_over_idle"] = pf["p99_ms"] / pi["p99_ms"]
    print()
    print(f"{'identity':<40}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for name, r in (("GET /v1/auth/verify, wrk -c16", v),
                    ("GET /v1/auth/verify, Bearer gk_, -c16", kv),
                    ("POST /internal/v1/api-keys/verify, -c16", ki),
                    ("POST /v1/auth/login, wrk -c32", login),
                    ("  the login flood (-c32) during the probe", results["login_flood"])):
        print(f"{name:<40}{r['requests_per_sec']:>10.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['non_2xx']:>9}")
    for name, r in (("verify probe 500/s, idle", pi), ("verify probe 500/s, during flood", pf)):
        print(f"{name:<40}{r['rate']:>10}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['failures']:>9}  max {r['max_ms']:.2f} ms")
    print(f"verify/baseline (req/s): {results['ratio_verify_rps']:.3f} (target >= 0.5); verify p99 {v['p99_ms']:.2f} ms (target <= 5 ms)")
    print(f"login/Argon2id bound: {results['ratio_login_to_argon2_bound']:.3f} (target >= 0.9); "
          f"bound {results['argon2_bound_logins_per_sec']:.1f}/s = {cpus_text()} / {results['argon2_verify_ms']:.2f} ms")
    print(f"verify p99 during flood / idle: {results['verify_p99_flood_over_idle']:.2f} (target <= 3)")
    print(f"API key on /v1/auth/verify / baseline: {results['ratio_api_key_verify_rps']:.3f}, p99 {kv['p99_ms']:.2f} ms; "
          f"internal key verify / baseline: {results['ratio_internal_key_verify_rps']:.3f}, p99 {ki['p99_ms']:.2f} ms (targets >= 0.7, p99 <= 2 ms)")
    t1, t100 = results["transit_encrypt_16"], results["transit_encrypt_batch100_16"]
    results["ratio_transit_encrypt_rps"] = t1["requests_per_sec"] / b["requests_per_sec"]
    results["transit_batch100_items_per_sec"] = t100["requests_per_sec"] * 100
    results["transit_batch100_us_per_item"] = 1e6 / results["transit_batch100_items_per_sec"]
    print()
    print(f"{'transit (API key, 256 B)':<40}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for name, r in (("POST /v1/transit/encrypt, one, -c16", t1),
                    ("POST /v1/transit/encrypt, batch 100, -c16", t100)):
        print(f"{name:<40}{r['requests_per_sec']:>10.0f}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['non_2xx']:>9}")
    print(f"transit encrypt / baseline (req/s): {results['ratio_transit_encrypt_rps']:.3f} (target >= 0.5); "
          f"batch of 100: {results['transit_batch100_items_per_sec']:.0f} items/s, "
          f"{results['transit_batch100_us_per_item']:.1f} us per item")
    telemetry_overhead(args, results)
    telemetry_instructions(results)
    print_telemetry(results)
    if b["non_2xx"] or g["non_2xx"]:
        print(f"WARNING: non-2xx responses: baseline {b['non_2xx']}, gatehouse {g['non_2xx']}")

    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
