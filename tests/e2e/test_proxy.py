"""
End to end: the real daemon's C{haproxy:} ports, sent PROXY headers by
hand (HAProxy itself is in C{test_haproxy.py}).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from avatard.protocol.proxyheader import V2_SIGNATURE
from tests.daemon import LOG_ERRORS, Daemon, receiveAll, receiveLines, residentSize, waitFor
from tests.helpers import TUTORIAL_REPLIES, parseStats, selfSignedCertificate, tutorialDatabase
from tests.tlsclient import requestsThenClose

RATE_LIMITED = b"ERR rate-limit too many requests, retry later\r\n"


def systemProgram(name: str, package: str) -> str:
    """
    @return: the path of program C{name}.
    @raise SkipTest: it is not installed; under CI (C{CI=true}) the test
        fails instead.
    """
    found = shutil.which(name)
    if found is None:
        problem = f"{name} is not installed (apt-get install {package})"
        if os.environ.get("CI") == "true":
            raise AssertionError(problem)
        raise SkipTest(problem)
    return found


def header(source: str, port: int = 40000) -> bytes:
    """
    @return: a version 1 PROXY header naming IPv4 client C{source}.
    """
    return f"PROXY TCP4 {source} 198.51.100.1 {port} 8787\r\n".encode()


def oneShots(nc: str, port: int, data: bytes, count: int) -> list[bytes]:
    """
    Run C{count} one-shot clients, C{nc -N} sending C{data} then ending
    their input, one after the other.

    @return: what each received.
    """
    return [
        subprocess.run(
            [nc, "-N", "127.0.0.1", str(port)], input=data, capture_output=True, timeout=30, check=False
        ).stdout
        for _ in range(count)
    ]


class ProxyPortTests(SynchronousTestCase):
    """
    A daemon with a C{haproxy:} port, and a plain one to ask C{STATS} on.
    """

    def start(self, *arguments: str) -> Daemon:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            "haproxy:tcp:0:interface=127.0.0.1",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--access-log",
            "-",
            *arguments,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertEqual(len(daemon.addresses), 2, daemon.text())
        return daemon

    def connect(self, daemon: Daemon, index: int = 0, source: str = "127.0.0.1") -> socket.socket:
        port = int(daemon.addresses[index].rsplit(":", 1)[1])
        return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))

    def stats(self, daemon: Daemon) -> dict[str, float]:
        with self.connect(daemon, 1) as s:
            s.sendall(b"STATS\n")
            return parseStats(receiveLines(s, 1))

    def assertCleanLog(self, daemon: Daemon) -> None:
        log = daemon.text()
        for phrase in LOG_ERRORS:
            self.assertNotIn(phrase, log)

    def test_claimedSourceInTheAccessLog(self) -> None:
        """
        A request after a PROXY header is answered and logged under the
        client the header names, port included.
        """
        daemon = self.start()
        with self.connect(daemon) as s:
            s.sendall(header("203.0.113.9", 41234) + b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
        self.assertTrue(waitFor(lambda: "203.0.113.9:41234 WHO ok" in daemon.text()), daemon.text())
        self.assertNotIn("127.0.0.1", "".join(line for line in daemon.log if "WHO ok" in line))
        self.assertCleanLog(daemon)

    def test_senderOutsideProxyFromRefused(self) -> None:
        """
        With C{--proxy-from 10.0.0.0/8}, a connection from 127.0.0.1 is
        closed without a reply, whatever it sends; counted in C{STATS};
        reported once, however many come.
        """
        daemon = self.start("--proxy-from", "10.0.0.0/8")
        for _ in range(3):
            with self.connect(daemon) as s:
                s.sendall(header("203.0.113.9") + b"WHO yoen\n")
                try:
                    received = receiveAll(s)
                except ConnectionResetError:
                    received = b""
                self.assertEqual(received, b"")
        self.assertEqual(self.stats(daemon)["connections.proxy-refused"], 3)
        # The log file is written after the replies: wait for the line.
        self.assertTrue(waitFor(lambda: "outside --proxy-from (10.0.0.0/8)" in daemon.text()), daemon.text())
        self.assertEqual(daemon.text().count("outside --proxy-from (10.0.0.0/8)"), 1, daemon.text())
        self.assertNotIn("WHO ok", daemon.text())
        self.assertCleanLog(daemon)

    def test_malformedProxyFromRefusesTheStart(self) -> None:
        """
        A C{--proxy-from} that is not a network stops the start with one
        line naming it.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        daemon = Daemon(directory, "--db", db, "--proxy-from", "10.0.0.1/8")
        self.assertNotEqual(daemon.wait(), 0)
        self.assertIn(
            "--proxy-from: '10.0.0.1/8' has bits set past its prefix: did you mean 10.0.0.0/8?",
            daemon.text(),
        )
        self.assertNotIn("Traceback", daemon.text())

    def test_noHeaderClosedWithoutReply(self) -> None:
        """
        A connection that starts with a request line instead of a header
        is closed without a reply; one whose header never completes is
        closed after the idle timeout, without a reply either.
        """
        daemon = self.start("--idle-timeout", "1")
        with self.connect(daemon) as s:
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveAll(s), b"")
        with self.connect(daemon) as s:
            s.sendall(b"PROXY TCP4 203.0.113.9")
            started = time.monotonic()
            self.assertEqual(receiveAll(s), b"")
            self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(self.stats(daemon)["connections.proxy-invalid"], 2)
        self.assertCleanLog(daemon)

    def test_maxPerIPCountsClaimedAddresses(self) -> None:
        """
        C{--max-per-ip} counts the addresses headers claim: a second
        connection claiming one address is busy, another address is
        served, though all come from 127.0.0.1.
        """
        daemon = self.start("--max-per-ip", "1")
        with self.connect(daemon) as first, self.connect(daemon) as second, self.connect(daemon) as other:
            first.sendall(header("192.0.2.1") + b"PING\n")
            self.assertEqual(receiveLines(first, 1), b"OK pong\r\n")
            second.sendall(header("192.0.2.1") + b"PING\n")
            self.assertEqual(receiveAll(second), b"ERR busy too many connections, retry later\r\n")
            other.sendall(header("192.0.2.2") + b"PING\n")
            self.assertEqual(receiveLines(other, 1), b"OK pong\r\n")

    def test_oneShotsAnswered(self) -> None:
        """
        C{nc -N} one-shot clients, which end their input right after their
        request, are answered, 20 of 20.
        """
        nc = systemProgram("nc", "netcat-openbsd")
        daemon = self.start()
        port = int(daemon.addresses[0].rsplit(":", 1)[1])
        replies = oneShots(nc, port, header("203.0.113.9") + b"WHO yoen\n", 20)
        self.assertEqual(replies, [TUTORIAL_REPLIES["yoen"]] * 20)


