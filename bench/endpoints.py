"""Where a request's time goes, endpoint by endpoint (`python3 bench/run.py --only endpoints`).

Two measures, each beside the bare baseline (crates/gatehouse-bench's hello-world) in the same run:

  1. CPU per request under load: wrk -t2 -c16 drives each endpoint; the server's user and system
     time (from /proc/<pid>/stat) and wrk's own CPU time (getrusage of the finished child) are
     divided by the requests served. On a two-core machine the load generator shares the CPUs, so
     the throughput ratio is roughly (wrk + bare) / (wrk + server) per request: this shows which
     side a change moved.
  2. Instructions per request: the server runs under valgrind's callgrind, takes 200 requests to
     warm up, has its counters zeroed, serves N sequential requests on one keep-alive connection
     and dumps; every thread counts. The same binary and inputs give the same count whatever
     else the machine does, so this is the measure to steer by; wall-clock figures here move by
     10 % or more between runs.

Endpoints: GET /health/live, GET /v1/auth/verify with an access token and with an API key,
POST /internal/v1/api-keys/verify, POST /v1/transit/encrypt (256 bytes, an API key). Rate limits
are off so the limiter does not refuse the load generator.

After the key verify, the internal key verify and the transit encrypt, the bare server is loaded once more on a route that
reads the same request and answers with the same bytes (headers and body) and does nothing else
(`bare_sized_verify`, `bare_sized_internal`, `bare_sized_transit`). On this machine wrk and the kernel pay per byte and
per wake-up, so that run is the most any server could reach with these answers; each endpoint is
also reported as a ratio to it.
"""

import argparse
import base64
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import run as R


class Endpoints:
    """A Gatehouse data directory with an account, an API key and the request for each endpoint."""

    def __init__(self, root: Path):
        self.root = root
        self.secret_file = root / "service.key"
        self.service_secret = base64.b64encode(os.urandom(32)).decode()
        self.secret_file.write_text(self.service_secret)
        self.secret_file.chmod(0o600)
        self.requests = {}

    def env(self, port: int) -> dict:
        return {
            "GATEHOUSE_LISTEN": f"127.0.0.1:{port}",
            "GATEHOUSE_LOG_LEVEL": "info",
            "GATEHOUSE_RATE_LIMITS__ENABLED": "false",
            "GATEHOUSE_SERVICE_AUTH__SECRET_FILES": json.dumps([str(self.secret_file)]),
        }

    def prepare(self, port: int) -> None:
        """Signs up once (the data directory keeps the account for later servers)."""
        if self.requests:
            return
        status, _ = R.http_json(port, "POST", "/v1/auth/signup", {
            "email": "ep@example.com", "password": "bench passphrase 1729",
            "name": "Bench", "organization_name": "Bench Org"})
        assert status == 202, status
        status, t = R.http_json(port, "POST", "/v1/auth/login", {
            "email": "ep@example.com", "password": "bench passphrase 1729"})
        assert status == 200, status
        org = t["organization_id"]
        self.owner_headers = {"Authorization": f"Bearer {t['access_token']}", "x-organization-id": org,
                              "Content-Type": "application/json"}
        status, k = R.http_json(port, "POST", "/v1/api-keys",
                                {"name": "bench", "permissions": ["audit.read", "transit.encrypt"]},
                                headers={"Authorization": f"Bearer {t['access_token']}",
                                         "x-organization-id": org})
        assert status == 202, status
        plain = base64.b64encode(os.urandom(256)).decode()
        self.requests = {
            "live": ("GET", "/health/live", {}, None),
            "verify_token": ("GET", "/v1/auth/verify",
                             {"Authorization": f"Bearer {t['access_token']}"}, None),
            "verify_api_key": ("GET", "/v1/auth/verify",
                               {"Authorization": f"Bearer {k['key']}"}, None),
            "internal_key_verify": ("POST", "/internal/v1/api-keys/verify",
                                    {"X-Service-Auth": self.service_secret,
                                     "Content-Type": "application/json"},
                                    json.dumps({"key": k["key"]})),
            "transit_encrypt": ("POST", "/v1/transit/encrypt",
                                {"Authorization": f"Bearer {k['key']}", "x-organization-id": org,
                                 "Content-Type": "application/json"},
                                json.dumps({"plaintext": plain, "context": "bench/row"})),
        }

    def lua(self, name: str) -> Path:
        method, _, headers, body = self.requests[name]
        lines = [f'wrk.method = "{method}"']
        lines += [f'wrk.headers["{h}"] = "{v}"' for h, v in headers.items()]
        if body is not None:
            lines.append(f"wrk.body = '{body}'")
        path = self.root / f"{name}.lua"
        path.write_text("\n".join(lines) + "\n")
        return path


def cpu_split(pid: int) -> tuple:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def load(pid: int, port: int, path: str, args, script=None) -> dict:
    """One wrk run; the server's user and system time and wrk's CPU time per request."""
    tick = os.sysconf("SC_CLK_TCK")
    u0, s0 = cpu_split(pid)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = R.wrk(port, path, args, script=script)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    u1, s1 = cpu_split(pid)
    served = r["requests_per_sec"] * args.duration
    r["server_user_us"] = (u1 - u0) / tick * 1e6 / served
    r["server_sys_us"] = (s1 - s0) / tick * 1e6 / served
    r["wrk_us"] = ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) * 1e6 / served
    return r


