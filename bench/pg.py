"""A throwaway PostgreSQL database for the benchmarks that run Gatehouse on PostgreSQL
(bench/roundtrips.py, and `python3 bench/run.py --only scaleout`).

The database is made on the server `GH_TEST_POSTGRES_URL` names (default
postgres://postgres@127.0.0.1:5432/postgres, a role that may create databases), migrated by
`gatehouse migrate` as that role (the owner, as `database_migration_url` is in a deployment), and
served as `gatehouse_app`, the role the migration creates: row-level security applies, as in
production. Only the `psql` client is needed.
"""

import os
import subprocess
import time
import urllib.parse
from pathlib import Path

ADMIN_URL = os.environ.get("GH_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def psql(sql: str, url: str = ADMIN_URL) -> str:
    """Runs `sql` and returns the unaligned, tuples-only output."""
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAXq", "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def with_database(url: str, name: str, user=None, host=None, port=None, query=None) -> str:
    """`url` with another database (and optionally user, host, port and query string)."""
    u = urllib.parse.urlsplit(url)
    netloc = u.netloc.rsplit("@", 1)[-1]
    cur_host, _, cur_port = netloc.partition(":")
    userinfo = u.netloc.rsplit("@", 1)[0] if "@" in u.netloc else ""
    if user is not None:
        userinfo = user
    netloc = f"{host or cur_host}:{port or cur_port or 5432}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urllib.parse.urlunsplit((u.scheme, netloc, "/" + name, query or "", ""))


class Database:
    """A fresh database, migrated; `drop()` removes it."""

    def __init__(self, binary: Path, prefix: str = "gh_bench"):
        self.name = f"{prefix}_{int(time.time())}_{os.urandom(4).hex()}"
        psql(f'CREATE DATABASE "{self.name}"')
        self.owner_url = with_database(ADMIN_URL, self.name)
        env = {"PATH": os.environ.get("PATH", ""), "GATEHOUSE_DATABASE_URL": self.owner_url,
               "GATEHOUSE_DATABASE_MIGRATION_URL": self.owner_url, "GATEHOUSE_LOG_LEVEL": "warn"}
        subprocess.run([str(binary), "migrate"], check=True, env=env, capture_output=True,
                       cwd="/tmp")
        # The migration creates gatehouse_app NOLOGIN (no password: this server trusts loopback).
        psql("ALTER ROLE gatehouse_app LOGIN")

    def app_url(self, host=None, port=None, query=None) -> str:
        return with_database(ADMIN_URL, self.name, user="gatehouse_app", host=host, port=port,
                             query=query)

    def drop(self) -> None:
        psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
