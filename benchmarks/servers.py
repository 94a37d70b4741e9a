"""
The servers avatard is measured against, each a small Twisted program:

  - C{baseline}: the original style, one C{runQuery} through an adbapi
    C{ConnectionPool} over SQLite per request, no cache, replies written as
    lookups complete (so pipelined replies can come back out of order);
  - C{baseline-pg}: the same over PostgreSQL (psycopg, adbapi's default
    pool of 3 to 5 threads and connections), C{DB} a C{postgresql://} URL;
  - C{ceiling}: a C{LineReceiver} answering from a dict of every reply,
    loaded from the database at start: no database at all while serving;
  - C{trivial}: writes one fixed reply per line received without parsing
    anything, to show how far the load generator goes beyond the others.

Run as C{python -m benchmarks.servers KIND DB PORT}.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any, cast

from twisted.enterprise.adbapi import ConnectionPool
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.protocols.basic import LineReceiver

NOT_FOUND = b"ERR not-found no such login\r\n"
BAD_REQUEST = b"ERR bad-request usage: WHO <login>\r\n"


def render(login: str, name: str, forname: str) -> bytes:
    return f"OK Mr '{forname} {name}' is connected under '{login}'\r\n".encode()


class Writer(Protocol):
    """
    Keeps its transport's C{write}, for the hot paths below.
    """

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.write = self.transport.write


class Baseline(Writer, LineReceiver):
    delimiter = b"\n"

    query = "SELECT login, name, forname FROM users WHERE login = ?"

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def lineReceived(self, line: bytes) -> None:
        words = line.decode("utf-8", "replace").split()
        if len(words) != 2 or words[0].upper() != "WHO":
            self.write(BAD_REQUEST)
            return
        d = self.pool.runQuery(self.query, (words[1],))
        d.addCallback(self._found)
        d.addErrback(lambda _: self.write(b"ERR unavailable\r\n"))

    def _found(self, rows: list[tuple[str, str, str]]) -> None:
        self.write(render(*rows[0]) if rows else NOT_FOUND)


class PostgresBaseline(Baseline):
    query = "SELECT login, name, forname FROM users WHERE login = %s"


class Ceiling(Writer, LineReceiver):
    delimiter = b"\n"

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = replies

    def lineReceived(self, line: bytes) -> None:
        words = line.split()
        if len(words) != 2 or words[0].upper() != b"WHO":
            self.write(BAD_REQUEST)
            return
        self.write(self.replies.get(words[1], NOT_FOUND))


class Trivial(Writer):
    reply = b"OK\r\n"

    def dataReceived(self, data: bytes) -> None:
        self.write(self.reply * data.count(b"\n"))


def factory(kind: str, db: str, reactor: Any) -> Factory:
    if kind == "baseline":
        pool = ConnectionPool("sqlite3", db, check_same_thread=False, cp_reactor=reactor)
        reactor.addSystemEventTrigger("during", "shutdown", pool.close)
        return Factory.forProtocol(lambda: Baseline(pool))
    if kind == "baseline-pg":
        pool = ConnectionPool("psycopg", db, autocommit=True, cp_reactor=reactor)
        reactor.addSystemEventTrigger("during", "shutdown", pool.close)
        return Factory.forProtocol(lambda: PostgresBaseline(pool))
    if kind == "ceiling":
        connection = sqlite3.connect(db)
        replies = {
            login.encode(): render(login, name, forname)
            for login, name, forname in connection.execute("SELECT login, name, forname FROM users")
        }
        connection.close()
        return Factory.forProtocol(lambda: Ceiling(replies))
    if kind == "trivial":
        return Factory.forProtocol(Trivial)
    raise SystemExit(f"unknown server kind {kind!r}: baseline, baseline-pg, ceiling or trivial")


def main(argv: list[str]) -> None:
    from twisted.internet import reactor

    kind, db, port = argv
    reactor.listenTCP(
        int(port), cast(ServerFactory, factory(kind, db, reactor)), backlog=4096, interface="127.0.0.1"
    )
    print("ready", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
