"""
End to end: limits, hostile clients, database faults and shutdown under
load, against the real C{twistd -n avatard} process.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading

from twisted.internet import tcp
from twisted.trial.unittest import SynchronousTestCase

from avatard.protocol.connection import UNSENT_LIMIT
from tests.daemon import REPO, Daemon, clientsAtOnce, receiveAll, receiveLines, residentSize, waitFor
from tests.helpers import TUTORIAL_REPLIES, tutorialDatabase

BUSY = b"ERR busy too many connections, retry later\r\n"
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"
TOO_LONG = b"ERR too-long request line too long, closing\r\n"

SEGMENT = 64 * 1024
"""
The most the kernel queues to send past a socket's send buffer: one
segment of loopback's size.
"""

QUIET_TURNS = 10
"""
Turns of the daemon's loop, each one answer on another connection, after
which a client whose sends are refused, and of whose requests the daemon
has read nothing more, is held for good.
"""


def tcpSendBufferMaximum() -> int:
    """
    @return: the largest the kernel grows a TCP socket's send buffer to
        (the third figure of C{net.ipv4.tcp_wmem}), in this network
        namespace.
    """
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        return int(f.read().split()[2])


def tcpQueues(local: tuple[str, int], remote: tuple[str, int]) -> tuple[int, int]:
    """
    Find the IPv4 TCP socket of this network namespace connected from
    C{local} to C{remote}.

    @return: the bytes its kernel holds: written but not acknowledged by
        the peer, and received but not read.
    """
    wanted = (hexAddress(local), hexAddress(remote))
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if (fields[1], fields[2]) == wanted:
                unacknowledged, unread = fields[4].split(":")
                return int(unacknowledged, 16), int(unread, 16)
    raise LookupError(f"no TCP socket from {local} to {remote}")


def hexAddress(address: tuple[str, int]) -> str:
    """
    @return: an IPv4 address as C{/proc/net/tcp} writes it.
    """
    host, port = address
    (number,) = struct.unpack("=I", socket.inet_aton(host))
    return f"{number:08X}:{port:04X}"


def statistic(s: socket.socket, name: str) -> int:
    """
    Ask C{STATS} on C{s}.

    @return: the counter C{name}, as C{STATS} gives it (C{requests.ok}
        counts this request too).
    """
    s.sendall(b"STATS\n")
    line = receiveLines(s, 1).decode("ascii")
    counters = dict(pair.split("=", 1) for pair in line.split()[1:])
    return int(counters[name])


def refusesConnections(port: int) -> bool:
    """
    @return: whether a connection to C{port} on loopback is refused.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


class HardeningTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))

    def start(self, *options: str) -> Daemon:
        daemon = Daemon(self.directory, "--db", self.db, "--port", "tcp:0:interface=127.0.0.1", *options)
        self.addCleanup(daemon.stop, signal.SIGKILL)
        assert daemon.where is not None, daemon.text()
        return daemon

    def ping(self, s: socket.socket) -> None:
        s.sendall(b"PING\n")
        self.assertEqual(receiveLines(s, 1), b"OK pong\r\n")

    def askUntil(self, s: socket.socket, requests: bytes, wanted: bytes) -> set[bytes]:
        """
        Send C{requests} on C{s} again and again until they are answered
        C{wanted}.

        @return: the other answers they got before.
        """
        earlier: set[bytes] = set()

        def answered() -> bool:
            s.sendall(requests)
            replies = receiveLines(s, requests.count(b"\n"))
            if replies == wanted:
                return True
            earlier.add(replies)
            return False

        self.assertTrue(waitFor(answered), f"never answered {wanted!r}, only {earlier!r}")
        return earlier

    def waitUntilCounted(self, daemon: Daemon, name: str, count: int) -> None:
        """
        Wait until the daemon's C{STATS} counter C{name} reaches C{count},
        asking on a connection of its own, closed before this returns.  A
        request is counted as soon as it is read, even while its reply
        waits behind others.
        """
        with daemon.connect() as watcher:
            asked = 0

            def counted() -> bool:
                nonlocal asked
                asked += 1
                # Every STATS counts as a request answered OK too.
                own = asked if name == "requests.ok" else 0
                return statistic(watcher, name) - own >= count

            self.assertTrue(waitFor(counted), f"{name} never reached {count}")

    def requestsHeldByALock(
        self, requests: bytes, *options: str
    ) -> tuple[Daemon, sqlite3.Connection, socket.socket]:
        """
        Start a daemon, connect, take an exclusive lock on the database from
        another connection, send C{requests} (ending in C{PING}) and wait
        until the daemon has read them.

        @return: the daemon, the connection holding the lock and the client.
        """
        daemon = self.start(*options)
        holder = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        self.addCleanup(holder.close)
        s = daemon.connect()
        self.addCleanup(s.close)
        self.ping(s)
        holder.execute("BEGIN EXCLUSIVE")
        s.sendall(requests)
        # Their PING requests, and the one before the lock.
        self.waitUntilCounted(daemon, "requests.ok", requests.count(b"PING\n") + 1)
        return daemon, holder, s


