"""
PostgreSQL faults, end to end: a real daemon reading from a throwaway
cluster (L{tests.pgcluster}) that the tests restart, crash, freeze and
whose connections they kill.  During an outage every request is answered
C{ERR unavailable} within the query timeout; afterwards the daemon answers
from the database again by itself, without a dead connection left behind.

The cluster is made once per test run and left running by every test.
The last test also uses it to check that passwords come from libpq's
environment: that needs a server with password authentication.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest

from avatard.stores.postgres.store import POOL_SIZE
from tests.admincommand import run
from tests.backends import (
    PG_REQUIRED_VARIABLE,
    TUTORIAL_TABLE,
    connectPostgres,
    postgresRequired,
    withSearchPath,
)
from tests.daemon import Daemon, environment, receiveLines, waitFor
from tests.helpers import TUTORIAL_REPLIES, TUTORIAL_USERS
from tests.pgcluster import Cluster

QUERY_TIMEOUT = 1.0
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"
# What a log never says, however the database fails.
LOG_ERRORS = ("Traceback", "Unhandled", "Rollback failed", "Connection close failed", "AlreadyQuit")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """
    The throwaway cluster, started once.
    """
    made = Cluster()
    reason = made.whyUnusable()
    if reason is not None:
        if postgresRequired():
            pytest.fail(f"{reason} (and {PG_REQUIRED_VARIABLE} is set)")
        pytest.skip(reason)
    try:
        made.create()
        made.start()
        yield made
    finally:
        made.destroy()


@pytest.fixture
def database(cluster: Cluster) -> Iterator[str]:
    """
    A C{users} table with the tutorial users, in a schema of its own on the
    cluster.
    """
    schema = f"faults_{os.getpid()}_{time.monotonic_ns()}"
    with connectPostgres(cluster.url) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    url = withSearchPath(cluster.url, schema)
    with connectPostgres(url) as connection, connection.cursor() as cursor:
        cursor.execute(TUTORIAL_TABLE)
        cursor.executemany("INSERT INTO users VALUES (%s, %s, %s)", list(TUTORIAL_USERS))
    yield url
    # Whatever the test did, the cluster runs again for the next one.
    if not os.path.exists(os.path.join(cluster.data, "postmaster.pid")):
        cluster.start()
    with connectPostgres(cluster.url) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


def startNode(directory: str, url: str, queryTimeout: float = QUERY_TIMEOUT) -> Daemon:
    daemon = Daemon(
        directory,
        "--db",
        url,
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--query-timeout",
        str(queryTimeout),
        "--cache-ttl",
        "0",
    )
    assert daemon.where is not None, daemon.text()
    return daemon


@pytest.fixture
def node(database: str, tmp_path: os.PathLike[str]) -> Iterator[Daemon]:
    """
    A daemon on L{database}, without a reply cache: every request reads
    the database.
    """
    daemon = startNode(os.fspath(tmp_path), database)
    yield daemon
    daemon.stop(signal.SIGKILL)


def ask(daemon: Daemon, login: str) -> tuple[bytes, float]:
    """
    @return: the reply to C{WHO login} on a new connection, and how long it
        took.
    """
    started = time.monotonic()
    with daemon.connect() as s:
        s.sendall(f"WHO {login}\n".encode())
        reply = receiveLines(s, 1)
    return reply, time.monotonic() - started


def assertUnavailableInTime(daemon: Daemon, requests: int = 3) -> None:
    for _ in range(requests):
        reply, took = ask(daemon, "yoen")
        assert reply == UNAVAILABLE, daemon.text()
        assert took < QUERY_TIMEOUT + 0.5, took


def assertServing(daemon: Daemon, requests: int = 30) -> None:
    """
    Every one of many requests is answered from the database: no pooled
    connection is dead.
    """
    for i in range(requests):
        login = ("yoen", "esteban", "mohamed")[i % 3]
        assert ask(daemon, login)[0] == TUTORIAL_REPLIES[login], daemon.text()


def recovers(daemon: Daemon, timeout: float = 10.0) -> bool:
    return waitFor(lambda: ask(daemon, "yoen")[0] == TUTORIAL_REPLIES["yoen"], timeout)


def assertCleanLog(daemon: Daemon) -> None:
    log = daemon.text()
    for phrase in LOG_ERRORS:
        assert phrase not in log, log


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_serverRestart(cluster: Cluster, node: Daemon, mode: str) -> None:
    """
    While the server is down (stopped cleanly, or crashed), requests are
    answered C{ERR unavailable} within the query timeout; once it is back,
    the daemon reads from it again by itself, on new connections, and logs
    the episode once, without a traceback.
    """
    assertServing(node)
    cluster.stop(mode)
    assertUnavailableInTime(node)
    cluster.start()
    assert recovers(node), node.text()
    assertServing(node)
    log = node.text()
    assert log.count("Database lookups fail, answering ERR unavailable") == 1, log
    assert log.count("The database answers again") == 1, log
    assertCleanLog(node)


def test_terminatedConnections(cluster: Cluster, node: Daemon) -> None:
    """
    Connections killed on the server (C{pg_terminate_backend}, as an
    administrator or a failover tool does) are replaced as they are found
    dead: no request fails.
    """
    assertServing(node, 6)
    with connectPostgres(cluster.url) as connection:
        before = {
            row[0]
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'avatard'"
            )
        }
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'avatard'"
        )
    assert before
    assertServing(node)
    with connectPostgres(cluster.url) as connection:
        after = {
            row[0]
            for row in connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'avatard'"
            )
        }
    assert after
    assert not after & before
    assertCleanLog(node)


def test_startedWhileServerIsDown(cluster: Cluster, database: str, tmp_path: os.PathLike[str]) -> None:
    """
    A daemon started while the server is down starts (saying it cannot
    reach it), answers C{ERR unavailable}, and serves once the server is
    up.
    """
    cluster.stop()
    daemon = startNode(os.fspath(tmp_path), database)
    try:
        assert "Cannot reach postgresql://" in daemon.text()
        assertUnavailableInTime(daemon)
        cluster.start()
        assert recovers(daemon), daemon.text()
        assertServing(daemon)
        assertCleanLog(daemon)
    finally:
        daemon.stop(signal.SIGKILL)


def _clusterProcesses(cluster: Cluster) -> list[int]:
    with open(os.path.join(cluster.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if parent == postmaster:
                children.append(int(entry))
    return [postmaster, *children]


@contextlib.contextmanager
def frozen(cluster: Cluster) -> Iterator[None]:
    """
    Stop every process of the cluster (as a host under memory pressure, or
    a network partition, looks to clients: connections accepted, nothing
    answered) for the duration of the block.
    """
    processes = _clusterProcesses(cluster)
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in processes:
            os.kill(pid, signal.SIGCONT)


def test_frozenServer(cluster: Cluster, database: str, tmp_path: os.PathLike[str]) -> None:
    """
    While the server does not answer, requests are answered
    C{ERR unavailable} at the query timeout, even once every pool thread
    waits on it; once it answers again, so does the daemon.
    """
    timeout = 0.5
    node = startNode(os.fspath(tmp_path), database, queryTimeout=timeout)
    try:
        assertServing(node, 3)
        with frozen(cluster):
            for _ in range(POOL_SIZE + 2):
                reply, took = ask(node, "yoen")
                assert reply == UNAVAILABLE, node.text()
                assert timeout - 0.1 < took < timeout + 0.5, took
        assert recovers(node), node.text()
        assertServing(node)
        assertCleanLog(node)
    finally:
        node.stop(signal.SIGKILL)


def test_stopWhileServerIsFrozen(cluster: Cluster, node: Daemon) -> None:
    """
    SIGTERM stops the daemon promptly even while its pool threads wait on a
    server that does not answer: their connections are closed under them.
    """
    assertServing(node, 3)
    with frozen(cluster):
        assert ask(node, "yoen")[0] == UNAVAILABLE
        started = time.monotonic()
        status = node.stop(signal.SIGTERM, timeout=30)
        took = time.monotonic() - started
    assert status == -signal.SIGTERM, node.text()
    assert took < 3.0, took
    assert "avatard stopped" in node.text()
    assertCleanLog(node)


def test_passwordsFromTheEnvironment(cluster: Cluster, database: str, tmp_path: os.PathLike[str]) -> None:
    """
    With password authentication, the password comes from libpq's
    C{PGPASSFILE} (C{~/.pgpass}) or C{PGPASSWORD}, for the admin command and
    for the daemon alike, and appears in neither's output.
    """
    role, password = "avatard_secretive", "pw-7Hq2Lx9"
    with connectPostgres(cluster.url) as connection:
        connection.execute(f"DROP ROLE IF EXISTS {role}")
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        connection.execute(f"GRANT USAGE ON SCHEMA {database.rsplit('%3D', 1)[1]} TO {role}")
        connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {database.rsplit('%3D', 1)[1]} TO {role}")
    hba = os.path.join(cluster.data, "pg_hba.conf")
    with open(hba) as f:
        original = f.read()
    with open(hba, "w") as f:
        f.write(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
    cluster.reload()
    directory = os.fspath(tmp_path)
    url = database.replace("postgresql://postgres@", f"postgresql://{role}@", 1)

    def passwordAsked() -> bool:
        try:
            psycopg.connect(url, passfile=os.devnull, password="", connect_timeout=2).close()
        except psycopg.OperationalError:
            return True
        return False

    # The server reads pg_hba.conf again soon after the reload signal.
    assert waitFor(passwordAsked, 5)
    passfile = os.path.join(directory, "pgpass")
    with open(passfile, "w") as f:
        f.write(f"127.0.0.1:{cluster.port}:postgres:{role}:{password}\n")
    os.chmod(passfile, 0o600)
    command = [sys.executable, "-m", "avatard", "show", url, "yoen"]
    # The admin command of this source tree, without libpq's variables.
    withoutPG = {k: v for k, v in environment().items() if not k.startswith("PG")}
    try:
        refused = subprocess.run(command, env=withoutPG, capture_output=True, text=True, check=False)
        assert refused.returncode == 1
        assert "password" in refused.stderr
        shown = subprocess.run(
            command, env={**withoutPG, "PGPASSFILE": passfile}, capture_output=True, text=True, check=False
        )
        assert shown.stdout == "login: yoen\nname: Van der Veld\nforname: Yoen\n", shown.stderr
        os.environ["PGPASSWORD"] = password
        try:
            daemon = startNode(directory, url)
        finally:
            del os.environ["PGPASSWORD"]
        try:
            assert ask(daemon, "yoen")[0] == TUTORIAL_REPLIES["yoen"], daemon.text()
        finally:
            daemon.stop(signal.SIGKILL)
        assert password not in daemon.text() + shown.stdout + shown.stderr + refused.stderr
    finally:
        with open(hba, "w") as f:
            f.write(original)
        cluster.reload()


@contextlib.contextmanager
def unreadable(url: str) -> Iterator[None]:
    """
    Hold the C{users} table locked against every reader for the duration of
    the block: a lookup then waits until the query timeout, and a reply
    given at once can only come from the cache.
    """
    with connectPostgres(url) as connection, connection.transaction():
        connection.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        yield


def test_restartWithChangeNotifications(cluster: Cluster, database: str, tmp_path: os.PathLike[str]) -> None:
    """
    With the reply cache kept by change notifications: while the server is
    down, no cached reply is used (every request for a reply cached before
    is answered C{ERR unavailable} in time); once it is back, the node
    listens again, by itself: it keeps its replies again (a cached reply is
    still given after a query timeout has passed, while the table cannot be
    read), and it hears the next change at once (a reply it had cached is
    replaced).
    """
    with connectPostgres(database) as connection:
        connection.execute("DROP TABLE users")
    assert run("init", "--demo", database).status == 0
    daemon = Daemon(
        os.fspath(tmp_path),
        "--db",
        database,
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--query-timeout",
        str(QUERY_TIMEOUT),
    )
    try:
        assert ask(daemon, "yoen")[0] == TUTORIAL_REPLIES["yoen"], daemon.text()
        assert waitFor(lambda: daemon.text().count("Listening for change notifications") == 1)
        # Cached now, as every reply is while the node listens.
        assert ask(daemon, "yoen")[0] == TUTORIAL_REPLIES["yoen"], daemon.text()
        cluster.stop()
        assertUnavailableInTime(daemon)
        cluster.start()
        assert recovers(daemon), daemon.text()
        assert waitFor(lambda: daemon.text().count("Listening for change notifications") == 2, 5)
        assert ask(daemon, "late")[0] == NOT_FOUND
        with unreadable(database):
            # Answered at the query timeout: by then a reply kept without
            # the listener vouching for it would have been dropped.
            assert ask(daemon, "nobody")[0] == UNAVAILABLE
            assert ask(daemon, "late")[0] == NOT_FOUND, daemon.text()
        assert run("add", database, "late", "Comer", "Jo").status == 0
        assert waitFor(lambda: ask(daemon, "late")[0].startswith(b"OK Mr 'Jo Comer'"), 0.5)
        assertCleanLog(daemon)
    finally:
        daemon.stop(signal.SIGKILL)
