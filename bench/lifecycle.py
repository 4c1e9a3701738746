"""The data lifecycle under load (issue 20): `python3 bench/run.py --only lifecycle`.

One run on 127.0.0.1, with the bare baseline (crates/gatehouse-bench's hello-world on
`GET /health/live`) measured in the same run with the same wrk load, on SQLite (the default):

  ingest_batch   POST /internal/v1/audit-events, 100 events per request, wrk -t2 -c16: the
                 product's events through the group-commit writer, each answered once durable
                 (events/s = requests/s x 100);
  ingest_single  the same with one event per request;
  export         POST /v1/exports of an organisation holding 10,000 records with content (and their
                 10,000 record.created events), read to its end on one connection: records/s over
                 the whole stream, every other line included;
  purge          30,000 records expiring at one instant, purged by the background job (1 s
                 interval, default batch of 500 and 20 ms rest): the time from the expiry instant until the last
                 row is physically gone (SQLite count, polled every 50 ms), and GET /v1/auth/verify
                 latency from verify-probe at a fixed 500 requests/s, idle before and over the four
                 seconds from the expiry instant (the purge inside them).
"""

import base64
import os
import http.client
import json
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import run as R

EXPORT_RECORDS = 10_000
PURGE_RECORDS = 30_000
BATCH = 100
PASSWORD = "bench passphrase 1729"
SERVICE_SECRET = base64.b64encode(bytes([7]) * 32).decode()