class LimitTests(HardeningTestCase):
    def test_maxConnections(self) -> None:
        """
        Over C{--max-connections}, a client gets C{ERR busy} and is closed;
        the open ones go on; the slot frees up when one leaves.
        """
        daemon = self.start("--max-connections", "2")
        first, second = daemon.connect(), daemon.connect()
        self.ping(first)
        self.ping(second)
        with daemon.connect() as third:
            self.assertEqual(receiveAll(third), BUSY)
        self.ping(second)
        first.close()
        self.ping(second)
        with daemon.connect() as fourth:
            fourth.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(fourth, 1), TUTORIAL_REPLIES["yoen"])
        second.close()

    def test_maxPerIP(self) -> None:
        """
        Over C{--max-per-ip}, a second client from one address is refused
        while another address gets in.
        """
        daemon = self.start("--max-per-ip", "1")
        with daemon.connect() as first:
            self.ping(first)
            with daemon.connect() as again:
                self.assertEqual(receiveAll(again), BUSY)
            with socket.socket() as other:
                other.settimeout(10)
                other.bind(("127.0.0.2", 0))
                other.connect(("127.0.0.1", daemon.port))
                self.ping(other)

    def test_idleTimeout(self) -> None:
        """
        A client that sends nothing is told C{ERR timeout} and closed.
        """
        daemon = self.start("--idle-timeout", "0.3")
        with daemon.connect() as s:
            self.assertEqual(receiveAll(s), b"ERR timeout idle for too long, closing\r\n")

    def test_maxLine(self) -> None:
        """
        A line over C{--max-line} gets C{ERR too-long} after the replies
        owed (here one held up by a lock), then the connection is closed:
        what follows it is not answered.
        """
        daemon = self.start("--max-line", "16", "--query-timeout", "30")
        holder = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(holder.close)
        with daemon.connect() as s:
            holder.execute("BEGIN EXCLUSIVE")
            s.sendall(b"PING\nWHO yoen\n" + b"WHO " + b"z" * 100 + b"\nPING\n")
            self.waitUntilCounted(daemon, "requests.too-long", 1)
            holder.execute("ROLLBACK")
            self.assertEqual(receiveAll(s), b"OK pong\r\n" + TUTORIAL_REPLIES["yoen"] + TOO_LONG)

    def test_floodingClientThatDoesNotReadIsBounded(self) -> None:
        """
        A client that pipelines requests without reading a single reply
        makes the server stop reading from it: however long it goes on
        sending, the server reads no more of its requests than it has room
        to keep the replies of (in the kernel's buffers, and the unsent
        replies it allows itself) plus one read, and its memory stays
        bounded; other clients are served meanwhile.
        """
        daemon = self.start()
        other = daemon.connect()
        self.addCleanup(other.close)
        self.ping(other)
        before = residentSize(daemon.process.pid)
        request, reply = b"WHO yoen\n", TUTORIAL_REPLIES["yoen"]
        flood = socket.socket()
        self.addCleanup(flood.close)
        # A small receive window: few replies wait in the client's kernel.
        flood.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        flood.connect(("127.0.0.1", daemon.port))
        flood.setblocking(False)
        client = flood.getsockname()
        server = flood.getpeername()
        # Where replies the client does not read can wait: its receive
        # buffer, the daemon's send buffer (which the kernel grows up to
        # tcp_wmem's maximum, and may overfill by a segment), and the
        # replies the daemon lets wait unsent.  Past the requests of as many
        # replies, and the rest of the read that filled them, the daemon
        # must read no more.
        room = (
            flood.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            + tcpSendBufferMaximum()
            + SEGMENT
            + UNSENT_LIMIT
        )
        mostRead = (room // len(reply) + 1) * len(request) + tcp.Connection.bufferSize
        chunk = request * 7000
        sent = read = quiet = 0
        # Each PING answered on the other connection is a turn of the
        # server's loop in which, with requests waiting in its socket, a
        # server that reads them reads more: the flood is held once its
        # sends are refused and the server has read nothing more for
        # QUIET_TURNS turns in a row.
        while quiet < QUIET_TURNS and read <= mostRead:
            try:
                sent += flood.send(chunk)
            except BlockingIOError:
                quiet += 1
            else:
                quiet = 0
            self.ping(other)
            # What the client sent, less what the kernels still hold.
            now = sent - tcpQueues(client, server)[0] - tcpQueues(server, client)[1]
            if now != read:
                read, quiet = now, 0
        self.assertLessEqual(read, mostRead, f"the server went on reading: {read} bytes of {sent} sent")
        self.assertGreater(sent, read, "the client never sent more than the server read")
        with daemon.connect() as late:
            self.ping(late)
        after = residentSize(daemon.process.pid)
        self.assertLess(after - before, 32 * 1024 * 1024)


class DatabaseFaultTests(HardeningTestCase):
    def test_lockedDatabase(self) -> None:
        """
        While another process holds an exclusive lock, requests are answered
        C{ERR unavailable} within the query timeout, requests behind them are
        not held up, and service resumes on its own once the lock is gone;
        the episode is logged once.
        """
        daemon = self.start("--query-timeout", "0.5")
        holder = sqlite3.connect(self.db, isolation_level=None)
        self.addCleanup(holder.close)
        with daemon.connect() as s:
            self.ping(s)
            holder.execute("BEGIN EXCLUSIVE")
            s.sendall(b"WHO yoen\nWHO esteban\nPING\n")
            self.assertEqual(receiveLines(s, 3), UNAVAILABLE * 2 + b"OK pong\r\n")
            holder.execute("ROLLBACK")
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
        # The log reaches us through a pipe, maybe after the reply.
        self.assertTrue(waitFor(lambda: "The database answers again" in daemon.text()), daemon.text())
        log = daemon.text()
        self.assertEqual(log.count("Database lookups fail"), 1, log)
        self.assertIn("database is locked", log)
        self.assertEqual(log.count("The database answers again"), 1, log)

    def test_deletedDatabase(self) -> None:
        """
        A deleted database is not served from the deleted file: once the
        read transaction in progress ends, requests get C{ERR unavailable},
        and go on getting it; once a database is renamed into place it is
        served, without a restart, and nothing is served from the deleted
        file meanwhile.  (The cache is off, so that every request reaches
        the database.)
        """
        daemon = self.start("--cache-size", "0")
        with daemon.connect() as s:
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
            os.unlink(self.db)
            # The read transaction in progress still reads the file it has
            # open; how long one lasts, test_sqlite checks on a clock.
            self.assertLessEqual(self.askUntil(s, b"WHO yoen\n", UNAVAILABLE), {TUTORIAL_REPLIES["yoen"]})
            s.sendall(b"WHO yoen\nWHO esteban\n")
            self.assertEqual(receiveLines(s, 2), UNAVAILABLE * 2)
            replacement = tutorialDatabase(self.db + ".new", [("yoen", "Veld", "Yoen")])
            os.rename(replacement, self.db)
            renamed = b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n"
            self.assertLessEqual(self.askUntil(s, b"WHO yoen\n", renamed), {UNAVAILABLE})
            s.sendall(b"WHO esteban\n")
            self.assertEqual(receiveLines(s, 1), NOT_FOUND)
        self.assertTrue(waitFor(lambda: "has been removed" in daemon.text()), daemon.text())


class CacheTests(HardeningTestCase):
    def test_commitShowsAtOnce(self) -> None:
        """
        A user changed in the database while its reply is cached, and a
        user added while its absence is cached, are answered anew once the
        daemon next looks for commits, however long C{--cache-ttl} is.
        """
        daemon = self.start("--cache-ttl", "3600")
        with daemon.connect() as s:
            s.sendall(b"WHO yoen\nWHO newcomer\n")
            self.assertEqual(receiveLines(s, 2), TUTORIAL_REPLIES["yoen"] + NOT_FOUND)
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
            writer = sqlite3.connect(self.db)
            with writer:
                writer.execute("update users set name = 'Veld' where login = 'yoen'")
                writer.execute("insert into users values ('newcomer', 'Comer', 'New')")
            writer.close()
            changed = b"OK Mr 'Yoen Veld' is connected under 'yoen'\r\n"
            added = b"OK Mr 'New Comer' is connected under 'newcomer'\r\n"
            earlier = self.askUntil(s, b"WHO yoen\nWHO newcomer\n", changed + added)
            # Before, the cached replies; the user added may be looked up
            # first, if the daemon looks for commits between the two.  How
            # often it looks, test_cache checks on a clock.
            cached = TUTORIAL_REPLIES["yoen"]
            self.assertLessEqual(earlier, {cached + NOT_FOUND, cached + added})


class WriterTests(HardeningTestCase):
    def test_writerGetsInUnderLoad(self) -> None:
        """
        While clients keep the daemon busy with lookups, the admin command
        still writes (the daemon's reads give way to a waiting writer),
        every lookup meanwhile is answered, and the change is then served.
        (The cache is off: every request is a lookup.)
        """
        daemon = self.start("--cache-size", "0")
        stop = threading.Event()
        failures: list[bytes | OSError] = []
        rounds = [0] * 4

        def load(worker: int) -> None:
            try:
                with daemon.connect() as s:
                    while not stop.is_set():
                        s.sendall(b"WHO yoen\nWHO nobody\n" * 8)
                        replies = receiveLines(s, 16)
                        if replies != (TUTORIAL_REPLIES["yoen"] + NOT_FOUND) * 8:
                            failures.append(replies)
                        rounds[worker] += 1
            except OSError as e:
                failures.append(e)

        workers = [threading.Thread(target=load, args=(worker,)) for worker in range(len(rounds))]
        for worker in workers:
            worker.start()
        try:
            self.assertTrue(waitFor(lambda: all(rounds)), "the load never started")
            result = subprocess.run(
                [sys.executable, "-m", "avatard", "add", self.db, "newcomer", "Comer", "New"],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "PYTHONPATH": REPO},
            )
            # Each client is answered again after the write: the load went on
            # all along.
            written = list(rounds)
            self.assertTrue(
                waitFor(lambda: all(now > then for now, then in zip(rounds, written, strict=True))),
                "the load stopped",
            )
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(failures, [])
        with daemon.connect() as s:
            s.sendall(b"WHO newcomer\n")
            self.assertEqual(receiveLines(s, 1), b"OK Mr 'New Comer' is connected under 'newcomer'\r\n")


