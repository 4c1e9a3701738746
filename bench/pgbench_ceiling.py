#!/usr/bin/env python3
"""What one PostgreSQL primary on this machine commits, with pgbench, for docs/SCALING.md.

Four bounded runs (each `--seconds` long, `--clients` connections over loopback, in a throwaway
database that is dropped afterwards):
  1. tpcb-like, pgbench's default: one commit of 3 updates, 1 insert and 1 select;
  2. select-only (-S): one primary-key read per transaction, the statement rate with no writes;
  3. sign-in shaped, many organisations: the statements of one Gatehouse sign-in as
     bench/roundtrips.py lists them (a read transaction of 6 statements, ended by ROLLBACK; a
     write transaction of 11 statements, 3 of them writes: a session row, an audit event, the
     organisation's audit chain head), on stand-in tables with rows of roughly Gatehouse's size, each sign-in in a random
     one of 1000 organisations;
  4. the same, every sign-in in one organisation: each commit then waits for the chain head the
     one before it holds (`SELECT ... FOR UPDATE` until COMMIT), as an organisation's audited
     changes do in Gatehouse.
Run 3 is the model of sign-ins per second one primary takes; run 4 of one organisation.

Usage: python3 bench/pgbench_ceiling.py [--seconds 20] [--clients 24] [--threads 2]
Needs pgbench and psql and the PostgreSQL that GH_TEST_POSTGRES_URL names (bench/pg.py);
writes bench/out/pgbench.json.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pg

ROOT = Path(__file__).resolve().parent.parent

SCHEMA = """
CREATE TABLE gh_users (id bigint PRIMARY KEY, email text UNIQUE, hash text);
CREATE TABLE gh_orgs (id int PRIMARY KEY, name text);
CREATE TABLE gh_members (user_id bigint, org_id int, role text, PRIMARY KEY (org_id, user_id));
CREATE INDEX ON gh_members (user_id);
CREATE TABLE gh_keys (org_id int, version int, wrapped bytea, PRIMARY KEY (org_id, version));
CREATE TABLE gh_heads (org_id int PRIMARY KEY, seq bigint NOT NULL, hash bytea NOT NULL);
CREATE TABLE gh_sessions (id uuid PRIMARY KEY, user_id bigint, org_id int, device text,
  refresh_hash bytea, created_at timestamptz, expires_at timestamptz);
CREATE INDEX ON gh_sessions (user_id);
CREATE TABLE gh_events (org_id int, seq bigint, id uuid, at timestamptz, action text,
  details text, prev_hash bytea, hash bytea, PRIMARY KEY (org_id, seq));
INSERT INTO gh_orgs SELECT g, 'org ' || g FROM generate_series(1, 1000) g;
INSERT INTO gh_users SELECT g, 'user' || g || '@example.com', repeat('h', 97)
  FROM generate_series(1, 10000) g;
INSERT INTO gh_members SELECT g, 1 + g % 1000, 'owner' FROM generate_series(1, 10000) g;
INSERT INTO gh_keys SELECT g, 1, decode(repeat('ab', 60), 'hex') FROM generate_series(1, 1000) g;
INSERT INTO gh_heads SELECT g, 1, decode(repeat('cd', 32), 'hex') FROM generate_series(1, 1000) g;
"""

# One sign-in: the read transaction (three declarations, the account, its memberships, its
# second factors), then the write transaction (a declaration, the session, entering the scope,
# three reads, the organisation's row, the chain head: insert-if-missing, lock, the event, the
# new head). Same statement count and writes as bench/roundtrips.py's sign_in.
SIGN_IN = """
\\set user random(1, 10000)
\\set org random(1, :orgs)
BEGIN;
SELECT set_config('gh.user_id', :user::text, true);
SELECT id, hash FROM gh_users WHERE email = 'user' || :user || '@example.com';
SELECT set_config('gh.user_id', :user::text, true);
SELECT org_id, role FROM gh_members WHERE user_id = :user;
SELECT set_config('gh.user_id', :user::text, true);
SELECT 1 FROM gh_users WHERE id = :user AND hash IS NULL;
ROLLBACK;
BEGIN;
SELECT set_config('gh.session', 'x', true);
INSERT INTO gh_sessions VALUES (gen_random_uuid(), :user, :org, repeat('d', 60),
  decode(repeat('ef', 32), 'hex'), now(), now() + interval '7 days');
