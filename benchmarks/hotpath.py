"""
What a request costs avatard's own code, without the kernel: C{python -m
benchmarks.hotpath}.

The daemon is built as C{twistd avatard} builds it (L{avatard.tap}), on a
memory reactor, and fed request lines through a C{StringTransport} whose
writes go nowhere; the ceiling of L{benchmarks.servers} is fed the same
lines.  Every configuration is timed in turn, round after round, and the
best round of each is kept (the least disturbed by whatever else the
machine does).  It prints nanoseconds per request, and per connection for
connections of one request each: built, sent one line, its reply sent,
its input ended (as a client that reads its reply and closes ends it) and
closed, while another connection stays open.

The memory reactor's clock moves on as if requests came at C{--rate} a
second (30,000 by default, what the daemon serves over 50 connections), so
that its once-a-millisecond work (a read transaction, a check for commits)
happens about as often as under that load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, ITransport
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from avatard.protocol.factory import WhoFactory
from avatard.protocol.proxy import ProxyHeaderFactory, ProxyHeaderProtocol, ProxyHeaders
from avatard.tap import Options, serviceTree
from benchmarks.run import login, makeDatabase
from benchmarks.servers import Ceiling, render

USERS = 100_000
DISTINCT = 1_000


class NullTransport(StringTransport):
    """
    A transport that forgets what is written to it, as if it had sent it at
    once: it tells a pull producer so after every write.
    """

    def write(self, data: bytes) -> None:
        self._sent()

    def writeSequence(self, data: object) -> None:
        self._sent()

    def _sent(self) -> None:
        if self.producer is not None and not self.streaming:
            self.producer.resumeProducing()


PEER = IPv4Address("TCP", "127.0.0.1", 40000)

Server = tuple[Protocol, MemoryReactorClock, Callable[[], Protocol]]
"""
A connected protocol, the clock it runs on, and how to make another one.
"""


def whoFactory(database: Path, *arguments: str) -> tuple[WhoFactory, MemoryReactorClock]:
    """
    @return: the factory of WHO connections C{twistd avatard} would build,
        on a memory reactor, and that reactor.
    """
    options = Options()
    options.parseOptions(["--db", str(database), *arguments])
    reactor = MemoryReactorClock()
    service = serviceTree(options, reactor)
    factory: WhoFactory = service.servers[0].factory
    return factory, reactor


def avatard(database: Path, directory: Path, *arguments: str) -> Server:
    factory, reactor = whoFactory(database, *arguments)

    def build() -> Protocol:
        return factory.buildProtocol(PEER)

    protocol = build()
    protocol.makeConnection(NullTransport())
    return protocol, reactor, build


HEADER = b"PROXY TCP4 192.0.2.7 127.0.0.1 40000 8787\r\n"
"""
What HAProxy sends first on each connection (as version 1: the same
connection follows either version's header).
"""


class HeaderFirst(ProxyHeaderProtocol):
    """
    A connection on a C{haproxy:} port whose PROXY header is read as soon
    as it is made, as HAProxy sends it at once.
    """

    def makeConnection(self, transport: ITransport) -> None:
        super().makeConnection(transport)
        self.dataReceived(HEADER)


def behindHAProxy(database: Path, directory: Path) -> Server:
    """
    avatard on a C{haproxy:} port: each connection begins with a PROXY
    header from loopback, read before the requests.
    """
    factory, reactor = whoFactory(database)
    proxied = ProxyHeaderFactory(factory, ProxyHeaders(reactor, factory.counters, factory.limits.idleTimeout))
    proxied.protocol = HeaderFirst

    def buildProxied() -> Protocol:
        protocol = proxied.buildProtocol(PEER)
        assert protocol is not None
        return protocol

    protocol = buildProxied()
    protocol.makeConnection(NullTransport())
    return protocol, reactor, buildProxied


def ceiling(database: Path) -> Server:
    connection = sqlite3.connect(database)
    replies = {
        user.encode(): render(user, name, forname)
        for user, name, forname in connection.execute("SELECT login, name, forname FROM users")
    }
    connection.close()
    protocol = Ceiling(replies)
    protocol.makeConnection(NullTransport())
    return protocol, MemoryReactorClock(), lambda: Ceiling(replies)


def feed(
    protocol: Protocol, clock: MemoryReactorClock, chunks: list[bytes], perChunk: int, rate: float
) -> float:
    """
    @return: nanoseconds per request to feed C{chunks} to C{protocol}, the
        clock moving on as if requests came at C{rate} a second.
    """
    every = max(1, 32 // perChunk)
    step = every * perChunk / rate
    started = time.perf_counter()
    for n, chunk in enumerate(chunks):
        protocol.dataReceived(chunk)
        if n % every == every - 1:
            clock.advance(step)
    return (time.perf_counter() - started) / (len(chunks) * perChunk) * 1e9


def connections(
    build: Callable[[], Protocol], clock: MemoryReactorClock, lines: list[bytes], rate: float
) -> float:
    """
    @return: nanoseconds per connection to open one connection per line,
        send the line, and end the connection as a client that read its
        reply and closed does (the transport has sent everything, then the
        client's input ends), the clock moving on as if connections came
        at C{rate} a second.
    """
    done = Failure(ConnectionDone())
    every = 32
    started = time.perf_counter()
    for n, line in enumerate(lines):
        protocol = build()
        transport = NullTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(line)
        halfCloseable = IHalfCloseableProtocol(protocol, None)
        if halfCloseable is not None:
            halfCloseable.readConnectionLost()
        protocol.connectionLost(done)
        if n % every == every - 1:
            clock.advance(every / rate)
    return (time.perf_counter() - started) / len(lines) * 1e9


@contextmanager
def workspace() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="avatard-hotpath-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9, help="rounds of every measurement (default 9)")
    parser.add_argument("--requests", type=int, default=100_000, help="requests per measurement")
    parser.add_argument("--rate", type=float, default=30_000, help="requests a second, as the clock counts")
    parser.add_argument(
        "--connection-rate", type=float, default=10_000, help="connections a second, as the clock counts"
    )
    parser.add_argument(
        "--count",
        metavar="SERVER",
        help="only open --requests connections of one request each on SERVER (a name of the table), "
        "untimed: run it under callgrind twice, with two --requests, and divide the difference in "
        "instructions by the difference in connections",
    )
    options = parser.parse_args()
    with workspace() as directory:
        database = directory / "users.sqlite"
        makeDatabase(database, USERS)
        lines = [f"WHO {login(n * (USERS // DISTINCT))}\n".encode() for n in range(DISTINCT)]
        single = [lines[n % DISTINCT] for n in range(options.requests)]
        pipelined = [b"".join(single[n : n + 16]) for n in range(0, options.requests, 16)]
        accessLog = str(directory / "access.log")
        oneShot = single[: options.requests // 5]
        servers: dict[str, Callable[[], Server]] = {
            "ceiling (dict, no database)": lambda: ceiling(database),
            "avatard": lambda: avatard(database, directory),
            "avatard --port haproxy:tcp:... (PROXY header)": lambda: behindHAProxy(database, directory),
            "avatard --allow 127.0.0.0/8 --rate-limit 100000000/1": lambda: avatard(
                database, directory, "--allow", "127.0.0.0/8", "--rate-limit", "100000000/1"
            ),
            "avatard --metrics": lambda: avatard(database, directory, "--metrics", "tcp:0"),
            "avatard --access-log FILE": lambda: avatard(database, directory, "--access-log", accessLog),
            "avatard --cache-size 0 (every request a read)": lambda: avatard(
                database, directory, "--cache-size", "0"
            ),
        }
        if options.count is not None:
            if options.count not in servers:
                parser.error(f"--count: no server {options.count!r}; the servers are: {', '.join(servers)}")
            _, clock, another = servers[options.count]()
            connections(another, clock, lines, options.connection_rate)
            connections(another, clock, single, options.connection_rate)
            return
        best: dict[tuple[str, str], float] = {}
        built = {name: build() for name, build in servers.items()}
        for protocol, clock, _ in built.values():
            # Warm up: every distinct line once, so that the cache holds them.
            feed(protocol, clock, lines, 1, options.rate)
        for _ in range(options.rounds):
            for name, (protocol, clock, another) in built.items():
                for workload, chunks, per in (
                    ("one line per read", single, 1),
                    ("16 lines per read", pipelined, 16),
                ):
                    ns = feed(protocol, clock, chunks, per, options.rate)
                    best[name, workload] = min(ns, best.get((name, workload), ns))
                # The first connection stays open meanwhile, as others do under load.
                ns = connections(another, clock, oneShot, options.connection_rate)
                best[name, "connection"] = min(ns, best.get((name, "connection"), ns))
        if os.path.exists(accessLog):
            os.unlink(accessLog)
    print(
        f"ns per request, best of {options.rounds} rounds of {options.requests:,} requests "
        f"at {options.rate:,.0f} a second of the clock; one request per connection: "
        f"ns per connection, {len(oneShot):,} connections at {options.connection_rate:,.0f} a second"
    )
    print("| server | one line per read | 16 lines per read | one request per connection |")
    print("|---|---|---|---|")
    for name in servers:
        print(
            f"| {name} | {best[name, 'one line per read']:,.0f} | {best[name, '16 lines per read']:,.0f} "
            f"| {best[name, 'connection']:,.0f} |"
        )


if __name__ == "__main__":
    main()
