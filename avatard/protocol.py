"""
The WHO line protocol (the contract is docs/PROTOCOL.md).

Requests are lines ending in LF or CRLF; every request gets exactly one
reply line ending in CRLF, in request order, whatever order the lookups
behind them complete in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from avatard.avatar import Avatar, loginProblem, terminalSafe
from avatard.interfaces import IAvatarStore, IRenderer

CRLF = b"\r\n"
PONG = b"OK pong\r\n"
BYE = b"OK bye\r\n"
HELP = b"OK commands: WHO <login>, PING, HELP, QUIT\r\n"
NOT_FOUND = b"ERR not-found no such login\r\n"
UNAVAILABLE = b"ERR unavailable the directory cannot be read right now, retry later\r\n"
TOO_LONG = b"ERR too-long request line too long, closing\r\n"
NOT_UTF8 = b"ERR bad-request request is not valid UTF-8\r\n"
EMPTY = b"ERR bad-request empty request, try HELP\r\n"
UNKNOWN = b"ERR bad-request unknown command, try HELP\r\n"
WHO_USAGE = b"ERR bad-request usage: WHO <login>\r\n"

DEFAULT_MAX_LINE = 1024
"""
The longest request, in bytes without its line ending, served by default.
"""


def badRequest(problem: str) -> bytes:
    """
    @return: an C{ERR bad-request} reply line explaining C{problem}.
    """
    return b"ERR bad-request " + terminalSafe(problem).encode("utf-8") + CRLF


class _Pending:
    """
    A reply slot, kept in request order until its bytes are known.
    """

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: bytes | None = None


@implementer(IHalfCloseableProtocol)
class WhoProtocol(LineReceiver):
    """
    Serves one client.

    Replies whose lookups complete early wait in a queue behind earlier ones.
    After C{QUIT}, a too-long line, the end of the client's input or the
    start of a shutdown, no further request is read; every reply owed is
    written, then the connection is closed.
    """

    delimiter = b"\n"
    factory: WhoFactory

    def __init__(self) -> None:
        self._queue: deque[_Pending] = deque()
        self._closing = False
        self._lost = False

    def connectionMade(self) -> None:
        assert self.transport is not None
        self._transport: ITransport = self.transport
        self.factory.connections.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self._lost = True
        self._queue.clear()
        self.factory.connectionClosed(self)

    def dataReceived(self, data: bytes) -> None:
        if not self._closing:
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > self.factory.maxLine:
            # LineReceiver allowed one byte more, for the CR of CRLF.
            self.lineLengthExceeded(line)
            return
        reply = self.factory.respond(line)
        if reply is BYE:
            self._closing = True
        if isinstance(reply, bytes):
            if self._queue:
                slot = _Pending()
                slot.data = reply
                self._queue.append(slot)
                self._flush()
            else:
                self._transport.write(reply)
                if self._closing:
                    self._transport.loseConnection()
        else:
            slot = _Pending()
            self._queue.append(slot)
            reply.addCallback(self._fill, slot)

    def lineLengthExceeded(self, line: bytes) -> None:
        self.clearLineBuffer()
        if self._closing:
            return
        slot = _Pending()
        slot.data = TOO_LONG
        self._queue.append(slot)
        self._closing = True
        self._flush()

    def readConnectionLost(self) -> None:
        """
        The client closed its sending side: an unterminated last line is
        still a request; answer everything, then close.
        """
        rest = self.clearLineBuffer()
        if rest and not self._closing:
            self.lineReceived(rest)
        self.finish()

    def writeConnectionLost(self) -> None:
        """
        Nothing more can reach the client: stop.
        """
        self._closing = True
        self._transport.loseConnection()

    def finish(self) -> None:
        """
        Read no further request; close once every reply owed is written.
        """
        self._closing = True
        self._flush()

    def _fill(self, data: bytes, slot: _Pending) -> None:
        slot.data = data
        self._flush()

    def _flush(self) -> None:
        if self._lost:
            return
        queue = self._queue
        if queue and queue[0].data is not None:
            ready: list[bytes] = []
            while queue and queue[0].data is not None:
                ready.append(queue.popleft().data)  # type: ignore[arg-type]
            self._transport.writeSequence(ready)
        if self._closing and not queue:
            self._transport.loseConnection()


if TYPE_CHECKING:
    _FactoryBase = ServerFactory[WhoProtocol]
else:
    # Twisted before 26.4 has no generic factories.
    _FactoryBase = ServerFactory


class WhoFactory(_FactoryBase):
    """
    Builds L{WhoProtocol}s that share one store, one renderer and one view of
    the database's health.

    @ivar connections: the connections open now.
    """

    protocol = WhoProtocol
    noisy = False
    _log = Logger()

    def __init__(
        self,
        store: IAvatarStore,
        renderer: IRenderer,
        clock: IReactorTime,
        maxLine: int = DEFAULT_MAX_LINE,
    ) -> None:
        self.store = store
        self.renderer = renderer
        self.clock = clock
        self.maxLine = maxLine
        self.connections: set[WhoProtocol] = set()
        self._drained: Deferred[None] | None = None
        self._dropTimer: IDelayedCall | None = None
        self._failures = 0
        self._commands: dict[str, Callable[[list[str]], bytes | Deferred[bytes]]] = {
            "WHO": self._who,
            "PING": self._simple(PONG),
            "HELP": self._simple(HELP),
            "QUIT": self._simple(BYE),
        }

    def buildProtocol(self, addr: IAddress | None) -> WhoProtocol:
        protocol = WhoProtocol()
        protocol.factory = self
        # The limit counts the line without its ending; allow the CR of CRLF.
        protocol.MAX_LENGTH = self.maxLine + 1
        return protocol

    def respond(self, line: bytes) -> bytes | Deferred[bytes]:
        """
        Answer one request line (without its line ending).

        @return: the reply line, or a L{Deferred} that fires with it and
            never fails.
        """
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return NOT_UTF8
        words = text.split()
        if not words:
            return EMPTY
        command = self._commands.get(words[0].upper())
        if command is None:
            return UNKNOWN
        return command(words[1:])

    def _simple(self, reply: bytes) -> Callable[[list[str]], bytes]:
        def command(arguments: list[str]) -> bytes:
            return badRequest("this command takes no argument") if arguments else reply

        return command

    def _who(self, arguments: list[str]) -> bytes | Deferred[bytes]:
        if len(arguments) != 1:
            return WHO_USAGE
        login = arguments[0]
        problem = loginProblem(login)
        if problem is not None:
            return badRequest(problem)
        return self.store.lookup(login).addCallbacks(self._found, self._failed)

    def _found(self, avatar: Avatar | None) -> bytes:
        if self._failures:
            self._log.info(
                "The database answers again ({count} lookups failed meanwhile).",
                count=self._failures,
            )
            self._failures = 0
        if avatar is None:
            return NOT_FOUND
        return b"OK " + terminalSafe(self.renderer.render(avatar)).encode("utf-8") + CRLF

    def _failed(self, failure: Failure) -> bytes:
        # Log once per episode of failures, with its cause; not per request.
        if not self._failures:
            self._log.error(
                "Database lookups fail, answering ERR unavailable until they work again: {cause}",
                cause=terminalSafe(failure.getErrorMessage() or repr(failure.value)),
            )
        self._failures += 1
        return UNAVAILABLE

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Finish every open connection: each answers what it has read, then
        closes.  Connections still open after C{timeout} seconds are dropped.

        @return: a L{Deferred} that fires once no connection is open.
        """
        for connection in list(self.connections):
            connection.finish()
        if not self.connections:
            return succeed(None)
        self._drained = Deferred()
        self._dropTimer = self.clock.callLater(timeout, self._dropAll, timeout)
        return self._drained

    def connectionClosed(self, connection: WhoProtocol) -> None:
        """
        Forget a connection that has closed.
        """
        self.connections.discard(connection)
        if not self.connections and self._drained is not None:
            if self._dropTimer is not None and self._dropTimer.active():
                self._dropTimer.cancel()
            self._dropTimer = None
            drained, self._drained = self._drained, None
            drained.callback(None)

    def _dropAll(self, timeout: float) -> None:
        self._dropTimer = None
        self._log.warn(
            "Dropping {count} connections still open {timeout} s into the shutdown.",
            count=len(self.connections),
            timeout=timeout,
        )
        for connection in list(self.connections):
            transport = connection.transport
            abort = getattr(transport, "abortConnection", None)
            if abort is not None:
                abort()
            elif transport is not None:
                transport.loseConnection()
        # Do not wait on the transports to report the loss: the shutdown goes on.
        if self._drained is not None:
            drained, self._drained = self._drained, None
            drained.callback(None)
