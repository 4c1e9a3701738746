#!/usr/bin/env python3
"""What one request costs PostgreSQL: round trips, statements, transactions and rows written, for
a sign-in, a token verify (cached, and on an instance that has not seen the session) and three
audited changes (a custom role, a secret, an API key). docs/SCALING.md quotes its output.

How it measures, on loopback:
  - a fresh database (bench/pg.py), served as gatehouse_app (row-level security on, as deployed);
  - two `gatehouse serve` instances, A and B, with one master key, whose `database_url` points at
    a counting proxy (bench/pgwire.py) in front of the server: every round trip, statement,
    BEGIN/COMMIT/ROLLBACK, connection ping and statement preparation is counted on the wire;
  - each instance logs sqlx's per-statement lines (`sqlx::query=debug`), which carry the request
    id of the request that ran them, with the statement and rows affected;
  - one request at a time; the wire counts taken from just before it is sent to just after its
    answer. A sample counts only when it is clean: no connection opened during it, and every
    statement the wire saw is one the request's own log lines name (so no background job ran in
    the window). Warm-up requests first, so each pooled connection has prepared its statements:
    the figures are the steady state, and a statement prepared on the way shows as `prepare`.
Rate limits are off (they never touch the database: in-process or Redis), and the background
jobs' intervals are long so fewer samples are discarded; neither changes what a request does.

Usage: python3 bench/roundtrips.py [--bin target/release/gatehouse] [--samples 5] [--check]
                                  [--quick]
  --check: exit 1 unless the steady-state counts equal EXPECTED below (update them, and
  docs/SCALING.md, when a change moves them on purpose).
  --quick: 5 samples after 16 warm-ups, and no pg_stat_user_tables or WAL figures (about 15 s;
  what .ci/run does with --check).
Needs PostgreSQL (GH_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres, a
role that may create databases) and psql; writes bench/out/roundtrips.json.
"""

import argparse
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pg
import pgwire

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench passphrase 1729"

# Steady-state counts per request as measured (docs/SCALING.md). `--check` wants statements,
# transactions, commits and rows written equal, and round trips at most these: when a pooled
# connection's closing ping travels with a ROLLBACK it shares its round trip, so the fewest
# round trips over the samples can be one lower than here, never higher.
EXPECTED = {
    "sign_in": {"round_trips": 24, "statements": 17, "transactions": 2, "commits": 1,
                "rows_written": 3},
    "verify_cached": {"round_trips": 0, "statements": 0, "transactions": 0, "commits": 0,
                      "rows_written": 0},
    "verify_uncached": {"round_trips": 6, "statements": 2, "transactions": 1, "commits": 0,
                        "rows_written": 0},
    "create_role": {"round_trips": 12, "statements": 8, "transactions": 1, "commits": 1,
                    "rows_written": 3},
    "create_secret": {"round_trips": 17, "statements": 13, "transactions": 1, "commits": 1,
                      "rows_written": 6},
    "create_api_key": {"round_trips": 14, "statements": 10, "transactions": 1, "commits": 1,
                       "rows_written": 4},
}

QUIET = {
    "GATEHOUSE_RATE_LIMITS__ENABLED": "false",
    "GATEHOUSE_MAIL__POLL_INTERVAL_MS": "3600000",
    "GATEHOUSE_WEBHOOKS__POLL_INTERVAL_MS": "3600000",
    "GATEHOUSE_KEYRING__REENCRYPT_INTERVAL_SECS": "3600",
    "GATEHOUSE_AUDIT__CHECKPOINT_INTERVAL_SECS": "3600",
    "GATEHOUSE_LIFECYCLE__PURGE_INTERVAL_SECS": "15",
    "GATEHOUSE_LIFECYCLE__PRUNE_INTERVAL_SECS": "86400",
}


