"""Backups (issue 22, D3): `python3 bench/run.py --only backup`.

One run on 127.0.0.1, SQLite (the default), release build:

  records      100,000 records of about 1 KiB of content each, created through POST /v1/records
               (each also writes its sealed content and an audit event).
  age          the baseline measured in the same run: Debian's `age` encrypting the backup's own
               plaintext to the same recipient (the cost of the format alone).
  backup       `gatehouse backup create` beside the idle server: seconds, plaintext bytes (the
               archive decrypted by `age -d`), archive bytes, MB/s (10^6 bytes) of the plaintext.
  verify       `gatehouse backup verify`: the whole archive decrypted and every digest checked.
  restore      `gatehouse backup restore` into a new data directory (checked first, then
               written, then the audit chains verified): seconds and MB/s of the plaintext.
  beside_load  verify-probe (open loop, 500 requests/s) on GET /v1/auth/verify, alternating a
               quiet window and one with a backup running, several rounds: p99 of each and the
               ratio of the medians.
"""

import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import run as R
from lifecycle import Conn, account

RECORDS = 100_000
ROUNDS = 3

CONFIG = """
[rate_limits]
enabled = false

[identity]
step_up_permissions = []

[backup]
recipients = ["{recipient}"]

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

BODY = "quarterly figures " * 50  # about 900 bytes of text per record


def gatehouse(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(R.TARGET / "gatehouse"), *args], cwd=data, check=True,
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "GATEHOUSE_LOG_LEVEL": "warn"})


def create_records(port: int, who: dict, n: int, workers: int = 4) -> None:
    def work(k):
        c = Conn(port)
        for i in range(k, n, workers):
            body = {"type": "report", "external_id": f"r{i}", "level": "organization",
                    "content": {"title": f"report {i}", "body": BODY, "rows": i}}
            status, _ = c.call("POST", "/v1/records", body, who["headers"])
            assert status == 201, status
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(args, results) -> None:
    for tool in ("age", "age-keygen"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required: apt-get install age")
    root = Path(tempfile.mkdtemp(prefix="gh-bench-backup-"))
    key = root / "backup.key"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = next(line.split(": ", 1)[1] for line in key.read_text().splitlines()
                     if line.startswith("# public key: "))
    data = root / "source"
    data.mkdir()
    (data / "gatehouse.toml").write_text(CONFIG.replace("{recipient}", recipient))
    port = R.free_port()
    proc = subprocess.Popen(
        [str(R.TARGET / "gatehouse"), "serve"], cwd=data,
        env={"GATEHOUSE_LISTEN": f"127.0.0.1:{port}", "GATEHOUSE_LOG_LEVEL": "warn",
             "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        R.wait_for(port, "/health/ready", time.perf_counter(), 60)
        who = account(Conn(port), "backup@example.com")
        secs, _ = timed(lambda: create_records(port, who, RECORDS))
        results["records"] = {"count": RECORDS, "create_seconds": round(secs, 1)}

        archive = root / "b0.age"
        secs, out = timed(lambda: gatehouse(data, "backup", "create", "--out", str(archive)))
        plain = root / "b0.plain"
        subprocess.run(["age", "-d", "-i", str(key), "-o", str(plain), str(archive)], check=True)
        plain_bytes = plain.stat().st_size
        results["backup"] = {
            "seconds": round(secs, 3), "plaintext_bytes": plain_bytes,
            "archive_bytes": archive.stat().st_size,
            "mb_per_s": round(plain_bytes / secs / 1e6, 1),
            "command": f"gatehouse backup create --out {archive.name}",
        }
        age_secs, _ = timed(lambda: subprocess.run(
            ["age", "-r", recipient, "-o", str(root / "age-only.age"), str(plain)], check=True))
        results["age"] = {"seconds": round(age_secs, 3),
                          "mb_per_s": round(plain_bytes / age_secs / 1e6, 1),
                          "command": "age -r RECIPIENT -o age-only.age b0.plain"}
        results["backup"]["ratio_to_age"] = round(age_secs / secs, 3)

        secs, _ = timed(lambda: gatehouse(data, "backup", "verify", str(archive),
                                          "--identity", str(key)))
        results["verify"] = {"seconds": round(secs, 3),
                             "mb_per_s": round(plain_bytes / secs / 1e6, 1)}

        target = root / "target"
        (target / "gatehouse-data").mkdir(parents=True)
        shutil.copy(data / "gatehouse-data" / "master.key", target / "gatehouse-data")
        (target / "gatehouse.toml").write_text(CONFIG.replace("{recipient}", recipient))
        secs, out = timed(lambda: gatehouse(target, "backup", "restore", str(archive),
                                            "--identity", str(key)))
        assert "chain intact" in out.stdout, out.stdout
        results["restore"] = {"seconds": round(secs, 3),
                              "mb_per_s": round(plain_bytes / secs / 1e6, 1),
                              "command": "gatehouse backup restore b0.age --identity backup.key"}

        window = max(3, int(results["backup"]["seconds"] + 1))
        quiet, during = [], []
        for i in range(ROUNDS):
            quiet.append(R.probe(port, who["token"], window))
            holder = {}

            def backup(n=i):
                holder["t"] = timed(lambda: gatehouse(
                    data, "backup", "create", "--out", str(root / f"load-{n}.age")))[0]
            t = threading.Thread(target=backup)
            t.start()
            during.append(R.probe(port, who["token"], window))
            t.join()
            during[-1]["backup_seconds"] = round(holder["t"], 3)
        q = statistics.median(r["p99_ms"] for r in quiet)
        d = statistics.median(r["p99_ms"] for r in during)
        results["beside_load"] = {"window_s": window, "quiet": quiet, "during_backup": during,
                                  "median_p99_quiet_ms": q, "median_p99_during_ms": d,
                                  "ratio": round(d / q, 2)}
    finally:
        R.stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def report(results) -> None:
    b, a, v, r, l = (results[k] for k in ("backup", "age", "verify", "restore", "beside_load"))
    print(f"records: {results['records']['count']} in {results['records']['create_seconds']} s")
    print(f"backup create: {b['seconds']} s, {b['plaintext_bytes']} plaintext bytes "
          f"({b['archive_bytes']} archived): {b['mb_per_s']} MB/s; age alone {a['mb_per_s']} MB/s "
          f"(backup takes {1 / b['ratio_to_age']:.1f}x age's time)")
    print(f"backup verify: {v['seconds']} s, {v['mb_per_s']} MB/s")
    print(f"backup restore: {r['seconds']} s, {r['mb_per_s']} MB/s")
    print(f"verify p99 quiet {l['median_p99_quiet_ms']} ms, during a backup "
          f"{l['median_p99_during_ms']} ms: {l['ratio']}x (median of {ROUNDS} rounds, "
          f"{l['window_s']} s windows at 500 requests/s)")