class ShutdownTests(HardeningTestCase):
    def test_sigtermAnswersRequestsInFlight(self) -> None:
        """
        SIGTERM while lookups are held up by a lock: the daemon stops
        accepting, answers every request it has read once the lock goes,
        closes, and exits cleanly with nothing logged as an error.
        """
        daemon, holder, s = self.requestsHeldByALock(
            b"WHO yoen\nWHO esteban\nWHO mohamed\nPING\n", "--query-timeout", "10", "--shutdown-timeout", "10"
        )
        port = daemon.port
        daemon.process.send_signal(signal.SIGTERM)
        self.assertTrue(waitFor(lambda: refusesConnections(port)), "the daemon went on accepting")
        holder.execute("ROLLBACK")
        self.assertEqual(
            receiveAll(s),
            TUTORIAL_REPLIES["yoen"]
            + TUTORIAL_REPLIES["esteban"]
            + TUTORIAL_REPLIES["mohamed"]
            + b"OK pong\r\n",
        )
        s.close()
        self.assertEqual(daemon.wait(), -signal.SIGTERM)
        log = daemon.text()
        for phrase in ("Traceback", "Unhandled", "#error]", "#critical]", "Dropping", "AlreadyQuit"):
            self.assertNotIn(phrase, log)
        self.assertIn("avatard stopped", log)

    def test_shutdownTimeoutDropsWhatIsLeft(self) -> None:
        """
        Connections that cannot finish within C{--shutdown-timeout} are
        dropped, unanswered, and the daemon exits anyway; the warning and
        the stop line count the requests they had read (here a lookup held
        by the lock, and a C{PING} answered behind it).
        """
        daemon, holder, client = self.requestsHeldByALock(
            b"WHO yoen\nPING\n", "--query-timeout", "30", "--shutdown-timeout", "0.5"
        )
        daemon.process.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(), -signal.SIGTERM)
        holder.execute("ROLLBACK")
        self.assertIn(
            "Dropping 1 connections still open 0.5 s into the shutdown, with 2 requests unanswered.",
            daemon.text(),
        )
        stopLine = r"avatard stopped after [0-9.]+ s: .*, 2 requests dropped at shutdown\n"
        self.assertRegex(daemon.text(), stopLine)
        self.assertEqual(receiveAll(client), b"")


