"""A webhook receiver for the integration tests, verifying with the official Standard Webhooks
library for Python (standardwebhooks, from PyPI). Usage:

    webhook_receiver.py PORT SECRET_FILE OUT_FILE [FAIL_FIRST]

Listens on 127.0.0.1:PORT. Each POST is verified with the secret read from SECRET_FILE at that
moment (one `whsec_...` per line: any line may verify, as during a rotation). It answers 500 to
the first FAIL_FIRST requests (default 0), 401 to a request that does not verify, and 204
otherwise. Every request is appended to OUT_FILE as one JSON line: its webhook-id, whether it
verified, the status it was answered, the event type, and how many signatures it carried.
Prints "ready" once listening and runs until killed."""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook

PORT = int(sys.argv[1])
SECRET_FILE = sys.argv[2]
OUT_FILE = sys.argv[3]
FAIL_FIRST = int(sys.argv[4]) if len(sys.argv) > 4 else 0
lock = threading.Lock()
seen = {"n": 0}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with open(SECRET_FILE, encoding="utf-8") as f:
            secrets = [line.strip() for line in f if line.strip()]
        verified = False
        for secret in secrets:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
                break
            except Exception:
                pass
        with lock:
            seen["n"] += 1
            n = seen["n"]
        if n <= FAIL_FIRST:
            status = 500
        elif not verified:
            status = 401
        else:
            status = 204
        try:
            kind = json.loads(body).get("type")
        except Exception:
            kind = None
        record = {
            "id": headers.get("webhook-id"),
            "verified": verified,
            "status": status,
            "type": kind,
            "signatures": len(headers.get("webhook-signature", "").split()),
        }
        with lock:
            with open(OUT_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("ready", flush=True)
server.serve_forever()
