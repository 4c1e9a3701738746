"""A counting TCP proxy for PostgreSQL's wire protocol (version 3), for bench/roundtrips.py.

Gatehouse connects to the proxy instead of the server (`database_url` with the proxy's port and
`sslmode=disable`, so the messages can be read); the proxy passes every byte on unchanged and
counts, across all connections, what the client asked the server to do:

  - exchanges: each Sync (extended protocol) or simple Query, answered by one ReadyForQuery;
    each is one of:
      ping      a Sync alone (sqlx tests an idle connection this way before handing it out);
      prepare   Parse and Describe without Execute (a statement this connection has not prepared);
      execute   a statement run (Bind and Execute; Parse too when it is prepared on the way);
      begin, commit, rollback, other   a simple Query, by its text;
  - round trips: the times the client waited for the server, that is exchanges sent while none
    was outstanding on the connection (an exchange sent behind another, as sqlx sends a pending
    ROLLBACK and its ping together, shares its round trip);
  - statements: Execute messages and simple Queries;
  - autocommit: Executes sent outside a transaction (each is a transaction of its own);
  - connections opened.
Nothing is changed or delayed beyond the copy.
"""

import asyncio
import struct
import threading
from collections import Counter

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = Counter()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.c[key] += n

    def snapshot(self) -> Counter:
        with self.lock:
            return Counter(self.c)


class Conn:
    """One client connection's parsing state."""

    def __init__(self, counts: Counts):
        self.counts = counts
        self.startup = True
        self.opaque = False
        self.expect_ssl_answer = False
        self.status = b"I"  # from the last ReadyForQuery
        self.flight = Counter()  # extended-protocol messages since the last Sync
        self.outstanding = 0  # exchanges sent and not yet answered with ReadyForQuery
        self.fbuf = b""
        self.bbuf = b""

    def frontend(self, data: bytes) -> None:
        if self.opaque:
            return
        self.fbuf += data
        while True:
            if self.startup:
                if len(self.fbuf) < 8:
                    return
                length, code = struct.unpack("!II", self.fbuf[:8])
                if len(self.fbuf) < length:
                    return
                self.fbuf = self.fbuf[length:]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    self.expect_ssl_answer = True
                    continue
                self.startup = False
                continue
            if len(self.fbuf) < 5:
                return
            kind = self.fbuf[0:1]
            (length,) = struct.unpack("!I", self.fbuf[1:5])
            if len(self.fbuf) < 1 + length:
                return
            body = self.fbuf[5:1 + length]
            self.fbuf = self.fbuf[1 + length:]
            self.message(kind, body)

    def message(self, kind: bytes, body: bytes) -> None:
        c = self.counts
        if kind == b"Q":
            text = body.rstrip(b"\0").decode(errors="replace").strip().upper()
            label = next((w for w in ("BEGIN", "COMMIT", "ROLLBACK") if text.startswith(w)), "OTHER")
            self.exchange()
            c.add(f"rt_{label.lower()}")
            c.add("statements")
        elif kind in (b"P", b"B", b"E", b"D", b"C", b"H"):
            self.flight[kind] += 1
            if kind == b"E":
                c.add("statements")
                if self.status == b"I":
                    c.add("autocommit")
        elif kind == b"S":
            self.exchange()
            if not self.flight:
                c.add("rt_ping")
            elif self.flight[b"E"]:
                c.add("rt_execute")
            elif self.flight[b"P"]:
                c.add("rt_prepare")
            else:
                c.add("rt_other_sync")
            self.flight.clear()

    def exchange(self) -> None:
        self.counts.add("exchanges")
        if self.outstanding == 0:
            self.counts.add("round_trips")
        self.outstanding += 1

    def backend(self, data: bytes) -> None:
        if self.opaque:
            return
        self.bbuf += data
        while True:
            if self.expect_ssl_answer:
                if not self.bbuf:
                    return
                answer, self.bbuf = self.bbuf[0:1], self.bbuf[1:]
                self.expect_ssl_answer = False
                if answer in (b"S", b"G"):
                    # Encrypted from here on: nothing more can be read.
                    self.opaque = True
                    self.counts.add("encrypted_connections")
                    return
                continue
            if len(self.bbuf) < 5:
                return
            kind = self.bbuf[0:1]
            (length,) = struct.unpack("!I", self.bbuf[1:5])
            if len(self.bbuf) < 1 + length:
                return
            body = self.bbuf[5:1 + length]
            self.bbuf = self.bbuf[1 + length:]
            if kind == b"Z":
                self.status = body[0:1]
                self.outstanding = max(0, self.outstanding - 1)
                self.counts.add("ready_for_query")


class Proxy:
    """Listens on 127.0.0.1:`port` (0: any free port) and forwards to `upstream`."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.counts = Counts()
        self.port = None
        self._ready = threading.Event()
        self._loop = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Proxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.counts.add("connections")
        conn = Conn(self.counts)

        async def pipe(src, dst, see):
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        break
                    see(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    dst.close()
                except OSError:
                    pass

        await asyncio.gather(pipe(reader, up_writer, conn.frontend),
                             pipe(up_reader, writer, conn.backend))
