"""
End to end: a group of workers (C{--workers N}) run by the real twistd:
every worker answers on one port, a killed worker is replaced, SIGTERM
drains all of them, SIGHUP reaches all of them, readiness waits for all
of them, socket activation and C{/metrics} serve the whole group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.admincommand import run
from tests.backends import PostgresBackend, connectPostgres
from tests.daemon import LOG_ERRORS, REPO, Daemon, readText, receiveAll, receiveLines, waitFor
from tests.helpers import TUTORIAL_REPLIES, NotifySocket, parseStats, selfSignedCertificate, tutorialDatabase

LISTENFDS = os.path.join(REPO, "tests", "listenfds.py")

NOT_FOUND = b"ERR not-found no such login\r\n"
LATE = b"OK Mr 'Jo Comer' is connected under 'late'\r\n"

_METRICS = re.compile(r"Metrics at (http://\S+/metrics)")


def stats(s: socket.socket) -> dict[str, float]:
    """
    @return: the figures a C{STATS} on C{s} answers.
    """
    s.sendall(b"STATS\n")
    return parseStats(receiveLines(s, 1))


def workerPids(daemon: Daemon) -> list[int]:
    """
    @return: the processes the daemon's twistd process started, its
        workers.
    """
    pid = daemon.process.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


class PingRead:
    """
    Whether the worker answering C{watching} has read a PING sent on
    another of its connections since this was made: its C{requests.ok}
    counts one more than the STATS asked on C{watching} (each counts
    itself).
    """

    def __init__(self, watching: socket.socket) -> None:
        self.watching = watching
        self.before = stats(watching)["requests.ok"]
        self.polls = 0

    def __call__(self) -> bool:
        self.polls += 1
        return stats(self.watching)["requests.ok"] - self.polls >= self.before + 1


class WorkersTestCase(SynchronousTestCase):
    """
    A database, and a daemon with workers on it.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.mkdir(self.directory)
        self.db = tutorialDatabase(os.path.join(self.directory, "users.sqlite"))

    def start(self, *options: str, count: int = 2, **keywords: object) -> Daemon:
        daemon = Daemon(
            self.directory,
            "--db",
            self.db,
            "--workers",
            str(count),
            *(options or ("--port", "tcp:0:interface=127.0.0.1")),
            **keywords,  # type: ignore[arg-type]
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.waitReady(daemon, count)
        return daemon

    def waitReady(self, daemon: Daemon, count: int, times: int = 1) -> None:
        self.assertTrue(
            waitFor(lambda: daemon.text().count(f"All {count} workers ready") >= times, 30), daemon.text()
        )

    def byWorker(self, daemon: Daemon, count: int, each: int = 1) -> dict[int, list[socket.socket]]:
        """
        Connect until C{each} connections are open to every worker.

        @return: the connections, by the worker that answers them.
        """
        connections: dict[int, list[socket.socket]] = {index: [] for index in range(1, count + 1)}
        # Bounded in time: a worker just replaced may still be starting.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(len(held) == each for held in connections.values()):
                return connections
            s = daemon.connect()
            self.addCleanup(s.close)
            held = connections[int(stats(s)["worker"])]
            if len(held) < each:
                held.append(s)
            else:
                s.close()
        raise self.failureException(f"not every worker answered: {connections}\n{daemon.text()}")

    def assertCleanLog(self, daemon: Daemon) -> None:
        for error in LOG_ERRORS:
            self.assertNotIn(error, daemon.text())


class GroupTests(WorkersTestCase):
    def test_everyWorkerAnswersOnOnePort(self) -> None:
        """
        With C{--workers 2}, the start line says so; two worker processes
        answer connections to the one port, each C{STATS} naming its
        worker and counting its own connections; the workers' lines in
        the log name them, and the twistd process's own sockets are named
        as the workers'.  The finger port is served too.
        """
        daemon = self.start("--port", "tcp:0:interface=127.0.0.1", "--finger", "tcp:0:interface=127.0.0.1")
        self.assertIn(f"on 127.0.0.1:{daemon.port}, finger 127.0.0.1:", daemon.text())
        self.assertIn(f"[-] Sockets for the workers starting on {daemon.port}\n", daemon.text())
        self.assertNotIn("[-] Factory starting", daemon.text())
        self.assertIn(" (2 workers;", daemon.text())
        fingerPort = int(daemon.addresses[1].rsplit(":", 1)[1])
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", fingerPort), timeout=10) as s:
                s.sendall(b"yoen\r\n")
                self.assertIn(b"Yoen Van der Veld", receiveAll(s))
        self.assertEqual(len(workerPids(daemon)), 2)
        connections = self.byWorker(daemon, 2)
        for index, [s] in connections.items():
            s.sendall(b"WHO yoen\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["yoen"])
            figures = stats(s)
            self.assertEqual(figures["worker"], index)
            self.assertEqual(figures["connections.open"], 1)
        for index in (1, 2):
            self.assertIn(f"worker {index}: avatard ", daemon.text())
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertIn("avatard stopped after", daemon.text())
        self.assertCleanLog(daemon)

    def test_connectionsOpenedAtOnceAreSpread(self) -> None:
        """
        Fifty connections opened at once, before any is served, are spread
        over both workers: each has its own socket on the port, where a
        shared one would give a whole burst to the first worker to wake.
        """
        daemon = self.start()
        connections = [socket.create_connection(("127.0.0.1", daemon.port), timeout=10) for _ in range(50)]
        for s in connections:
            self.addCleanup(s.close)
        workers = [stats(s)["worker"] for s in connections]
        self.assertGreaterEqual(min(workers.count(1), workers.count(2)), 5, workers)

    def test_maxConnectionsHoldsForTheGroup(self) -> None:
        """
        C{--max-connections 2} with two workers: each serves one connection
        at most, so that of many clients two are served, one by each
        worker, and the others get C{ERR busy}.
        """
        daemon = self.start("--port", "tcp:0:interface=127.0.0.1", "--max-connections", "2")
        served: dict[int, socket.socket] = {}
        busy = 0
        for _ in range(40):
            s = daemon.connect()
            self.addCleanup(s.close)
            s.sendall(b"STATS\n")
            reply = receiveLines(s, 1)
            if reply.startswith(b"ERR busy"):
                busy += 1
            else:
                figures = parseStats(reply)
                self.assertNotIn(int(figures["worker"]), served)
                served[int(figures["worker"])] = s
        self.assertEqual(sorted(served), [1, 2])
        self.assertEqual(busy, 38)

    def test_aPortInUseIsOneLine(self) -> None:
        """
        A port another program listens on refuses the start with one line,
        also when that program shares ports (C{SO_REUSEPORT}), as another
        avatard group does.
        """
        for reuse in (False, True):
            with socket.socket() as taken:
                if reuse:
                    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                taken.bind(("127.0.0.1", 0))
                taken.listen(1)
                port = taken.getsockname()[1]
                daemon = Daemon(
                    self.directory,
                    "--db",
                    self.db,
                    "--workers",
                    "2",
                    "--port",
                    f"tcp:{port}:interface=127.0.0.1",
                )
                self.addCleanup(daemon.stop, signal.SIGKILL)
                self.assertEqual(daemon.wait(), 1)
            self.assertIn(f"avatard: cannot listen on tcp:{port}:interface=127.0.0.1: ", daemon.text())
            self.assertIn("Address already in use", daemon.text())
            self.assertNotIn("Traceback", daemon.text())
            self.assertNotIn("worker 1:", daemon.text())

    def test_aKilledWorkerIsReplaced(self) -> None:
        """
        A worker killed with SIGKILL is replaced, with one line; the port
        keeps answering, by both workers.
        """
        daemon = self.start()
        victim = workerPids(daemon)[0]
        os.kill(victim, signal.SIGKILL)
        replaced = re.compile(
            rf"Worker (\d) \(pid {victim}\) was killed by signal 9; started worker \1 again"
        )
        self.assertTrue(waitFor(lambda: replaced.search(daemon.text()), 30), daemon.text())
        self.waitReady(daemon, 2, times=1)
        with daemon.connect() as s:
            s.sendall(b"WHO esteban\n")
            self.assertEqual(receiveLines(s, 1), TUTORIAL_REPLIES["esteban"])
        self.assertNotIn(victim, workerPids(daemon))
        self.assertEqual(len(workerPids(daemon)), 2)
        self.byWorker(daemon, 2)
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertCleanLog(daemon)

    def test_sigtermDrainsEveryWorker(self) -> None:
        """
        SIGTERM with a request in flight in every worker (its lookup held up
        by a lock on the database): every worker stops listening, answers
        it once the lock goes, and stops; no worker is replaced.
        """
        daemon = self.start("--port", "tcp:0:interface=127.0.0.1", "--query-timeout", "30")
        connections = self.byWorker(daemon, 2, each=2)
        holder = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        self.addCleanup(holder.close)
        holder.execute("BEGIN EXCLUSIVE")
        for _, (waiting, watching) in connections.items():
            read = PingRead(watching)
            waiting.sendall(b"WHO esteban\nPING\n")
            self.assertTrue(waitFor(read))
        daemon.process.send_signal(signal.SIGTERM)
        self.assertTrue(
            waitFor(lambda: all(f"worker {i}: avatard stopping" in daemon.text() for i in (1, 2))),
            daemon.text(),
        )
        holder.execute("ROLLBACK")
        for _, (waiting, _) in connections.items():
            self.assertEqual(receiveAll(waiting), TUTORIAL_REPLIES["esteban"] + b"OK pong\r\n")
        self.assertEqual(daemon.wait(), -signal.SIGTERM)
        text = daemon.text()
        for index in (1, 2):
            self.assertIn(f"worker {index}: avatard stopped after", text)
        self.assertNotIn("again", text)
        self.assertNotIn("from outside the group", text)
        self.assertIn("avatard stopped after", text)
        self.assertCleanLog(daemon)

    def test_signalledAllAtOnceTheGroupStopsWithoutReplacing(self) -> None:
        """
        SIGTERM sent to every process of the group, as systemd's
        C{KillMode=control-group} does, in the worst order: the workers
        first, handled before the twistd process's own.  Every worker stops
        gracefully, none is replaced, and the group stops cleanly.
        """
        daemon = self.start()
        workers = workerPids(daemon)
        for pid in workers:
            os.kill(pid, signal.SIGTERM)

        def reaped() -> bool:
            # The twistd process has seen both end (or has ended itself).
            try:
                return not set(workers) & set(workerPids(daemon))
            except FileNotFoundError:
                return True

        self.assertTrue(waitFor(reaped), daemon.text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.process.pid, signal.SIGTERM)
        self.assertIn(daemon.wait(), (0, -signal.SIGTERM))
        text = daemon.text()
        for index in (1, 2):
            self.assertIn(f"worker {index}: avatard stopped after", text)
        self.assertNotIn("again", text)
        self.assertIn("avatard stopped after", text)
        self.assertCleanLog(daemon)

    def test_tcp6(self) -> None:
        """
        A C{tcp6:} endpoint is served by every worker.
        """
        daemon = self.start("--port", "tcp6:0:interface=\\:\\:1")
        port = int(daemon.where.rsplit(":", 1)[1]) if daemon.where else 0
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while seen != {1, 2} and time.monotonic() < deadline:
            with socket.create_connection(("::1", port), timeout=10) as s:
                seen.add(int(stats(s)["worker"]))
        self.assertEqual(seen, {1, 2})

    def test_sighupReachesEveryWorker(self) -> None:
        """
        After the log file and the access log are renamed, SIGHUP reopens
        the log once, in the twistd process, and the access log in every
        worker: requests answered by either worker go to the new file.
        """
        log = os.path.join(self.directory, "avatard.log")
        access = os.path.join(self.directory, "access.log")
        daemon = Daemon(
            self.directory,
            "--db",
            self.db,
            "--workers",
            "2",
            "--port",
            "tcp:0:interface=127.0.0.1",
            "--access-log",
            access,
            twistdArguments=["--logfile", log],
            timeout=0,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)

        self.assertTrue(waitFor(lambda: "All 2 workers ready" in readText(log), 30), readText(log))
        match = re.search(r"serving \S+ on 127\.0\.0\.1:(\d+)", readText(log))
        assert match is not None
        daemon.where = f"127.0.0.1:{match.group(1)}"
        os.rename(log, log + ".1")
        os.rename(access, access + ".1")
        daemon.process.send_signal(signal.SIGHUP)
        reopened = "SIGHUP: log files reopened"
        self.assertTrue(
            waitFor(lambda: all(f"worker {i}: {reopened}" in readText(log) for i in (1, 2))),
            readText(log + ".1"),
        )
        self.assertEqual(readText(log).count(reopened), 3)
        for [s] in self.byWorker(daemon, 2).values():
            s.sendall(b"WHO esteban\n")
            receiveLines(s, 1)
        self.assertTrue(waitFor(lambda: readText(access).count('"WHO esteban"') == 2), readText(access))
        self.assertNotIn("esteban", readText(access + ".1"))
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertIn("avatard stopped after", readText(log))

    def test_workersZeroIsOnePerCPU(self) -> None:
        """
        C{--workers 0} starts one worker per CPU the process may run on.
        """
        cpus = len(os.sched_getaffinity(0))
        if cpus < 2:
            self.skipTest("one CPU: --workers 0 is a single process")
        daemon = Daemon(
            self.directory, "--db", self.db, "--workers", "0", "--port", "tcp:0:interface=127.0.0.1"
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.waitReady(daemon, cpus)
        self.assertIn(f"({cpus} workers;", daemon.text())
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)

    def test_aBadDatabaseIsOneLineAndNoWorker(self) -> None:
        """
        A database that cannot be served ends the twistd process with one
        line, before any worker starts.
        """
        daemon = Daemon(
            self.directory, "--db", os.path.join(self.directory, "missing.sqlite"), "--workers", "2"
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        self.assertEqual(daemon.wait(), 1)
        self.assertTrue(daemon.text().startswith("avatard: database "), daemon.text())
        self.assertEqual(daemon.text().count("\n"), 1, daemon.text())

    def test_unixSocket(self) -> None:
        """
        Workers serve a UNIX socket the twistd process bound, keep its
        mode, and leave its removal to the twistd process: it is gone
        after the stop, with nothing logged about it.
        """
        # A socket's path has at most 107 bytes: the test directory's can
        # be longer.
        short = tempfile.mkdtemp(prefix="avatard-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short, True)
        path = os.path.join(short, "avatard.sock")
        daemon = self.start("--port", f"unix:{path}:mode=600")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.byWorker(daemon, 2)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertFalse(os.path.exists(path))
        self.assertCleanLog(daemon)


class WrappedEndpointTests(WorkersTestCase):
    def test_tlsAndHAProxyInEveryWorker(self) -> None:
        """
        What an endpoint description wraps around its socket applies in
        every worker: TLS on C{ssl:}, and on C{haproxy:} the PROXY header,
        read before the requests (not answered as one).
        """
        key, certificate = selfSignedCertificate(self.directory)
        daemon = self.start(
            "--port",
            f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={certificate}",
            "--port",
            "haproxy:tcp:0:interface=127.0.0.1",
        )
        tlsPort, proxyPort = (int(address.rsplit(":", 1)[1]) for address in daemon.addresses)
        context = ssl.create_default_context(cafile=certificate)
        context.check_hostname = False

        def overTLS() -> int:
            with (
                socket.create_connection(("127.0.0.1", tlsPort), timeout=10) as raw,
                context.wrap_socket(raw) as s,
            ):
                s.sendall(b"WHO esteban\nSTATS\n")
                replies = receiveLines(s, 2)
            self.assertTrue(replies.startswith(TUTORIAL_REPLIES["esteban"]), replies)
            return int(parseStats(replies[len(TUTORIAL_REPLIES["esteban"]) :])["worker"])

        def proxied() -> int:
            with socket.create_connection(("127.0.0.1", proxyPort), timeout=10) as s:
                s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 5555 8787\r\nWHO yoen\nSTATS\n")
                replies = receiveLines(s, 2)
            self.assertTrue(replies.startswith(TUTORIAL_REPLIES["yoen"]), replies)
            return int(parseStats(replies[len(TUTORIAL_REPLIES["yoen"]) :])["worker"])

        for ask in (overTLS, proxied):
            seen: set[int] = set()
            deadline = time.monotonic() + 30
            while seen != {1, 2} and time.monotonic() < deadline:
                seen.add(ask())
            self.assertEqual(seen, {1, 2}, daemon.text())
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertCleanLog(daemon)


class ChangesTests(WorkersTestCase):
    """
    Every worker keeps its own cache: a change of the database shows in
    every worker's replies.
    """

    def assertEveryWorkerSees(self, daemon: Daemon, insert: Callable[[], None]) -> None:
        connections = self.byWorker(daemon, 2)

        def ask(s: socket.socket) -> bytes:
            s.sendall(b"WHO late\n")
            return receiveLines(s, 1)

        for [s] in connections.values():
            self.assertEqual(ask(s), NOT_FOUND)
        insert()
        for [s] in connections.values():
            self.assertTrue(waitFor(lambda s=s: ask(s) == LATE), daemon.text())


class SQLiteChangesTests(ChangesTests):
    def test_sqlite(self) -> None:
        """
        On SQLite, each worker watches the file.
        """
        daemon = self.start()

        def insert() -> None:
            with sqlite3.connect(self.db) as connection:
                connection.execute("INSERT INTO users VALUES ('late', 'Comer', 'Jo')")

        self.assertEveryWorkerSees(daemon, insert)


class PostgresChangesTests(PostgresBackend, ChangesTests):
    def test_postgres(self) -> None:
        """
        On PostgreSQL, each worker listens for change notifications: a
        change shows in every worker long before the cache's time-to-live.
        """
        self.db = self.newDatabase()
        self.assertEqual(run("init", self.db).status, 0)
        daemon = self.start("--port", "tcp:0:interface=127.0.0.1", "--cache-ttl", "60")
        self.assertTrue(
            waitFor(lambda: daemon.text().count("Listening for change notifications") == 2, 30), daemon.text()
        )

        def insert() -> None:
            with connectPostgres(self.db) as connection:
                connection.execute("INSERT INTO users VALUES ('late', 'Comer', 'Jo')")

        self.assertEveryWorkerSees(daemon, insert)


class RestartBudgetTests(WorkersTestCase):
    def test_workersThatKeepDyingStopTheGroup(self) -> None:
        """
        Five workers killed are replaced; the sixth death within a minute
        stops the group, with one line saying why, and the twistd process
        exits with status 1.
        """
        daemon = self.start()
        for death in range(1, 7):
            victim = workerPids(daemon)[0]
            os.kill(victim, signal.SIGKILL)
            if death < 6:
                self.assertTrue(
                    waitFor(
                        lambda victim=victim: (
                            f"(pid {victim}) was killed by signal 9; started" in daemon.text()
                        )
                    ),
                    daemon.text(),
                )
                self.assertTrue(waitFor(lambda victim=victim: victim not in workerPids(daemon)))
                self.assertTrue(waitFor(lambda: len(workerPids(daemon)) == 2))
        self.assertEqual(daemon.wait(), 1)
        text = daemon.text()
        self.assertEqual(
            text.count("after 5 workers were replaced within 60 s: stopping every worker"), 1, text
        )
        self.assertEqual(text.count("started worker"), 5)
        self.assertIn("avatard stopped after", text)
        self.assertNotIn("Traceback", text)


class SystemdTests(WorkersTestCase):
    """
    A group started as systemd starts it: socket activation, readiness.
    """

    def test_socketActivationAndReadiness(self) -> None:
        """
        The socket systemd passed is served by every worker; READY=1 comes
        once, after every worker is ready, and not again when a worker is
        replaced; STOPPING=1 once at the stop.
        """
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        port = listener.getsockname()[1]
        name = f"avatard-test-notify-{os.getpid()}-{port}"
        notify = NotifySocket("\0" + name)
        self.addCleanup(notify.close)
        daemon = self.start(
            "--port",
            "systemd:domain=INET:index=0",
            launcher=[sys.executable, LISTENFDS, str(listener.fileno())],
            extraEnvironment={"NOTIFY_SOCKET": "@" + name},
            passFds=[listener.fileno()],
        )
        ready = notify.waitFor("READY")
        self.assertIn("All 2 workers ready", daemon.text())
        self.assertTrue(
            ready["STATUS"].startswith(f"Serving on 127.0.0.1:{port}: 2 of 2 workers running"), ready
        )
        listener.close()
        self.byWorker(daemon, 2)
        os.kill(workerPids(daemon)[1], signal.SIGKILL)
        self.assertTrue(waitFor(lambda: "started worker" in daemon.text(), 30))
        self.byWorker(daemon, 2)
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        notify.waitFor("STOPPING")
        notify.socket.settimeout(0.5)
        try:
            while True:
                notify.waitFor("READY")
        except TimeoutError:
            pass
        self.assertEqual([m for m in notify.messages if "READY" in m], [ready])
        self.assertEqual(len([m for m in notify.messages if "STOPPING" in m]), 1)
        self.assertCleanLog(daemon)


class MetricsTests(WorkersTestCase):
    def test_oneScrapeForTheGroup(self) -> None:
        """
        C{/metrics} on the twistd process reports every worker's metrics,
        each sample labelled with its worker: the daemon's own and the
        process metrics.
        """
        daemon = self.start("--port", "tcp:0:interface=127.0.0.1", "--metrics", "tcp:0:interface=127.0.0.1")
        self.assertTrue(waitFor(lambda: _METRICS.search(daemon.text())), daemon.text())
        match = _METRICS.search(daemon.text())
        assert match is not None
        for index, [s] in self.byWorker(daemon, 2).items():
            s.sendall(b"WHO yoen\n" * index)
            receiveLines(s, index)
        with urllib.request.urlopen(match.group(1), timeout=10) as response:  # noqa: S310
            text = response.read().decode("utf-8")
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        names = {name for name, _ in samples}
        for index in (1, 2):
            worker = ("worker", str(index))
            self.assertEqual(
                samples["avatard_requests_total", (("command", "WHO"), ("result", "ok"), worker)], index
            )
            self.assertGreater(samples["process_resident_memory_bytes", (worker,)], 0)
            self.assertEqual(samples["avatard_connections_open", (worker,)], 1)
            # Every metric docs/OPERATIONS.md lists, for each worker.
            for name in (
                "avatard_request_duration_seconds_count",
                "avatard_connections_total",
                "avatard_connections_refused_total",
                "avatard_cache_hits_total",
                "avatard_cache_misses_total",
                "avatard_cache_hit_ratio",
                "avatard_cache_entries",
                "avatard_database_errors_total",
                "avatard_pool_threads_busy",
                "avatard_pool_threads_max",
                "process_cpu_seconds_total",
            ):
                self.assertIn((name, (worker,)), samples)
        self.assertIn("avatard_info", names)
        self.assertIn("python_info", names)
        self.assertIn("python_gc_collections_total", names)
        self.assertEqual(daemon.stop(signal.SIGTERM), -signal.SIGTERM)
        self.assertCleanLog(daemon)