SELECT set_config('gh.org_id', :org::text, true);
SELECT wrapped FROM gh_keys WHERE org_id = :org AND version = 1;
SELECT wrapped FROM gh_keys WHERE org_id = :org ORDER BY version;
SELECT 1 FROM gh_members WHERE org_id = :org AND user_id = -1;
SELECT 1 FROM gh_orgs WHERE id = :org FOR KEY SHARE;
INSERT INTO gh_heads VALUES (:org, 0, ''::bytea) ON CONFLICT (org_id) DO NOTHING;
SELECT seq FROM gh_heads WHERE org_id = :org FOR UPDATE \\gset
INSERT INTO gh_events VALUES (:org, :seq + 1, gen_random_uuid(), now(), 'session.created',
  repeat('e', 300), decode(repeat('01', 32), 'hex'), decode(repeat('02', 32), 'hex'));
UPDATE gh_heads SET seq = :seq + 1, hash = decode(repeat('03', 32), 'hex') WHERE org_id = :org;
COMMIT;
"""


def pgbench(args, extra, url) -> dict:
    cmd = ["pgbench", "-n", "-c", str(args.clients), "-j", str(args.threads), "-T",
           str(args.seconds), "-M", "prepared", *extra, url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    return {"tps": tps, "latency_ms": float(lat.group(1)) if lat else None,
            "failed": int(failed.group(1)) if failed else 0,
            "command": " ".join(c if c != url else "<database>" for c in cmd)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--clients", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    name = f"gh_bench_pgbench_{int(time.time())}_{os.urandom(3).hex()}"
    pg.psql(f'CREATE DATABASE "{name}"')
    url = pg.with_database(pg.ADMIN_URL, name)
    results = {"machine": {"cpus": os.cpu_count()},
               "server": {k: pg.psql(f"SHOW {k}") for k in (
                   "server_version", "fsync", "synchronous_commit", "wal_level",
                   "shared_buffers", "max_connections")}}
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", url], check=True, capture_output=True)
        pg.psql(SCHEMA, url=url)
        pg.psql("VACUUM ANALYZE", url=url)
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "sign_in.sql"
            script.write_text(SIGN_IN)
            results["tpcb_like"] = pgbench(args, [], url)
            results["select_only"] = pgbench(args, ["-S"], url)
            results["sign_in_1000_orgs"] = pgbench(args, ["-f", str(script), "-D", "orgs=1000"], url)
            results["sign_in_one_org"] = pgbench(args, ["-f", str(script), "-D", "orgs=1"], url)
    finally:
        pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "pgbench.json").write_text(json.dumps(results, indent=2) + "\n")
    s = results["server"]
    print(f"PostgreSQL {s['server_version']} on loopback, {os.cpu_count()} CPUs shared with pgbench; "
          f"fsync {s['fsync']}, synchronous_commit {s['synchronous_commit']}, "
          f"{args.clients} clients, {args.seconds} s each")
    for key, label in (("tpcb_like", "tpcb-like (3 updates, 1 insert, 1 select; 1 commit)"),
                       ("select_only", "select-only (1 read)"),
                       ("sign_in_1000_orgs", "sign-in shaped, 1000 organisations"),
                       ("sign_in_one_org", "sign-in shaped, one organisation")):
        r = results[key]
        print(f"  {label:<52} {r['tps']:>9.0f} tx/s  latency {r['latency_ms']} ms  failed {r['failed']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
