"""A DNS server for the integration tests (dnslib, from PyPI). Usage:

    dns_server.py PORT ZONE_FILE

Answers UDP queries on 127.0.0.1:PORT from ZONE_FILE, read again for every query so a test can
change an answer mid-run: a JSON object from lower-case names with a trailing dot to
{"A": [...], "AAAA": [...], "TXT": [...]}. A TXT value longer than 255 bytes is split into
character-strings. A name not in the file is NXDOMAIN; a name whose entry has "SERVFAIL": true
is answered SERVFAIL (the server failing). Every query's name and type is appended
to ZONE_FILE.log (so a test can show that no query was made). Prints "ready" once listening."""

import json
import sys
import time

from dnslib import AAAA, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

PORT = int(sys.argv[1])
ZONE_FILE = sys.argv[2]


class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        kind = QTYPE[request.q.qtype]
        with open(ZONE_FILE + ".log", "a", encoding="utf-8") as log:
            log.write(f"{name} {kind}\n")
        with open(ZONE_FILE, encoding="utf-8") as f:
            zone = json.load(f)
        if name not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if zone[name].get("SERVFAIL"):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        for value in zone[name].get(kind, []):
            if kind == "A":
                rdata = A(value)
            elif kind == "AAAA":
                rdata = AAAA(value)
            elif kind == "TXT":
                raw = value.encode()
                rdata = TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
            else:
                continue
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=1))
        return reply


server = DNSServer(Zone(), address="127.0.0.1", port=PORT,
                   logger=DNSLogger(log="-request,-reply,-truncated,-error", prefix=False))
server.start_thread()
print("ready", flush=True)
while True:
    time.sleep(3600)
