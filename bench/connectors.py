"""Connector token hand-out (issue 24, must 5): `python3 bench/run.py --only connectors`.

One run, on 127.0.0.1, beside the bare baseline (crates/gatehouse-bench's hello-world on
`GET /health/live`) measured in the same run with the same wrk load, before and after Gatehouse
(the ratio is to the mean of the two):

  * a stand-in provider (a token endpoint in this process, plain OAuth 2.0 configured by hand on
    loopback with the development settings) answers the one code exchange;
  * a person signs up, connects through `POST /v1/connectors/crm/start` and the callback (relayed
    with their bearer token), and the connector holds an access token living a day;
  * wrk drives `POST /internal/v1/connectors/{id}/token` (service secret in `X-Service-Auth`,
    the person's access token in `x-gatehouse-on-behalf-of`): each call authenticates the
    service and the person, checks `connectors.use`, opens the token cached in sealed form and
    counts the hand-out (the pairing's first since the last flush commits its own
    `connector.token_used` before answering; the rest are written at the 30 s flush).

Target (issue 24): >= 0.5 x the baseline's requests/s, p99 <= 2 ms.
"""

import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import run as R

CONFIG = """
[rate_limits]
enabled = false

[oauth]
public_url = "http://gatehouse.bench"
allow_http = true
allow_loopback = true

[[oauth.providers]]
name = "crm"
authorization_url = "http://127.0.0.1:{port}/authorize"
token_url = "http://127.0.0.1:{port}/token"
client_id = "gatehouse-bench"
scopes = ["read"]
"""


class TokenEndpoint(http.server.BaseHTTPRequestHandler):
    """A provider's token endpoint: any code is exchanged for a day-long access token."""

    def do_POST(self):  # noqa: N802 (the handler's name)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({"access_token": "bench-" + os.urandom(16).hex(),
                           "token_type": "Bearer", "expires_in": 86400}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def baseline(args) -> dict:
    port = R.free_port()
    base = subprocess.Popen([str(R.TARGET / "bench-baseline"), f"127.0.0.1:{port}"])
    try:
        R.wait_for(port, "/health/live", time.perf_counter())
        return R.wrk(port, "/health/live", args)
    finally:
        R.stop(base)


def connect(port: int) -> tuple:
    """Signs a person up and connects them at `crm`: (their access token, the connector's id)."""
    status, _ = R.http_json(port, "POST", "/v1/auth/signup", {
        "email": "conn@example.com", "password": "bench passphrase 1729",
        "name": "Bench", "organization_name": "Bench Org"})
    assert status == 202, status
    status, t = R.http_json(port, "POST", "/v1/auth/login", {
        "email": "conn@example.com", "password": "bench passphrase 1729"})
    assert status == 200, status
    headers = {"Authorization": f"Bearer {t['access_token']}",
               "x-organization-id": t["organization_id"]}
    status, started = R.http_json(port, "POST", "/v1/connectors/crm/start", headers=headers)
    assert status == 200, (status, started)
    state = parse_qs(urlparse(started["authorization_url"]).query)["state"][0]
    status, c = R.http_json(port, "GET",
                            f"/v1/connectors/crm/callback?code=bench-code&state={state}",
                            headers=headers)
    assert status == 200, (status, c)
    return t["access_token"], c["id"]


def run(args, results) -> None:
    results["baseline_live"] = baseline(args)
    provider = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenEndpoint)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    root = Path(tempfile.mkdtemp(prefix="gatehouse-bench-connectors-"))
    (root / "gatehouse.toml").write_text(CONFIG.format(port=provider.server_address[1]))
    secret_file = root / "service.key"
    service_secret = base64.b64encode(os.urandom(32)).decode()
    secret_file.write_text(service_secret)
    secret_file.chmod(0o600)
    port = R.free_port()
    proc = R.start_gatehouse(root, port, {
        "GATEHOUSE_LOG_LEVEL": "warn",
        "GATEHOUSE_SERVICE_AUTH__SECRET_FILES": json.dumps([str(secret_file)]),
    })
    try:
        R.wait_for(port, "/health/ready", time.perf_counter(), limit=60)
        person, connector = connect(port)
        path = f"/internal/v1/connectors/{connector}/token"
        headers = {"X-Service-Auth": service_secret, "x-gatehouse-on-behalf-of": person,
                   "x-gatehouse-service": "bench"}
        status, answer = R.http_json(port, "POST", path, headers=headers)
        assert status == 200 and answer["access_token"].startswith("bench-"), status
        lua = root / "handout.lua"
        lua.write_text('wrk.method = "POST"\n' + "".join(
            f'wrk.headers["{h}"] = "{v}"\n' for h, v in headers.items()))
        results["token_handout"] = R.wrk(port, path, args, script=lua)
        results["token_handout_1conn"] = R.wrk(port, path, args, script=lua, threads=1,
                                               connections=1)
        for name in ["token_handout", "token_handout_1conn"]:
            # A refused call is cheap: throughput with refusals in it measures nothing.
            assert results[name]["non_2xx"] == 0, (name, results[name])
    finally:
        R.stop(proc)
        provider.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    results["baseline_live_after"] = baseline(args)


def report(results) -> None:
    before = results["baseline_live"]["requests_per_sec"]
    after = results["baseline_live_after"]["requests_per_sec"]
    base = (before + after) / 2
    results["ratio_token_handout_rps"] = results["token_handout"]["requests_per_sec"] / base
    print(f"bare baseline GET /health/live: {before:.0f} req/s before, {after:.0f} after"
          f" (mean {base:.0f}), p99 {results['baseline_live']['p99_ms']} ms")
    for name in ["token_handout", "token_handout_1conn"]:
        r = results[name]
        print(f"{name:<20} {r['requests_per_sec']:>9.0f} req/s  ratio {r['requests_per_sec'] / base:.3f}"
              f"  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  non-2xx {r['non_2xx']}")
    print(f"hand-out / baseline (req/s): {results['ratio_token_handout_rps']:.3f} (target >= 0.5); "
          f"p99 {results['token_handout']['p99_ms']} ms (target <= 2 ms)")
