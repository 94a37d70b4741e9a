"""
Change notifications from PostgreSQL: when the C{users} table changes, on
any node's database connection or by any other client, every daemon
hears of it at once and drops its cached replies.

C{avatard init} gives the table a statement trigger that sends a
notification on L{CHANNEL} after every C{INSERT}, C{UPDATE}, C{DELETE} and
C{TRUNCATE}; PostgreSQL delivers it when the transaction commits.  A
daemon listens on a connection of its own, watched by the reactor (no
thread waits on it), and counts what it hears: L{ChangeListener} is the
L{IChangeWatch} of L{avatard.request.cache.WatchedReplyCache}.  While it is not
listening (not connected yet, the server restarting, the table without the
trigger), it cannot tell whether the data changed, and says so: the cache
then keeps nothing, and every request reads the database.

The listener is a service: it starts listening when started (with the
pool's service, whose threads make its connection) and stops when stopped.

A connection that is silent may be dead without knowing it (a network
partition: no reset ever comes), and notifications lost on it would leave
stale replies in the cache for good.  So the listener also sends a
heartbeat query every L{HEARTBEAT} seconds, and only vouches for its
version while the server answered within the last L{DEADLINE} seconds.
The heartbeat asks for the trigger's identity: a table or trigger made
again moves the version on, and a trigger gone stops the listening.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg.pq import ConnStatus, ExecStatus
from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReadDescriptor
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from avatard.episodes import Episode
from avatard.interfaces import IChangeWatch, WouldBlock

CHANNEL = "avatard_users"
"""
The channel the C{users} table's trigger notifies.
"""

TRIGGER = "avatard_users_notify"
"""
The name of that trigger.
"""

HAS_TRIGGER = "SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('users') AND tgname = %s)"

TRIGGER_OID = (
    b"SELECT oid FROM pg_trigger WHERE tgrelid = to_regclass('users') AND tgname = 'avatard_users_notify'"
)
"""
The heartbeat query: the trigger's identity, which changes when the table
or its trigger is made again (a restore from a dump drops the table, which
notifies nothing), and which is gone when the trigger is.
"""

NO_TRIGGER = "the users table has no change notification trigger (avatard init adds it)"

HEARTBEAT = 0.25
"""
Seconds between two heartbeat queries on the listening connection.
"""

DEADLINE = 1.0
"""
Seconds without an answer from the server after which the listener no
longer vouches for its version, and drops the connection.
"""

RETRY_DELAY = 1.0
"""
Seconds between two attempts to listen again after a connection failed.
"""

SILENT_RETRY_DELAY = 30.0
"""
Seconds between two attempts to listen again to a database that sends no
notifications (a standby, a table without the trigger).
"""


class NoNotifications(Exception):
    """
    The database sends no change notifications for its C{users} table.
    """


def notificationsProblem(connection: psycopg.Connection[Any]) -> str | None:
    """
    @return: why the database at the other end of C{connection} sends no
        change notifications, or L{None} when it does.
    """
    row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
    if row is not None and row[0]:
        return "a standby server sends no change notifications"
    row = connection.execute(HAS_TRIGGER, (TRIGGER,)).fetchone()
    if row is None or not row[0]:
        return NO_TRIGGER
    return None


@implementer(IReadDescriptor)
class _Socket:
    """
    The listening connection's socket, as the reactor watches it: through a
    duplicate of libpq's descriptor, which libpq closes by itself when the
    connection fails, before the reactor could stop watching it.
    """

    def __init__(self, listener: ChangeListener, connection: psycopg.Connection[Any]) -> None:
        self.listener = listener
        self.connection = connection
        self._fileno = os.dup(connection.pgconn.socket)

    def fileno(self) -> int:
        return self._fileno

    def doRead(self) -> None:
        self.listener._readable(self)

    def connectionLost(self, reason: Failure) -> None:
        self.listener._lost(self, "the connection was lost")

    def logPrefix(self) -> str:
        return "avatard-notifications"

    def close(self) -> None:
        """
        Close the connection and the duplicate descriptor; the reactor must
        no longer watch it.
        """
        self.connection.close()
        os.close(self._fileno)


@implementer(IChangeWatch)
class ChangeListener(Service):
    """
    Listens for the C{users} table's change notifications, from when it is
    started until it is stopped.

    The version moves on with every notification, and whenever listening
    starts again (changes made meanwhile were not heard).

    @param url: the database's URL, password included.
    @param name: how logs name the database, password redacted.
    @param connectArguments: keyword arguments for C{psycopg.connect}.
    @param threadpool: where the blocking connection is made: it must run
        while the listener does.
    """

    name = "change-listener"

    def __init__(
        self,
        url: str,
        name: str,
        reactor: Any,
        threadpool: ThreadPool,
        connectArguments: dict[str, Any],
        retryDelay: float = RETRY_DELAY,
        silentRetryDelay: float = SILENT_RETRY_DELAY,
    ) -> None:
        # The namespace its lines have always been logged under.
        self._log = Logger(namespace="avatard.pgnotify.ChangeListener", source=self)
        self.url = url
        self.databaseName = name
        self.reactor = reactor
        self.threadpool = threadpool
        self.connectArguments = connectArguments
        self.retryDelay = retryDelay
        self.silentRetryDelay = silentRetryDelay
        self._version = 0
        self._socket: _Socket | None = None
        self._retry: IDelayedCall | None = None
        self._beat: IDelayedCall | None = None
        # When the server last answered, and when the heartbeat query in
        # flight, if any, was sent.
        self._heard = 0.0
        self._sent: float | None = None
        self._trigger: bytes | None = None
        # Not listening, reported once per outage (and again when its
        # cause changes), not once a second.
        self._outage = Episode()

    def version(self) -> int:
        """
        @raise WouldBlock: while not listening (not started yet, stopped,
            not connected), or when the server has not answered the
            heartbeat for L{DEADLINE} seconds.
        """
        if self._socket is None:
            raise WouldBlock()
        if self.reactor.seconds() - self._heard > DEADLINE:
            raise WouldBlock()
        return self._version

    def startService(self) -> None:
        """
        Start listening: connect in a thread of the pool, then watch the
        connection from the reactor.
        """
        super().startService()
        self._listen()

    def stopService(self) -> None:
        """
        Stop listening: close the connection, cancel what is scheduled.
        """
        super().stopService()
        for call in (self._retry, self._beat):
            if call is not None and call.active():
                call.cancel()
        self._retry = self._beat = None
        if self._socket is not None:
            self._drop(self._socket)

    def _listen(self) -> None:
        self._retry = None
        d = deferToThreadPool(self.reactor, self.threadpool, self._open)
        d.addCallbacks(self._opened, self._failed)

    def _open(self) -> tuple[psycopg.Connection[Any], bytes | None]:
        """
        In a pool thread: connect, check that notifications are sent, and
        listen.

        @return: the connection, and the trigger's identity.
        """
        connection = psycopg.connect(self.url, **self.connectArguments)
        try:
            problem = notificationsProblem(connection)
            if problem is not None:
                raise NoNotifications(problem)
            connection.execute(f"LISTEN {CHANNEL}")
            row = connection.execute(TRIGGER_OID).fetchone()
        except BaseException:
            connection.close()
            raise
        return connection, None if row is None else str(row[0]).encode()

    def _opened(self, opened: tuple[psycopg.Connection[Any], bytes | None]) -> None:
        connection, self._trigger = opened
        if not self.running:
            connection.close()
            return
        self._socket = _Socket(self, connection)
        self.reactor.addReader(self._socket)
        self._heard = self.reactor.seconds()
        self._sent = None
        self._beat = self.reactor.callLater(HEARTBEAT, self._heartbeat)
        self._version += 1
        self._log.info(
            "Listening for change notifications from {database}: replies are cached until the data changes",
            database=self.databaseName,
        )
        self._outage.success()

    def _failed(self, failure: Failure) -> None:
        if failure.check(psycopg.Error):
            self._notListening(str(failure.value).strip().splitlines()[0])
        elif failure.check(NoNotifications):
            self._notListening(str(failure.value), self.silentRetryDelay)
        else:
            self._log.failure("Cannot listen for change notifications", failure)
            self._notListening("an unexpected error")

    def _readable(self, socket: _Socket) -> None:
        pgconn = socket.connection.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as e:
            self._lost(socket, str(e).strip().splitlines()[0] if str(e).strip() else "connection lost")
            return
        if pgconn.status != ConnStatus.OK:
            self._lost(socket, "the connection was closed")
            return
        while self._sent is not None and not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                # The heartbeat's answer is complete.
                self._sent = None
                self._heard = self.reactor.seconds()
            elif result.status != ExecStatus.TUPLES_OK:
                message = (result.error_message or b"").decode("utf-8", "replace").strip()
                self._lost(socket, f"the heartbeat failed: {message.splitlines()[0] if message else '?'}")
                return
            elif result.ntuples == 0:
                self._lost(socket, NO_TRIGGER, self.silentRetryDelay)
                return
            elif result.get_value(0, 0) != self._trigger:
                # The table or its trigger was made again: changes may have
                # gone unnotified.
                self._trigger = result.get_value(0, 0)
                self._version += 1
        heard = False
        while pgconn.notifies() is not None:
            heard = True
        if heard:
            self._version += 1

    def _heartbeat(self) -> None:
        socket = self._socket
        if socket is None:
            return
        now = self.reactor.seconds()
        if self._sent is not None:
            if now - self._sent > DEADLINE:
                self._lost(socket, f"no answer within {DEADLINE:g} s")
                return
        else:
            try:
                pgconn = socket.connection.pgconn
                pgconn.send_query(TRIGGER_OID)
                pgconn.flush()
            except psycopg.Error as e:
                self._lost(socket, str(e).strip().splitlines()[0] if str(e).strip() else "connection lost")
                return
            self._sent = now
        self._beat = self.reactor.callLater(HEARTBEAT, self._heartbeat)

    def _lost(self, socket: _Socket, cause: str, retryDelay: float | None = None) -> None:
        if socket is self._socket:
            self._drop(socket)
            self._version += 1
            self._notListening(cause, retryDelay)

    def _drop(self, socket: _Socket) -> None:
        self._socket = None
        if self._beat is not None and self._beat.active():
            self._beat.cancel()
        self._beat = None
        self.reactor.removeReader(socket)
        socket.close()

    def _notListening(self, cause: str, retryDelay: float | None = None) -> None:
        if not self.running:
            return
        if self._outage.failure(cause):
            self._log.warn(
                "Not hearing change notifications from {database} ({cause}): replies are not cached "
                "until they are heard",
                database=self.databaseName,
                cause=cause,
            )
        delay = self.retryDelay if retryDelay is None else retryDelay
        self._retry = self.reactor.callLater(delay, self._listen)