CONFIG = """
[rate_limits]
enabled = false

[identity]
step_up_permissions = []

[lifecycle]
purge_interval_secs = 1

[service_auth]
secret_files = ["reporting.key"]

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
    def __init__(self, port: int):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method, path, body=None, headers=None, raw=False):
        h = {"content-type": "application/json"} if body is not None else {}
        h.update(headers or {})
        self.c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
        res = self.c.getresponse()
        payload = res.read()
        if raw:
            return res.status, payload
        return res.status, (json.loads(payload) if payload else None)


def account(c: Conn, email: str) -> dict:
    status, _ = c.call("POST", "/v1/auth/signup", {
        "email": email, "password": PASSWORD, "name": "Bench", "organization_name": email})
    assert status == 202, status
    status, t = c.call("POST", "/v1/auth/login", {"email": email, "password": PASSWORD})
    assert status == 200, (status, t)
    claims = json.loads(base64.urlsafe_b64decode(t["access_token"].split(".")[1] + "=="))
    return {"org": t["organization_id"], "user": claims["sub"], "token": t["access_token"],
            "headers": {"Authorization": f"Bearer {t['access_token']}",
                        "x-organization-id": t["organization_id"]}}


def create_records(port: int, who: dict, prefix: str, n: int, expires_at=None, workers=4):
    def work(k):
        c = Conn(port)
        for i in range(k, n, workers):
            body = {"type": "report", "external_id": f"{prefix}{i}", "level": "organization",
                    "content": {"title": f"report {i}", "rows": i}}
            if expires_at:
                body["expires_at"] = expires_at
            status, _ = c.call("POST", "/v1/records", body, who["headers"])
            assert status == 201, status
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def ingest_script(root: Path, name: str, org: str, user: str, per_request: int) -> Path:
    events = [{"actor": {"user_id": user}, "action": "report.run",
               "resource": {"type": "widget", "id": f"w{i}"}, "detail": {"rows": i},
               "ip": "203.0.113.9", "user_agent": "bench/1"} for i in range(per_request)]
    body = json.dumps({"organization_id": org, "events": events})
    path = root / f"{name}.lua"
    path.write_text("\n".join([
        'wrk.method = "POST"',
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["x-service-auth"] = "{SERVICE_SECRET}"',
        f"wrk.body = '{body}'",
    ]) + "\n")
    return path


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def run(args, results) -> None:
    port = R.free_port()
    base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{port}"])
    try:
        R.wait_for(port, "/health/live", time.perf_counter())
        results["baseline_live"] = R.wrk(port, "/health/live", args)
    finally:
        R.stop(base)

    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-lifecycle-"))
    # GH_BENCH_LIFECYCLE="batch = 500\npause_ms = 25" tries other [lifecycle] settings.
    extra = os.environ.get("GH_BENCH_LIFECYCLE", "").replace("\\n", "\n")
    (root / "gatehouse.toml").write_text(CONFIG.replace("[lifecycle]\n", f"[lifecycle]\n{extra}\n"))
    key = root / "reporting.key"
    key.write_text(SERVICE_SECRET)
    key.chmod(0o600)
    port = R.free_port()
    proc = R.start_gatehouse(root, port, {"GATEHOUSE_LOG_LEVEL": "warn"})
    try:
        R.wait_for(port, "/health/ready", time.perf_counter(), limit=60)
        c = Conn(port)
        a = account(c, "a@bench.example")
        e = account(c, "e@bench.example")
        p = account(c, "p@bench.example")

        # Ingestion: check one call first, then load.
        status, body = c.call("POST", "/internal/v1/audit-events", {
            "organization_id": a["org"], "event": {"actor": {"user_id": a["user"]},
                                                    "action": "report.run",
                                                    "resource": {"type": "widget", "id": "w"}}},
            {"x-service-auth": SERVICE_SECRET})
        assert status == 201, (status, body)
        for name, per in [("ingest_batch", BATCH), ("ingest_single", 1)]:
            r = R.wrk(port, "/internal/v1/audit-events", args,
                      script=ingest_script(root, name, a["org"], a["user"], per))
            r["events_per_sec"] = r["requests_per_sec"] * per
            results[name] = r

        # Export of an organisation with 10,000 records.
        started = time.perf_counter()
        # In an organisation of its own, so its chain holds only these records' events.
        create_records(port, e, "r", EXPORT_RECORDS)
        results["export_setup_s"] = time.perf_counter() - started
        started = time.perf_counter()
        status, payload = Conn(port).call("POST", "/v1/exports", {"limit": 100_000}, e["headers"],
                                          raw=True)
        elapsed = time.perf_counter() - started
        assert status == 200, status
        lines = payload.decode().splitlines()
        records = sum(1 for l in lines if json.loads(l)["type"] == "record")
        assert records == EXPORT_RECORDS, records
        assert json.loads(lines[-1])["next_cursor"] is None
        results["export"] = {"records": records, "lines": len(lines), "bytes": len(payload),
                             "seconds": elapsed, "records_per_sec": records / elapsed}

        # Purge: 30,000 records expiring at one instant.
        idle = R.probe(port, p["token"], 4)
        results["verify_idle"] = idle
        expiry = time.time() + 75
        started = time.perf_counter()
        create_records(port, p, "x", PURGE_RECORDS, expires_at=rfc3339(expiry))
        results["purge_setup_s"] = time.perf_counter() - started
        assert time.time() < expiry - 2, "the expiring records took too long to create"
        db = sqlite3.connect(f"file:{root / 'gatehouse-data' / 'gatehouse.db'}?mode=ro", uri=True)
        org_blob = bytes.fromhex(p["org"].replace("-", ""))

        def stored() -> int:
            return db.execute("SELECT count(*) FROM records WHERE org_id = ?",
                              (org_blob,)).fetchone()[0]

        assert stored() == PURGE_RECORDS
        time.sleep(max(0.0, expiry - time.time()))
        at_expiry = time.perf_counter()
        holder = {}
        t = threading.Thread(target=lambda: holder.update(r=R.probe(port, p["token"], 4)))
        t.start()
        first_gone = None
        while True:
            n = stored()
            if first_gone is None and n < PURGE_RECORDS:
                first_gone = time.perf_counter()
            if n == 0:
                break
            time.sleep(0.05)
            assert time.perf_counter() - at_expiry < 60, "not purged within 60 s"
        done = time.perf_counter()
        t.join()
        results["verify_during_purge"] = holder["r"]
        results["purge"] = {
            "records": PURGE_RECORDS,
            "expiry_to_gone_s": done - at_expiry,
            "first_to_last_s": done - first_gone,
            "records_per_sec": PURGE_RECORDS / (done - first_gone),
        }
        db.close()
    finally:
        R.stop(proc)
        shutil.rmtree(root, ignore_errors=True)
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
    base = (before + after) / 2
    print(f"bare baseline GET /health/live: {before:.0f} req/s before, {after:.0f} after"
          f" (mean {base:.0f})")
    for name in ["ingest_batch", "ingest_single"]:
        r = results[name]
        print(f"{name:<14} {r['requests_per_sec']:>8.0f} req/s = {r['events_per_sec']:>8.0f} events/s"
              f"  ratio(req) {r['requests_per_sec'] / base:.3f}  p50 {r['p50_ms']} ms"
              f"  p99 {r['p99_ms']} ms  non-2xx {r['non_2xx']}")
    e = results["export"]
    print(f"export: {e['records']} records ({e['lines']} lines, {e['bytes']} bytes) in"
          f" {e['seconds']:.2f} s = {e['records_per_sec']:.0f} records/s"
          f" (setup {results['export_setup_s']:.1f} s)")
    pu = results["purge"]
    print(f"purge: {pu['records']} records gone {pu['expiry_to_gone_s']:.2f} s after expiry,"
          f" first to last {pu['first_to_last_s']:.2f} s = {pu['records_per_sec']:.0f} records/s"
          f" (setup {results['purge_setup_s']:.1f} s)")
    i, d = results["verify_idle"], results["verify_during_purge"]
    print(f"verify p99 idle {i['p99_ms']} ms, from expiry over 4 s {d['p99_ms']} ms"
          f" (ratio {d['p99_ms'] / i['p99_ms']:.2f}); p50 {i['p50_ms']} / {d['p50_ms']} ms;"
          f" failures {i['failures']} / {d['failures']}")
