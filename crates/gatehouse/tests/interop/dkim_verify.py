"""Verifies the DKIM signature of a message with dkimpy (from PyPI), an implementation
independent of Gatehouse's. Usage:

    dkim_verify.py MESSAGE_FILE RECORD

RECORD is the TXT record the signature's selector would find in DNS ("v=DKIM1; k=rsa; p=...");
dkimpy is given it through its dnsfunc hook, so no DNS is needed. Prints "pass" and exits 0 when
the signature verifies, prints "fail" and the reason and exits 1 when it does not. Also prints
the signature's d=, s= and h= tags."""

import email
import sys

import dkim
import dkim.util

with open(sys.argv[1], "rb") as f:
    message = f.read()
record = sys.argv[2].encode()
asked = []


def dnsfunc(name, timeout=5):
    asked.append(name.decode() if isinstance(name, bytes) else name)
    return record


verifier = dkim.DKIM(message)
ok = verifier.verify(dnsfunc=dnsfunc)
header = email.message_from_bytes(message).get("DKIM-Signature", "")
sig = dkim.util.parse_tag_value(header.encode()) if header else {}
print("asked", ",".join(asked))
for tag in (b"d", b"s", b"h", b"c", b"a"):
    print(tag.decode(), sig.get(tag, b"").decode().replace(" ", "").replace("\r\n", ""))
if ok:
    print("pass")
    sys.exit(0)
print("fail", getattr(verifier, "err", None) or "signature did not verify")
sys.exit(1)