class Done(Exception):
    """The quick run stops before the pg_stat_user_tables figures."""


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """One `gatehouse serve`, its JSON log lines collected as they come."""

    def __init__(self, name, binary, root, env):
        self.name = name
        self.port = free_port()
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.lines = []
        self.lock = threading.Lock()
        full = {"PATH": os.environ.get("PATH", ""), "GATEHOUSE_LISTEN": f"127.0.0.1:{self.port}",
                "GATEHOUSE_DATA_DIR": str(self.dir), "GATEHOUSE_LOG_FORMAT": "json",
                "GATEHOUSE_LOG_LEVEL": "info,sqlx::query=debug", **QUIET, **env}
        self.proc = subprocess.Popen([str(binary), "serve"], cwd=self.dir, env=full,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            try:
                j = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.lines.append(j)

    def wait_ready(self, limit=60.0):
        start = time.time()
        while time.time() - start < limit:
            if self.proc.poll() is not None:
                raise RuntimeError(f"instance {self.name} exited: {self.proc.returncode}")
            try:
                if call(self.port, "GET", "/health/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"instance {self.name} did not become ready within {limit} s")

    def statements_of(self, request_id):
        with self.lock:
            return [j for j in self.lines if j.get("target") == "sqlx::query"
                    and j.get("span", {}).get("request_id") == request_id]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"content-type": "application/json"} if body is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, (json.loads(data) if data else None), dict(res.getheaders())


WRITE = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+(\w+)", re.I)


def measure(proxy, inst, make, tries=12):
    """One clean sample on `inst` of the request `make()` prepares (outside the window; called
    again for each try, so a request that must find a cold cache gets a fresh session): (wire
    counts, the request's statements, its answer)."""
    for _ in range(tries):
        request = make()
        before = proxy.counts.snapshot()
        status, body, headers = request()
        # sqlx gives a connection back to its pool after the answer may have left, testing it
        # with a ping on the way (a round trip the request caused); the log writer flushes every
        # 20 ms. Both are done well within this wait.
        time.sleep(0.15)
        after = proxy.counts.snapshot()
        assert 200 <= status < 300, (status, body)
        rid = headers.get("x-request-id") or headers.get("X-Request-Id")
        stmts = inst.statements_of(rid)
        wire = after - before
        logged = len(stmts)
        # sqlx logs each Execute and each COMMIT (not BEGIN, ROLLBACK or pings).
        seen = wire["statements"] - wire["rt_begin"] - wire["rt_rollback"] - wire["rt_other"]
        if wire["connections"] == 0 and seen == logged:
            return wire, stmts, body
    raise RuntimeError("no clean sample: background work kept running beside the request")


def summarise(samples):
    """The steady state (the sample with fewest round trips) and every sample's round trips."""
    best = min(samples, key=lambda s: s[0]["round_trips"])
    wire, stmts, _ = best
    writes = Counter()
    rows = 0
    for s in stmts:
        m = WRITE.match(s.get("db.statement", ""))
        if m:
            n = int(s.get("rows_affected", 0))
            writes[f"{m.group(1).split()[0].lower()} {m.group(2)}"] += n
            rows += n
    transactions = wire["rt_begin"] + wire["autocommit"]
    return {
        "round_trips": wire["round_trips"],
        "exchanges": wire["exchanges"],
        "statements": wire["statements"] - wire["rt_begin"] - wire["rt_commit"] - wire["rt_rollback"],
        "transactions": transactions,
        "commits": wire["rt_commit"] + wire["autocommit"],
        "rows_written": rows,
        "writes": dict(writes),
        "breakdown": {k[3:]: v for k, v in sorted(wire.items()) if k.startswith("rt_") and v},
        "round_trips_each_sample": [s[0]["round_trips"] for s in samples],
        "sql": [" ".join((s.get("db.statement") or s.get("summary", "")).split())[:120]
                for s in stmts],
    }


def pg_table_writes(db):
    """Rows inserted, updated and deleted per table so far (pg_stat_user_tables)."""
    out = pg.psql("SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables",
                  url=db.owner_url)
    t = {}
    for line in out.splitlines():
        name, i, u, d = line.split("|")
        t[name] = (int(i), int(u), int(d))
    return t


def settled_table_writes(db, limit=30.0):
    """pg_stat_user_tables once every backend has reported (PostgreSQL 15 flushes an idle
    backend's counts within about ten seconds of its last transaction): read after 11 s, then
    until two readings a second apart agree."""
    time.sleep(11)
    last, start = None, time.time()
    while time.time() - start < limit:
        now = pg_table_writes(db)
        if now == last:
            return now
        last = now
        time.sleep(1)
    return last


def deltas(before, after):
    out = {}
    for name, (i, u, d) in after.items():
        b = before.get(name, (0, 0, 0))
        delta = (i - b[0], u - b[1], d - b[2])
        if any(delta):
            out[name] = {"inserted": delta[0], "updated": delta[1], "deleted": delta[2]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", type=Path, default=None)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=12)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        # Five samples after sixteen warm-ups. With 3 after 4 (and 5 after 8), 2 runs in 10
        # here found every sample of one request on a pooled connection that had not yet
        # prepared its statements (create_role 13 round trips with a `prepare`, against 12;
        # create_api_key 16 with two, against 14); with 16, 8 runs in 8 were steady.
        args.samples, args.warmup = 5, 16
    binary = args.bin or next((p for p in (ROOT / "target/release/gatehouse",
                                           ROOT / "target/debug/gatehouse") if p.exists()), None)
    if binary is None:
        print("no gatehouse binary: cargo build --release -p gatehouse, or pass --bin", file=sys.stderr)
        return 2
    binary = binary.resolve()
    admin = urllib.parse.urlsplit(pg.ADMIN_URL)
    db = pg.Database(binary, prefix="gh_bench_rt")
    proxy = pgwire.Proxy(admin.hostname or "127.0.0.1", admin.port or 5432).start()
    root = Path(f"/tmp/gatehouse-roundtrips-{os.getpid()}")
    key = base64.b64encode(os.urandom(32)).decode()
    env = {"GATEHOUSE_MASTER_KEY": key,
           "GATEHOUSE_DATABASE_URL": db.app_url(host="127.0.0.1", port=proxy.port,
                                                query="sslmode=disable")}
    a = b = None
    results = {"binary": str(binary), "samples": args.samples, "warmup": args.warmup}
    try:
        a = Instance("a", binary, root, env)
        a.wait_ready()
        b = Instance("b", binary, root, env)
        b.wait_ready()
        status, _, _ = call(a.port, "POST", "/v1/auth/signup", {
            "email": "rt@example.com", "password": PASSWORD, "name": "Round Trip",
            "organization_name": "Round Trip Org"})
        assert status == 202, status

        def login(inst=a):
            return call(inst.port, "POST", "/v1/auth/login",
                        {"email": "rt@example.com", "password": PASSWORD})

        _, t, _ = login()
        owner = {"Authorization": f"Bearer {t['access_token']}",
                 "x-organization-id": t["organization_id"]}
        n = [0]

        def role():
            n[0] += 1
            return call(a.port, "POST", "/v1/organization/roles",
                        {"name": f"auditor-{n[0]}", "permissions": ["audit.read"]}, owner)

        def secret():
            n[0] += 1
            return call(a.port, "POST", "/v1/secrets",
                        {"name": f"secret-{n[0]}", "value": "s3cret value"}, owner)

        def api_key():
            n[0] += 1
            return call(a.port, "POST", "/v1/api-keys",
                        {"name": f"key-{n[0]}", "permissions": ["audit.read"]}, owner)

        def verify_on(inst, token):
            return lambda: call(inst.port, "GET", "/v1/auth/verify",
                                headers={"Authorization": f"Bearer {token}"})

        # Warm-up: every pooled connection of both instances prepares what these requests run.
        for _ in range(args.warmup):
            for f in (login, role, secret, api_key):
                f()
            _, t2, _ = login()
            verify_on(b, t2["access_token"])()
            verify_on(a, t2["access_token"])()
        ops = {}
        def fresh_token():
            return login()[1]["access_token"]

        def cached_on_a():
            tok = fresh_token()
            verify_on(a, tok)()  # A has now seen the session (it made it, too)
            return verify_on(a, tok)

        def unseen_by_b():
            return verify_on(b, fresh_token())

        same = lambda f: (lambda: f)
        samples = lambda make: [measure(proxy, a if make is not unseen_by_b else b, make)
                                for _ in range(args.samples)]
        ops["sign_in"] = samples(same(login))
        ops["verify_cached"] = samples(cached_on_a)
        ops["verify_uncached"] = samples(unseen_by_b)
        ops["create_role"] = samples(same(role))
        ops["create_secret"] = samples(same(secret))
        ops["create_api_key"] = samples(same(api_key))
        results["requests"] = {name: summarise(s) for name, s in ops.items()}

        # The same writes as PostgreSQL counts them: 20 sign-ins, pg_stat_user_tables deltas
        # (after waiting for the counts so far to be reported).
        if args.quick:
            raise Done
        before = settled_table_writes(db)
        lsn = pg.psql("SELECT pg_current_wal_lsn()")
        for _ in range(20):
            login()
        # WAL of the whole server over the 20 sign-ins (anything else writing then counts too,
        # and a page's first change after a checkpoint is logged whole).
        results["wal_bytes_per_sign_in"] = int(float(pg.psql(
            f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')"))) / 20
        results["pg_stat_20_sign_ins"] = deltas(before, settled_table_writes(db))
    except Done:
        pass
    finally:
        for i in (a, b):
            if i:
                i.stop()
        proxy.stop()
        db.drop()
        subprocess.run(["rm", "-rf", str(root)], check=False)

    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "roundtrips.json").write_text(json.dumps(results, indent=2) + "\n")
    report(results)
    if args.check:
        bad = []
        for name, want in EXPECTED.items():
            got = results["requests"][name]
            for k, v in want.items():
                if got[k] > v or (k != "round_trips" and got[k] != v):
                    bad.append(f"{name}.{k}: measured {got[k]}, expected {v}")
        if bad:
            print("\nround trips changed:\n  " + "\n  ".join(bad), file=sys.stderr)
            return 1
        print("\n--check: every count as expected")
    return 0


def report(results):
    print(f"\n{'request (steady state)':<26}{'round trips':>12}{'statements':>11}{'txns':>6}"
          f"{'commits':>8}{'rows written':>13}  exchanges by kind")
    for name, r in results["requests"].items():
        kinds = ", ".join(f"{k} {v}" for k, v in r["breakdown"].items())
        print(f"{name:<26}{r['round_trips']:>12}{r['statements']:>11}{r['transactions']:>6}"
              f"{r['commits']:>8}{r['rows_written']:>13}  {kinds}")
    print("(each sample's round trips: " + "; ".join(
        f"{n} {r['round_trips_each_sample']}" for n, r in results["requests"].items()) + ")")
    for name, r in results["requests"].items():
        if r["writes"]:
            print(f"  {name} writes: " + ", ".join(f"{k} {v}" for k, v in r["writes"].items()))
    if "pg_stat_20_sign_ins" not in results:
        return
    print("pg_stat_user_tables over 20 sign-ins (inserted/updated/deleted): " + ", ".join(
        f"{t} +{v['inserted']}/~{v['updated']}/-{v['deleted']}"
        for t, v in results["pg_stat_20_sign_ins"].items()))
    print(f"WAL per sign-in (server-wide, over the 20): {results['wal_bytes_per_sign_in']:.0f} bytes")


if __name__ == "__main__":
    sys.exit(main())
