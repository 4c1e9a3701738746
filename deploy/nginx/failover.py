#!/usr/bin/env python3
"""Tries deploy/nginx/gatehouse.conf in front of three Gatehouse instances, one of them killed.

On loopback: a fresh PostgreSQL database (bench/pg.py), three `gatehouse serve` with one master
key and `trusted_proxies = ["127.0.0.1"]`, and nginx with this directory's configuration (its
upstream addresses and listen address changed to loopback, a throwaway self-signed certificate).
Through nginx: a sign-up, a sign-in and 30 verifies; then one instance is killed with SIGKILL
and 30 verifies and 9 `POST /v1/api-keys` must all still succeed; `/internal/v1/metrics` must be
nginx's 404. Exits 1 on any other answer.

Usage: python3 deploy/nginx/failover.py [--nginx /usr/sbin/nginx] [--bin target/debug/gatehouse]
Needs nginx (Debian package nginx; only its binary is run, as this user, with its own prefix),
openssl, psql and the PostgreSQL that GH_TEST_POSTGRES_URL names.
"""

import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import pg  # noqa: E402
import run as R  # noqa: E402

PASSWORD = "bench passphrase 1729"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--bin", type=Path, default=ROOT / "target/debug/gatehouse")
    args = ap.parse_args()
    binary = args.bin.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-nginx-"))
    for d in ("logs", "tmp", "tls"):
        (tmp / d).mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(tmp / "tls/key.pem"), "-out", str(tmp / "tls/cert.pem")],
                   check=True, capture_output=True)
    db = pg.Database(binary, prefix="gh_nginx")
    key = base64.b64encode(os.urandom(32)).decode()
    procs, nginx_conf, failures = [], None, []
    try:
        ports = []
        for i in range(3):
            d = tmp / f"i{i}"
            d.mkdir()
            port = R.free_port()
            procs.append(subprocess.Popen(
                [str(binary), "serve"], cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", ""), "GATEHOUSE_LISTEN": f"127.0.0.1:{port}",
                     "GATEHOUSE_DATA_DIR": str(d), "GATEHOUSE_MASTER_KEY": key,
                     "GATEHOUSE_DATABASE_URL": db.app_url(),
                     "GATEHOUSE_TRUSTED_PROXIES": '["127.0.0.1"]'}))
            # One at a time: the first start on a fresh database makes the keyring's rows.
            R.wait_for(port, "/health/ready", time.perf_counter(), limit=60.0)
            ports.append(port)
        site = (ROOT / "deploy/nginx/gatehouse.conf").read_text()
        for i, port in enumerate(ports):
            site = site.replace(f"10.0.0.1{i + 1}:8080", f"127.0.0.1:{port}")
        nport = R.free_port()
        site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{nport} ssl http2;")
        site = site.replace("/etc/nginx/tls/auth.example.com.pem", str(tmp / "tls/cert.pem"))
        site = site.replace("/etc/nginx/tls/auth.example.com.key", str(tmp / "tls/key.pem"))
        (tmp / "site.conf").write_text(site)
        nginx_conf = tmp / "nginx.conf"
        temp = "\n".join(f"    {k}_temp_path {tmp}/tmp/{k};"
                         for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        nginx_conf.write_text(f"pid {tmp}/nginx.pid;\nerror_log {tmp}/logs/error.log;\n"
                              f"events {{}}\nhttp {{\n    access_log off;\n{temp}\n"
                              f"    include {tmp}/site.conf;\n}}\n")
        subprocess.run([args.nginx, "-p", str(tmp), "-c", str(nginx_conf)], check=True)
        context = ssl._create_unverified_context()  # the throwaway certificate

        def call(method, path, body=None, headers=None):
            conn = http.client.HTTPSConnection("127.0.0.1", nport, context=context, timeout=10)
            h = {"content-type": "application/json"} if body is not None else {}
            h.update(headers or {})
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=h)
            res = conn.getresponse()
            data = res.read()
            conn.close()
            return res.status, (json.loads(data) if data.startswith(b"{") else None)

        def expect(what, got, want):
            print(f"{what}: {got}")
            if got != want:
                failures.append(f"{what}: {got}, expected {want}")

        expect("sign-up", call("POST", "/v1/auth/signup", {
            "email": "nginx@example.com", "password": PASSWORD, "name": "N",
            "organization_name": "Nginx Org"})[0], 202)
        status, t = call("POST", "/v1/auth/login", {"email": "nginx@example.com", "password": PASSWORD})
        expect("sign-in", status, 200)
        auth = {"Authorization": f"Bearer {t['access_token']}"}
        count = lambda xs: {s: xs.count(s) for s in sorted(set(xs))}
        expect("30 verifies", count([call("GET", "/v1/auth/verify", headers=auth)[0]
                                     for _ in range(30)]), {200: 30})
        expect("/internal/v1/metrics", call("GET", "/internal/v1/metrics")[0], 404)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        expect("30 verifies, one instance killed", count(
            [call("GET", "/v1/auth/verify", headers=auth)[0] for _ in range(30)]), {200: 30})
        org = {**auth, "x-organization-id": t["organization_id"]}
        expect("9 POST /v1/api-keys, one instance killed", count(
            [call("POST", "/v1/api-keys", {"name": f"k{i}", "permissions": ["audit.read"]}, org)[0]
             for i in range(9)]), {201: 9})
    finally:
        if nginx_conf and (tmp / "nginx.pid").exists():
            subprocess.run([args.nginx, "-p", str(tmp), "-c", str(nginx_conf), "-s", "stop"],
                           check=False)
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        db.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("nginx passed every request on while one instance was dead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