def listenQueueDrops() -> int:
    """
    @return: the kernel's count of connections dropped because a listen
        queue was full (TcpExt ListenOverflows plus ListenDrops), in this
        network namespace.
    """
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    counters = dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))
    return counters["ListenOverflows"] + counters["ListenDrops"]


class BurstTests(HardeningTestCase):
    def test_burstOfClientsIsAcceptedWithoutQueueDrops(self) -> None:
        """
        Two thousand clients connecting at the same moment, each for one
        request, are all answered, and the kernel drops none of their
        connection attempts for a full listen queue (a drop is what makes a
        client stall for seconds of SYN retries).
        """
        # A burst the size of the listen queue can drop its tail whenever the
        # daemon pauses (another process on the core, a collection); half of
        # the most the kernel grants is the margin the default is sized for.
        # (Not half of the default itself: a smaller default must fail.)
        with open("/proc/sys/net/core/somaxconn") as f:
            clients = min(2000, int(f.read()) // 2)
        daemon = self.start()
        before = listenQueueDrops()
        with clientsAtOnce(daemon.port, clients, b"WHO esteban\n") as burst:
            drops = listenQueueDrops() - before
        received = burst.replies
        self.assertEqual(set(received.values()), {TUTORIAL_REPLIES["esteban"]})
        self.assertEqual(len(received), clients)
        self.assertEqual(drops, 0)
