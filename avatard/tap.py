"""
C{twistd avatard}: options and the service tree they describe.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet.endpoints import serverFromString
from twisted.python import usage

from avatard.avatar import ClassicRenderer
from avatard.database import DatabaseError, parseDatabase
from avatard.pool import ConnectionPoolService
from avatard.protocol import DEFAULT_MAX_LINE, WhoFactory
from avatard.service import AvatardService, EndpointService
from avatard.sqlite import SQLiteStore, probe, sqlitePool

DEFAULT_PORT = "tcp:8787:interface=127.0.0.1"


def _positive(kind: type[int] | type[float], name: str) -> Any:
    def coerce(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"{name} must be a positive number, not {text!r}") from None
        if value <= 0:
            raise ValueError(f"{name} must be a positive number, not {text!r}")
        return value

    coerce.coerceDoc = ""  # type: ignore[attr-defined]
    return coerce


class Options(usage.Options):
    """
    Command-line options of C{twistd avatard}.
    """

    synopsis = "--db PATH [options]"
    longdesc = (
        "Answer 'WHO <login>' over TCP with one line describing that user, "
        "read from the users table of a database. Protocol: docs/PROTOCOL.md."
    )

    optParameters: ClassVar[list[list[Any]]] = [
        [
            "db",
            "d",
            None,
            "The database to serve: a path to an SQLite file (or sqlite:PATH), "
            "created beforehand with 'avatard init PATH'. Required.",
        ],
        [
            "port",
            "p",
            DEFAULT_PORT,
            "Where to listen, as a Twisted server endpoint description: "
            "tcp:PORT[:interface=ADDR][:backlog=N], tcp6:PORT:interface=::1, "
            "unix:/run/avatard.sock, ssl:443:privateKey=key.pem:certKey=cert.pem.",
        ],
        [
            "max-line",
            None,
            DEFAULT_MAX_LINE,
            "The longest request line accepted, in bytes without its line ending; "
            "a longer one is answered 'ERR too-long' and the connection closed.",
            _positive(int, "--max-line"),
        ],
        [
            "shutdown-timeout",
            None,
            10.0,
            "On shutdown, seconds to let connections answer what they have read before dropping them.",
            _positive(float, "--shutdown-timeout"),
        ],
    ]

    def postOptions(self) -> None:
        if self["db"] is None:
            raise usage.UsageError("--db is required: the path of the SQLite database to serve")
        try:
            self["database"] = parseDatabase(self["db"])
        except DatabaseError as e:
            raise usage.UsageError(f"--db: {e}") from None


def makeService(options: Options, reactor: Any = None) -> AvatardService:
    """
    Build the daemon's service tree from C{options}.

    Checks the database first: a missing file, a file that is not SQLite or
    one without a C{users} table ends the process with one line naming the
    problem (and creates nothing).

    @param reactor: the reactor to run on; the global one by default.
    """
    if reactor is None:
        from twisted.internet import reactor
    database = options["database"]
    try:
        probe(database)
    except DatabaseError as e:
        raise SystemExit(f"avatard: {e}") from None
    try:
        endpoint = serverFromString(reactor, options["port"])
    except Exception as e:
        # Endpoint parsers raise whatever their plugin raises (ValueError,
        # KeyError, OSError for a missing certificate...): all of them mean
        # the description cannot be used.
        raise SystemExit(f"avatard: --port {options['port']!r} cannot be used: {e}") from None
    pool = sqlitePool(database, reactor)
    factory = WhoFactory(SQLiteStore(pool), ClassicRenderer(), reactor, maxLine=options["max-line"])
    return AvatardService(
        ConnectionPoolService(pool),
        EndpointService(endpoint, factory, options["port"]),
        database.describe(),
        options["shutdown-timeout"],
    )
