"""Records, grants and checks under load (issue 19): `python3 bench/run.py --only access`.

One run, on 127.0.0.1, beside the bare baseline (crates/gatehouse-bench's hello-world on
`GET /health/live`) measured in the same run with the same wrk load:

  * organisation A holds 10,000 records (type `report`, twenty namespaces, mostly
    organisation-wide, some private and public) and has made 1,000 grants: 20 each to 50 other
    organisations, one namespace each, so B (one of them) reads A's organisation-wide and public
    records through 20 grants;
  * B holds 30 records of its own.

Measured, each with wrk -t2 -c16 (`--connections`, `--duration`):
  verify          GET /v1/auth/verify as A's owner (the same authentication, no question)
  check_own       POST /v1/check as A's owner: may I read A's record r5000?
  check_granted   POST /v1/check as B's owner: may I read A's record r5000 (organization A)?
  list_spanning   GET /v1/records?include_granted=true&limit=50 as B's owner: 30 own records
                  ranked first, then 20 of A's through grants.
and the listing again at one connection (latency without queueing).
"""

import http.client
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import run as R

RECORDS = 10_000
GRANTEES = 50
GRANTS_EACH = 20
OWN_IN_B = 30
PASSWORD = "bench passphrase 1729"

CONFIG = """
[rate_limits]
enabled = false

[identity]
step_up_permissions = []

[[product.permissions]]
name = "report.read"
description = "read reports"
roles = ["owner", "admin", "member"]

[[product.permissions]]
name = "report.write"
description = "write reports"
roles = ["owner", "admin"]

[[product.record_types]]
name = "report"
read = "report.read"
write = "report.write"
"""


class Conn:
    """One keep-alive connection for the setup's many requests."""

    def __init__(self, port: int):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None, headers=None):
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(headers or {})
        self.c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        res = self.c.getresponse()
        payload = res.read()
        return res.status, (json.loads(payload) if payload else None)


def account(c: Conn, email: str) -> dict:
    status, _ = c.call("POST", "/v1/auth/signup", {
        "email": email, "password": PASSWORD, "name": "Bench", "organization_name": email})
    assert status == 202, status
    status, t = c.call("POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200, (status, t)
    return {"org": t["organization_id"],
            "headers": {"Authorization": f"Bearer {t['access_token']}",
                        "x-organization-id": t["organization_id"]}}


def populate(port: int) -> dict:
    c = Conn(port)
    started = time.perf_counter()
    a = account(c, "a@bench.example")
    others = [account(c, f"g{i}@bench.example") for i in range(GRANTEES)]
    b = others[0]
    for i in range(RECORDS):
        level = "private" if i % 10 == 0 else "public" if i % 10 == 1 else "organization"
        status, _ = c.call("POST", "/v1/records", {
            "type": "report", "external_id": f"r{i}", "namespace": f"ns{i % GRANTS_EACH}",
            "level": level, "tags": [f"t{i % 7}"]}, a["headers"])
        assert status == 201, status
    for g in others:
        for j in range(GRANTS_EACH):
            status, _ = c.call("POST", "/v1/grants", {
                "organization": g["org"], "namespaces": [f"ns{j}"], "access": "read"}, a["headers"])
            assert status == 201, status
    for i in range(OWN_IN_B):
        status, _ = c.call("POST", "/v1/records", {
            "type": "report", "external_id": f"b{i}", "level": "organization"}, b["headers"])
        assert status == 201, status
    status, page = c.call("GET", "/v1/records?include_granted=true&limit=50", headers=b["headers"])
    assert status == 200 and len(page["items"]) == 50, status
    own = sum(1 for r in page["items"] if r["organization"] == b["org"])
    assert own == OWN_IN_B, own
    return {"a": a, "b": b, "setup_s": time.perf_counter() - started}


def script(root: Path, name: str, method: str, headers: dict, body=None) -> Path:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{h}"] = "{v}"' for h, v in headers.items()]
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = '{json.dumps(body)}'")
    path = root / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(args, results) -> None:
    port = R.free_port()
    base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{port}"])
    try:
        R.wait_for(port, "/health/live", time.perf_counter())
        results["baseline_live"] = R.wrk(port, "/health/live", args)
    finally:
        R.stop(base)

    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-access-"))
    (root / "gatehouse.toml").write_text(CONFIG)
    port = R.free_port()
    proc = R.start_gatehouse(root, port, {"GATEHOUSE_LOG_LEVEL": "warn"})
    try:
        R.wait_for(port, "/health/ready", time.perf_counter(), limit=60)
        world = populate(port)
        results["setup_s"] = world["setup_s"]
        a, b = world["a"], world["b"]
        # For reference: forward authentication of the same caller, which checks nothing more.
        results["verify"] = R.wrk(port, "/v1/auth/verify", args,
                                  script=script(root, "verify", "GET", a["headers"]))
        question = {"action": "read", "resource": {"type": "report", "id": "r5002"}}
        for name, who, body in [
            ("check_own", a, question),
            ("check_granted", b, {"action": "read", "resource": {
                "type": "report", "id": "r5002", "organization": a["org"]}}),
        ]:
            status, answer = Conn(port).call("POST", "/v1/check", body, who["headers"])
            assert status == 200 and answer["allowed"], (name, status, answer)
            results[name] = R.wrk(port, "/v1/check", args,
                                  script=script(root, name, "POST", who["headers"], body))
            results[name]["via"] = answer["via"]
        listing = "/v1/records?include_granted=true&limit=50"
        results["list_spanning"] = R.wrk(port, listing, args,
                                         script=script(root, "list", "GET", b["headers"]))
        results["list_spanning_1conn"] = R.wrk(port, listing, args, threads=1, connections=1,
                                               script=script(root, "list1", "GET", b["headers"]))
    finally:
        R.stop(proc)
        shutil.rmtree(root, ignore_errors=True)
    # The baseline once more after Gatehouse, so drift within the run shows.
    port = R.free_port()
    base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{port}"])
    try:
        R.wait_for(port, "/health/live", time.perf_counter())
        results["baseline_live_after"] = R.wrk(port, "/health/live", args)
    finally:
        R.stop(base)


def report(results) -> None:
    before = results["baseline_live"]["requests_per_sec"]
    after = results["baseline_live_after"]["requests_per_sec"]
    # The baseline drifts within a run (tens of percent on this machine): ratios are to the mean
    # of its runs before and after Gatehouse.
    base = (before + after) / 2
    print(f"setup: {RECORDS} records in A, {GRANTEES * GRANTS_EACH} grants, {OWN_IN_B} own in B:"
          f" {results['setup_s']:.1f} s")
    print(f"bare baseline GET /health/live: {before:.0f} req/s before, {after:.0f} after"
          f" (mean {base:.0f}), p99 {results['baseline_live']['p99_ms']} ms")
    for name in ["verify", "check_own", "check_granted", "list_spanning", "list_spanning_1conn"]:
        r = results[name]
        ratio = r["requests_per_sec"] / base
        extra = f", via {r['via']}" if "via" in r else ""
        print(f"{name:<20} {r['requests_per_sec']:>9.0f} req/s  ratio {ratio:.3f}  p50 {r['p50_ms']} ms"
              f"  p99 {r['p99_ms']} ms  non-2xx {r['non_2xx']}{extra}")