class ProxyTLSTests(SynchronousTestCase):
    def test_headerBeforeTLS(self) -> None:
        """
        On a C{haproxy:ssl:} port, the header comes first, in the clear, as
        HAProxy sends it; then TLS: the client is answered, after its
        half-close, and logged as the header's.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        key, certificate = selfSignedCertificate(directory)
        daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            f"haproxy:ssl:0:interface=127.0.0.1:privateKey={key}:certKey={certificate}",
            "--access-log",
            "-",
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        for shutDownTCP in (False, True):
            client = requestsThenClose(
                ("127.0.0.1", daemon.port),
                b"WHO yoen\n",
                shutDownTCP=shutDownTCP,
                preamble=header("203.0.113.9", 41234),
            )
            self.assertEqual(client.received, TUTORIAL_REPLIES["yoen"])
        self.assertTrue(waitFor(lambda: daemon.text().count("203.0.113.9:41234 WHO ok") == 2), daemon.text())


def headerV2(n: int) -> bytes:
    """
    @return: a version 2 PROXY header (as HAProxy's C{send-proxy-v2})
        naming client C{10.0.0.0 + n}.
    """
    addresses = struct.pack("!IIHH", (10 << 24) + n, (198 << 24) + (51 << 16) + (100 << 8) + 1, 40000, 8787)
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, len(addresses)) + addresses


def scan(port: int, first: int, count: int, request: bytes, atOnce: int = 200) -> list[bytes]:
    """
    Connect C{count} clients to C{port}, C{atOnce} at a time, each with a
    header naming another address (L{headerV2} from C{first}), then
    C{request}, and read its reply line.

    @return: the replies.
    """
    replies: list[bytes] = []
    selector = selectors.DefaultSelector()
    n, end, live = first, first + count, 0
    deadline = time.monotonic() + 300
    try:
        while (n < end or live) and time.monotonic() < deadline:
            while live < atOnce and n < end:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                selector.register(s, selectors.EVENT_WRITE, n)
                n, live = n + 1, live + 1
            for key, events in selector.select(5):
                client = key.fileobj
                assert isinstance(client, socket.socket)
                if events & selectors.EVENT_WRITE:
                    client.send(headerV2(key.data) + request)
                    selector.modify(client, selectors.EVENT_READ, key.data)
                    continue
                try:
                    data = client.recv(4096)
                except OSError:
                    data = b""
                if not data or data.endswith(b"\r\n"):
                    replies.append(data)
                    selector.unregister(client)
                    client.close()
                    live -= 1
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    return replies


class ClientRulesTests(SynchronousTestCase):
    """
    C{--allow} and C{--rate-limit} on a C{haproxy:} port judge the client
    the PROXY header names.
    """

    def start(self, *arguments: str) -> tuple[Daemon, str]:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        # A UNIX socket's path must be short; no rule concerns its clients.
        short = tempfile.mkdtemp(prefix="avatard-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short, True)
        unix = os.path.join(short, "avatard.sock")
        daemon = Daemon(
            directory,
            "--db",
            db,
            "--port",
            "haproxy:tcp:0:interface=127.0.0.1",
            "--port",
            f"unix:{unix}",
            *arguments,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertEqual(len(daemon.addresses), 2, daemon.text())
        return daemon, unix

    def stats(self, unix: str) -> dict[str, float]:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(unix)
            s.sendall(b"STATS\n")
            return parseStats(receiveLines(s, 1))

    def test_allowJudgesTheClaimedSource(self) -> None:
        """
        With C{--allow 192.0.2.0/24}, which excludes the sender
        (127.0.0.1), a header claiming a source outside the list gets the
        denied line; one claiming a source inside is served; C{STATS}
        counts the denials, the log names the claimed address.
        """
        daemon, unix = self.start("--allow", "192.0.2.0/24")
        for source in ("203.0.113.9", "198.51.100.7"):
            with daemon.connect() as s:
                s.sendall(header(source) + b"WHO yoen\n")
                self.assertEqual(receiveAll(s), b"ERR denied not allowed from this address\r\n")
        with daemon.connect() as s:
            s.sendall(header("192.0.2.7") + b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
        stats = self.stats(unix)
        self.assertEqual((stats["connections.denied"], stats["connections.proxy-refused"]), (2, 0))
        # The log file is written after the replies: wait for the line.
        self.assertTrue(waitFor(lambda: "the first from 203.0.113.9" in daemon.text()), daemon.text())

    def test_scanFromManyClaimedSourcesBoundsMemory(self) -> None:
        """
        A scan from many more claimed sources than the budgets' table holds
        (100,000) is served, and the daemon's memory stops growing once the
        table is full: 120,000 more sources after the first 120,000 add
        less than a table's worth of addresses would.
        """
        daemon, unix = self.start("--rate-limit", "5/60")
        port = int(daemon.addresses[0].rsplit(":", 1)[1])
        self.assertEqual(scan(port, 0, 120_000, b"QUIT\n"), [b"OK bye\r\n"] * 120_000)
        full = residentSize(daemon.process.pid)
        self.assertEqual(scan(port, 120_000, 120_000, b"QUIT\n"), [b"OK bye\r\n"] * 120_000)
        after = residentSize(daemon.process.pid)
        # 120,000 addresses more, kept, would take about 24 MB.
        self.assertLess(after - full, 8 * 2**20, (full, after))
        # Budgets are still the claimed clients': a source's sixth request
        # within the minute is refused, another source has its own five.
        with daemon.connect() as s:
            s.sendall(headerV2(7) + b"PING\n" * 6)
            self.assertEqual(receiveLines(s, 6), b"OK pong\r\n" * 5 + RATE_LIMITED)
        with daemon.connect() as s:
            s.sendall(headerV2(8) + b"PING\n" * 5)
            self.assertEqual(receiveLines(s, 5), b"OK pong\r\n" * 5)
        self.assertEqual(self.stats(unix)["connections.proxy-invalid"], 0)


class WorkersTests(SynchronousTestCase):
    def startGroup(self, directory: str, db: str, *options: str) -> Daemon:
        """
        Start two workers serving a C{haproxy:} port, with C{options}, and
        wait until both are ready.
        """
        daemon = Daemon(
            directory, "--db", db, "--workers", "2", "--port", "haproxy:tcp:0:interface=127.0.0.1", *options
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertTrue(waitFor(lambda: "All 2 workers ready" in daemon.text(), 30), daemon.text())
        return daemon

    def test_everyWorkerReadsTheHeader(self) -> None:
        """
        With C{--workers 2}, each worker serves a C{haproxy:} port's
        connection as the client its header names (the access log says
        which worker), and believes headers only from C{--proxy-from}.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        db = tutorialDatabase(os.path.join(directory, "users.sqlite"))
        daemon = self.startGroup(directory, db, "--access-log", "-")
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        n = 0
        while len(seen) < 2 and time.monotonic() < deadline:
            n += 1
            with daemon.connect() as s:
                s.sendall(header("203.0.113.9", n) + b"WHO yoen\n")
                self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
            line = f"203.0.113.9:{n} WHO ok"
            self.assertTrue(waitFor(lambda line=line: line in daemon.text()), daemon.text())
            seen |= {worker for worker in ("worker 1:", "worker 2:") if f"{worker} {line}" in daemon.text()}
        self.assertEqual(seen, {"worker 1:", "worker 2:"}, daemon.text())
        refusing = self.startGroup(directory, db, "--proxy-from", "10.0.0.0/8")
        for _ in range(6):
            with refusing.connect() as s:
                s.sendall(header("203.0.113.9") + b"WHO yoen\n")
                with contextlib.suppress(ConnectionResetError):
                    self.assertEqual(receiveAll(s), b"")
        self.assertNotIn("WHO ok", refusing.text())