# The bare server's routes that answer with an endpoint's bytes and do nothing else (see
# crates/gatehouse-bench/src/bin/bench-baseline.rs): what the request and answer sizes alone cost
# here, measured right after the endpoint with the same wrk script.
SIZED = {"verify_api_key": ("bare_sized_verify", "/sized"),
         "internal_key_verify": ("bare_sized_internal", "/sized-internal"),
         "transit_encrypt": ("bare_sized_transit", "/sized-transit")}


def answer_shape(port: int, method: str, path: str, headers: dict, body) -> tuple:
    """Header names, their values' total length and the body's length of one answer: what the
    bare server's fixed answers must match for their runs to measure Gatehouse's bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        data = res.read()
        fields = [(k.lower(), v) for k, v in res.getheaders() if k.lower() != "date"]
        return res.status, sorted(k for k, _ in fields), sum(len(v) for _, v in fields), len(data)
    finally:
        conn.close()


def cpu_per_request(args, results, rounds: int = int(os.environ.get("GH_BENCH_EP_ROUNDS", "3"))) -> None:
    """Both servers run side by side (an idle one costs nothing); each round loads the bare
    baseline and then one endpoint, so every ratio compares two neighbouring runs. The median
    over rounds is reported: on a shared machine the baseline alone moved from 47k to 61k req/s
    between two runs of the same day."""
    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-ep-"))
    runs = {}
    try:
        bport = R.free_port()
        base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{bport}"])
        ep = Endpoints(root)
        port = R.free_port()
        gh = R.start_gatehouse(root, port, ep.env(port))
        try:
            R.wait_for(bport, "/health/live", time.perf_counter())
            R.wait_for(port, "/health/ready", time.perf_counter())
            ep.prepare(port)
            for name, (_, sized_path) in SIZED.items():
                method, path, headers, body = ep.requests[name]
                real = answer_shape(port, method, path, headers, body)
                fixed = answer_shape(bport, method, sized_path, headers, body)
                assert real == fixed, f"{sized_path} no longer sends {name}'s bytes: {fixed} vs {real}"
            for _ in range(rounds):
                for name, (_, path, _, _) in ep.requests.items():
                    b = load(base.pid, bport, "/health/live", args)
                    r = load(gh.pid, port, path, args, script=ep.lua(name))
                    assert r["non_2xx"] == 0, (name, r)
                    r["ratio"] = r["requests_per_sec"] / b["requests_per_sec"]
                    if name in SIZED:
                        label, sized_path = SIZED[name]
                        s = load(base.pid, bport, sized_path, args, script=ep.lua(name))
                        assert s["non_2xx"] == 0, (label, s)
                        s["ratio"] = s["requests_per_sec"] / b["requests_per_sec"]
                        r["ratio_to_sized"] = r["requests_per_sec"] / s["requests_per_sec"]
                        runs.setdefault(label, []).append(s)
                    runs.setdefault("bare_live", []).append(b)
                    runs.setdefault(name, []).append(r)
        finally:
            R.stop(base)
            assert R.stop(gh) == 0, "gatehouse did not exit 0 on SIGTERM"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = lambda xs: sorted(xs)[len(xs) // 2]
    summary = {}
    for name, rs in runs.items():
        summary[name] = {k: med([r[k] for r in rs]) for k in
                         ("requests_per_sec", "p99_ms", "server_user_us", "server_sys_us", "wrk_us")}
        if name != "bare_live":
            summary[name]["ratio"] = med([r["ratio"] for r in rs])
            summary[name]["ratios"] = [r["ratio"] for r in rs]
        if name in SIZED:
            summary[name]["ratio_to_sized"] = med([r["ratio_to_sized"] for r in rs])
    results["endpoint_cpu_runs"] = runs
    results["endpoint_cpu"] = summary


def writes_under_load(args, results, quiet: int = 50, loaded: int = 150) -> None:
    """How long a write (POST /v1/api-keys, one transaction with its audit event) takes while
    transit encrypt runs under wrk -t2 -c16: on SQLite the write has to take its turn beside the
    audit writer's batches. One write every 10 ms on its own connection, first with the server
    idle, then under load."""
    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-writes-"))
    try:
        ep = Endpoints(root)
        port = R.free_port()
        gh = R.start_gatehouse(root, port, ep.env(port))
        try:
            R.wait_for(port, "/health/ready", time.perf_counter())
            ep.prepare(port)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

            def create(n):
                took = []
                for i in range(n):
                    start = time.perf_counter()
                    conn.request("POST", "/v1/api-keys", headers=ep.owner_headers,
                                 body=json.dumps({"name": f"w{i}", "permissions": ["audit.read"]}))
                    res = conn.getresponse()
                    res.read()
                    assert res.status == 201, res.status
                    took.append((time.perf_counter() - start) * 1000)
                    time.sleep(0.01)
                return took

            idle = create(quiet)
            load_args = argparse.Namespace(**{**vars(args), "duration": max(args.duration, 8)})
            wrk_proc, cmd = R.wrk(port, ep.requests["transit_encrypt"][1], load_args,
                                  script=ep.lua("transit_encrypt"), background=True)
            time.sleep(1)
            busy = create(loaded)
            out, _ = wrk_proc.communicate()
            conn.close()
        finally:
            assert R.stop(gh) == 0, "gatehouse did not exit 0 on SIGTERM"
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def summary(xs):
        xs = sorted(xs)
        return {"p50_ms": xs[len(xs) // 2], "p99_ms": xs[max(0, int(len(xs) * 0.99) - 1)],
                "max_ms": xs[-1], "writes": len(xs)}
    results["writes_under_load"] = {"idle": summary(idle), "loaded": summary(busy),
                                    "transit": R.wrk_parse(out, cmd)}


def report_writes(results) -> None:
    w = results.get("writes_under_load")
    if not w:
        return
    print()
    for name in ("idle", "loaded"):
        x = w[name]
        print(f"POST /v1/api-keys, server {name:<6}: p50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms,"
              f" max {x['max_ms']:.1f} ms ({x['writes']} writes)")
    print(f"  (load: transit encrypt at {w['transit']['requests_per_sec']:.0f} req/s, p99"
          f" {w['transit']['p99_ms']} ms)")


def instructions(results, requests: int = 2000) -> None:
    if not shutil.which("valgrind"):
        print("valgrind not found: instruction counts skipped")
        return
    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-epir-"))
    dumps = root / "callgrind"
    dumps.mkdir()

    def under_callgrind(cmd, env):
        return subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={dumps}/cg.%p", *cmd],
            cwd=root, env={"PATH": os.environ.get("PATH", ""), **env},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def count(proc, port, name, method, path, headers, body):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def run(n):
            for _ in range(n):
                conn.request(method, path, body=body, headers=headers)
                res = conn.getresponse()
                res.read()
                assert res.status == 200, (name, res.status)
        run(200)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        run(requests)
        subprocess.run(["callgrind_control", f"--dump={name}", str(proc.pid)], check=True,
                       capture_output=True)
        conn.close()

    names = []
    try:
        port = R.free_port()
        p = under_callgrind([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{port}"], {})
        try:
            R.wait_for(port, "/health/live", time.perf_counter(), limit=120.0)
            count(p, port, "bare_live", "GET", "/health/live", {}, None)
            names.append("bare_live")
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        ep = Endpoints(root)
        port = R.free_port()
        p = under_callgrind([str(R.TARGET / "gatehouse"), "serve"], ep.env(port))
        try:
            R.wait_for(port, "/health/ready", time.perf_counter(), limit=120.0)
            ep.prepare(port)
            for name, (method, path, headers, body) in ep.requests.items():
                count(p, port, name, method, path, headers, body)
                names.append(name)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
        totals = {}
        for name in names:
            total = 0
            for f in dumps.glob("cg.*"):
                text = f.read_text(errors="replace")
                if re.search(rf"^desc: Trigger: dump {name}$", text, re.M):
                    total += int(re.search(r"^summary:\s+(\d+)", text, re.M).group(1))
            assert total > 0, f"no callgrind dump for {name}"
            totals[name] = total / requests
        results["endpoint_instructions"] = totals
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(results) -> None:
    cpu = results.get("endpoint_cpu", {})
    ir = results.get("endpoint_instructions", {})
    bare = cpu.get("bare_live")
    print()
    print(f"{'endpoint':<22}{'req/s':>9}{'/bare':>7}{'p99 ms':>8}{'srv user':>10}{'srv sys':>9}{'wrk':>7}"
          f"{'instr/req':>11}{'/bare':>7}")
    for name in ["bare_live", "live", "verify_token", "verify_api_key", "bare_sized_verify",
                 "internal_key_verify", "bare_sized_internal", "transit_encrypt",
                 "bare_sized_transit"]:
        c, i = cpu.get(name), ir.get(name)
        line = f"{name:<22}"
        if c:
            ratio = f"{c['ratio']:>7.3f}" if "ratio" in c else " " * 7
            line += (f"{c['requests_per_sec']:>9.0f}{ratio}{c['p99_ms']:>8.2f}"
                     f"{c['server_user_us']:>10.1f}{c['server_sys_us']:>9.1f}{c['wrk_us']:>7.1f}")
        else:
            line += " " * 50
        if i:
            line += f"{i:>11.0f}{i / ir['bare_live']:>7.2f}"
        print(line)
    for name, c in cpu.items():
        if "ratios" in c:
            print(f"  {name}: ratio each round {', '.join(f'{x:.3f}' for x in c['ratios'])}")
        if "ratio_to_sized" in c:
            print(f"  {name}: {c['ratio_to_sized']:.3f} of the bare server answering with the same bytes"
                  f" ({SIZED[name][0]})")
    print("(medians over rounds; each ratio pairs a run with the bare run just before it; CPU columns in"
          " microseconds per request; instructions: callgrind, sequential requests)")
