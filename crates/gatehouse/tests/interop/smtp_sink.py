"""An SMTP sink for the integration tests: aiosmtpd (an independent SMTP server implementation)
on 127.0.0.1:PORT. Each message it accepts is parsed with Python's email package and written to
OUT_DIR/<n>.eml as the envelope recipients, the decoded Subject, and the decoded text/plain
part; the raw message goes beside it as <n>.raw. With a third argument "refuse" it accepts no
recipient (550, a permanent refusal) and keeps nothing. Prints "ready" once listening and runs
until killed."""

import email
import email.policy
import os
import sys
import time

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, out_dir, refuse=False):
        self.out_dir = out_dir
        self.refuse = refuse
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        name = os.path.join(self.out_dir, f"{time.time_ns()}-{self.n}.eml")
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = msg.get_body(preferencelist=("plain",)).get_content()
        html = msg.get_body(preferencelist=("html",))
        with open(name[:-4] + ".raw", "wb") as f:
            f.write(raw)
        tmp = name + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("X-Envelope-To: " + ",".join(envelope.rcpt_tos) + "\n")
            f.write("Subject: " + str(msg["subject"]) + "\n")
            f.write("X-Has-Html: " + ("yes" if html is not None else "no") + "\n\n")
            f.write(text)
        os.rename(tmp, name)
        return "250 OK"


def main():
    port = int(sys.argv[1])
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    refuse = len(sys.argv) > 3 and sys.argv[3] == "refuse"
    controller = Controller(Keep(out_dir, refuse), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
