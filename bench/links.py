"""Links and messaging under load (issue 21): `python3 bench/run.py --only links`.

One run on 127.0.0.1, SQLite (the default), with the bare baseline (crates/gatehouse-bench's
hello-world on `GET /health/live`) measured in the same run with the same wrk load:

  enqueue     POST /internal/v1/events, 100 `invoice.paid` events per request, wrk -t2 -c16: the
              events are queued (one transaction per request, shared by its 100 events and their
              deliveries) for one subscribed endpoint whose port is closed, with one retry a day
              away: each delivery is also leased, signed and attempted once while the load runs
              (events/s = requests/s x 100).
  delivery    20,000 events queued for an endpoint on webhook-sink (crates/gatehouse-bench) while
              its port is closed (each attempted once or twice, retried every 3 s); then the sink
              starts,
              and its first and last receipt give deliveries/s at `webhooks.concurrency = 32`.
  share_open  POST /v1/share/{token} without a password on a link with no view bound, wrk -t2
              -c16, on a fresh server (no delivery backlog): a viewer pass per request.
"""

import http.client
import json
import subprocess
import tempfile
import time
from pathlib import Path

import run as R
from lifecycle import Conn, account, SERVICE_SECRET

EVENTS_PER_REQUEST = 100
DELIVERIES = 20_000

CONFIG = """
[rate_limits]
enabled = false

[identity]
step_up_permissions = []

[service_auth]
secret_files = ["billing.key"]

[webhooks]
allow_http = true
allow_loopback = true
product_event_types = ["invoice.paid"]
retry_waits_secs = [{wait}]

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


def start(root: Path, wait, name: str = ""):
    data = root / f"gh-{len(str(wait))}{name}"
    data.mkdir()
    (data / "gatehouse.toml").write_text(CONFIG.replace("{wait}", str(wait)))
    key = data / "billing.key"
    key.write_text(SERVICE_SECRET)
    key.chmod(0o600)
    port = R.free_port()
    proc = subprocess.Popen(
        [str(R.TARGET / "gatehouse"), "serve"], cwd=data,
        env={"GATEHOUSE_LISTEN": f"127.0.0.1:{port}", "GATEHOUSE_LOG_LEVEL": "warn",
             "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    R.wait_for(port, "/health/ready", time.perf_counter(), 60)
    return proc, port


def endpoint(c: Conn, who: dict, url: str):
    status, e = c.call("POST", "/v1/webhooks/endpoints",
                       {"url": url, "event_types": ["invoice.paid"]}, who["headers"])
    assert status == 201, (status, e)
    return e


def events_body(org: str) -> str:
    events = [{"type": "invoice.paid", "data": {"invoice": f"in_{i}", "cents": 4200 + i}}
              for i in range(EVENTS_PER_REQUEST)]
    return json.dumps({"organization_id": org, "events": events})


def sink_count(port: int):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/count")
    n, first, last = conn.getresponse().read().decode().split()
    conn.close()
    return int(n), int(first), int(last)


def run(args, results) -> None:
    root = Path(tempfile.mkdtemp(prefix="gh-bench-links-"))
    base_port = R.free_port()
    base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{base_port}"])
    try:
        R.wait_for(base_port, "/health/live", time.perf_counter())
        results["baseline_live"] = R.wrk(base_port, "/health/live", args)

        # Enqueue, with each delivery attempted once against a closed port.
        proc, port = start(root, 86_400)
        try:
            c = Conn(port)
            a = account(c, "enqueue@example.com")
            endpoint(c, a, f"http://127.0.0.1:{R.free_port()}/hook")
            script = root / "enqueue.lua"
            script.write_text("\n".join([
                'wrk.method = "POST"',
                'wrk.headers["Content-Type"] = "application/json"',
                f'wrk.headers["x-service-auth"] = "{SERVICE_SECRET}"',
                f"wrk.body = '{events_body(a['org'])}'",
            ]) + "\n")
            r = R.wrk(port, "/internal/v1/events", args, script=script)
            r["events_per_sec"] = r["requests_per_sec"] * EVENTS_PER_REQUEST
            results["enqueue"] = r
        finally:
            R.stop(proc)

        # Share-link opens on a server of their own: the enqueue run leaves hundreds of
        # thousands of deliveries for the worker to attempt, which would share the CPUs.
        proc, port = start(root, 86_400, "-share")
        try:
            c = Conn(port)
            a = account(c, "share@example.com")
            status, rec = c.call("POST", "/v1/records", {
                "type": "report", "external_id": "shared", "level": "organization",
                "content": {"title": "q3"}}, a["headers"])
            assert status == 201, status
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86_400))
            status, link = c.call("POST", f"/v1/records/{rec['id']}/share-links",
                                  {"expires_at": expires}, a["headers"])
            assert status == 201, (status, link)
            script = root / "open.lua"
            script.write_text("\n".join([
                'wrk.method = "POST"',
                'wrk.headers["Content-Type"] = "application/json"',
                "wrk.body = '{}'",
            ]) + "\n")
            results["share_open"] = R.wrk(port, f"/v1/share/{link['token']}", args, script=script)
        finally:
            R.stop(proc)

        # Delivery throughput from a backlog.
        proc, port = start(root, "3, 3, 3, 3, 3, 3")
        sink = None
        try:
            c = Conn(port)
            a = account(c, "deliver@example.com")
            sink_port = R.free_port()
            endpoint(c, a, f"http://127.0.0.1:{sink_port}/hook")
            body = json.loads(events_body(a["org"]))
            for _ in range(DELIVERIES // EVENTS_PER_REQUEST):
                status, _ = c.call("POST", "/internal/v1/events", body,
                                   {"x-service-auth": SERVICE_SECRET})
                assert status == 202, status
            time.sleep(3)
            sink = subprocess.Popen([str(R.TARGET / "webhook-sink"), f"127.0.0.1:{sink_port}"])
            R.wait_for_port(sink_port)
            started = time.perf_counter()
            n = 0
            while time.perf_counter() - started < 180:
                n, first, last = sink_count(sink_port)
                if n >= DELIVERIES:
                    break
                time.sleep(0.2)
            n, first, last = sink_count(sink_port)
            secs = (last - first) / 1e9 if last > first else float("nan")
            results["delivery"] = {"deliveries": n, "seconds": secs,
                                   "deliveries_per_sec": n / secs if secs else 0.0,
                                   "concurrency": 32}
        finally:
            R.stop(proc)
            if sink:
                sink.terminate()
                sink.wait()

        results["baseline_live_after"] = R.wrk(base_port, "/health/live", args)
    finally:
        base.terminate()
        base.wait()


def report(results) -> None:
    b = (results["baseline_live"]["requests_per_sec"]
         + results["baseline_live_after"]["requests_per_sec"]) / 2
    e = results["enqueue"]
    s = results["share_open"]
    d = results["delivery"]
    print(f"baseline GET /health/live: {results['baseline_live']['requests_per_sec']:.0f} / "
          f"{results['baseline_live_after']['requests_per_sec']:.0f} req/s (before / after)")
    print(f"enqueue: {e['events_per_sec']:.0f} events/s ({e['requests_per_sec']:.0f} req/s of "
          f"{EVENTS_PER_REQUEST}), p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms, non-2xx {e['non_2xx']}")
    print(f"delivery: {d['deliveries']} in {d['seconds']:.2f} s = {d['deliveries_per_sec']:.0f}/s "
          f"at concurrency {d['concurrency']}")
    print(f"share open: {s['requests_per_sec']:.0f} req/s = {s['requests_per_sec'] / b:.3f}x the "
          f"baseline, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, non-2xx {s['non_2xx']}")
