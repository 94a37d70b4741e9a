"""
A throwaway PostgreSQL cluster, for tests that stop, restart and break the
server: the shared server of the other tests is never disturbed.

It is made with the installed PostgreSQL's C{initdb} and run with its
C{pg_ctl}, on a free port on loopback, in a temporary directory, with
C{fsync} off (nothing in it needs to survive a crash).  When the tests run
as root, the cluster runs as the C{postgres} user, as PostgreSQL requires.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server's programs out of PATH.
    for version in ("17", "16", "15", "14", "13"):
        candidate = f"/usr/lib/postgresql/{version}/bin/{name}"
        if os.path.exists(candidate):
            return candidate
    return None


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """
    One throwaway cluster: L{start} it, L{stop} it, L{destroy} it.

    @ivar url: the URL of its C{postgres} database, as user C{postgres}.
    """

    def __init__(self) -> None:
        self.initdb = _binary("initdb")
        self.pgctl = _binary("pg_ctl")
        self.asUser: list[str] = []
        self.directory = tempfile.mkdtemp(prefix="avatard-pg-")
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            self.asUser = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.directory, "data")
        self.port = freePort()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def whyUnusable(self) -> str | None:
        """
        @return: why no cluster can be made here, or L{None}.
        """
        if self.initdb is None or self.pgctl is None:
            return "initdb and pg_ctl (the PostgreSQL server's programs) are not installed"
        if os.geteuid() == 0 and not shutil.which("runuser"):
            return "running as root without runuser to become the postgres user"
        return None

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            [*self.asUser, *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")

    def create(self) -> None:
        """
        Make the cluster's files (about two seconds).
        """
        assert self.initdb is not None
        self._run(self.initdb, "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        """
        Start the server and wait until it accepts connections.
        """
        assert self.pgctl is not None
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            self.pgctl,
            "-D",
            self.data,
            "-o",
            options,
            "-l",
            os.path.join(self.directory, "log"),
            "-w",
            "start",
        )

    def reload(self) -> None:
        """
        Make the server read its configuration files again.
        """
        assert self.pgctl is not None
        self._run(self.pgctl, "-D", self.data, "reload")

    def stop(self, mode: str = "fast") -> None:
        """
        Stop the server; C{immediate} is a crash, as far as clients can tell.
        """
        assert self.pgctl is not None
        self._run(self.pgctl, "-D", self.data, "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """
        Stop the server if it runs, and remove its files.
        """
        if self.pgctl is not None and os.path.exists(os.path.join(self.data, "postmaster.pid")):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running() -> Iterator[Cluster]:
    """
    A cluster made and started, destroyed at the end.
    """
    cluster = Cluster()
    try:
        reason = cluster.whyUnusable()
        if reason is not None:
            raise RuntimeError(reason)
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
