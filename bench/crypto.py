#!/usr/bin/env python3
"""Field-encryption benchmark: runs the criterion bench `gatehouse-crypto/benches/seal.rs` (our
field envelope beside aws-lc-rs's raw AES-256-GCM, same run) and, when `openssl` is installed,
`openssl speed -evp aes-256-gcm` on the same sizes as an outside reference. Prints a table with
the ratio raw/ours (1.0 = no overhead).

Usage: python3 bench/crypto.py [--measurement-time 3]
"""

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = [16, 1024, 65536]


def estimate_ns(group: str, func: str, size: int) -> float:
    path = ROOT / "target" / "criterion" / group / func / str(size) / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]


def openssl_speed() -> dict:
    if not shutil.which("openssl"):
        return {}
    out = subprocess.run(
        ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", "1", "-bytes", "16"],
        capture_output=True, text=True, check=False).stdout
    res = {}
    for size in SIZES:
        o = subprocess.run(
            ["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", "1", "-bytes", str(size)],
            capture_output=True, text=True, check=False).stdout
        m = re.search(r"^aes-256-gcm\s+([\d.]+)k", o, re.M | re.I)
        if m:
            res[size] = float(m.group(1)) * 1000  # bytes per second
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measurement-time", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(
        ["cargo", "bench", "-p", "gatehouse-crypto", "--bench", "seal", "--",
         "--warm-up-time", "1", "--measurement-time", str(args.measurement_time)],
        cwd=ROOT, check=True)
    ssl = openssl_speed()
    print()
    print(f"{'op':<6}{'bytes':>7}{'raw ns':>10}{'ours ns':>10}{'ratio':>8}{'ours MB/s':>11}{'openssl MB/s':>14}")
    for group in ("seal", "open"):
        for size in SIZES:
            raw = estimate_ns(group, "raw_aead", size)
            ours = estimate_ns(group, "field_envelope", size)
            mbs = size / ours * 1e3
            ref = f"{ssl[size] / 1e6:.0f}" if size in ssl and group == "seal" else "-"
            print(f"{group:<6}{size:>7}{raw:>10.0f}{ours:>10.0f}{raw / ours:>8.2f}{mbs:>11.0f}{ref:>14}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
