"""
Watching requests one by one: for the access log and the latency histogram.

Nothing here runs unless an observer is configured: a connection of a
daemon without C{--access-log} and without C{--metrics} calls the
L{avatard.request.responder.Responder} directly, at no cost.  With an observer, each
request is timed from the moment its line is read to the moment its reply
is known, and reported once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from twisted.internet.defer import Deferred
from zope.interface import Interface, implementer

from avatard.counters import COMMANDS, NO_COMMAND

Respond = Callable[[bytes], "bytes | Deferred[bytes]"]


class IRequestObserver(Interface):
    """
    Told about every request once its reply is known.
    """

    def requestAnswered(peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        """
        @param peer: who asked, as L{avatard.addresses.describeAddress} writes it.
        @param command: what was asked, as logged: one of
            L{avatard.counters.COMMANDS}, C{FINGER} for a finger query, or
            L{NO_COMMAND}.
        @param result: how it was answered: C{ok} or an error code (one of
            L{avatard.counters.RESULTS}).
        @param line: the request line, without its line ending (possibly
            cut short, for a line too long to be read).
        @param seconds: how long the reply took, from reading the line.
        """


@implementer(IRequestObserver)
class Observers:
    """
    Tells several observers, in order.
    """

    def __init__(self, observers: Sequence[IRequestObserver]) -> None:
        self.observers = tuple(observers)

    def requestAnswered(self, peer: str, command: str, result: str, line: bytes, seconds: float) -> None:
        for observer in self.observers:
            observer.requestAnswered(peer, command, result, line, seconds)


_COMMANDS = {command.encode("ascii"): command for command in COMMANDS}

REMEMBERED = 1_000
"""
The most request lines whose command L{commandOf} remembers: the lines of
a busy daemon repeat (its cache is there for them), and a line looked up
costs a third of one split and matched again.  Beyond, it forgets them all.
"""

_commandOfLine: dict[bytes, str] = {}


def commandOf(line: bytes) -> str:
    """
    @return: the command of a request line, as counted and logged: one of
        L{COMMANDS}, or L{NO_COMMAND}, never a word the client made up.
    """
    command = _commandOfLine.get(line)
    if command is None:
        words = line.split(None, 1)
        command = _COMMANDS.get(words[0].upper(), NO_COMMAND) if words else NO_COMMAND
        if len(_commandOfLine) >= REMEMBERED:
            _commandOfLine.clear()
        _commandOfLine[line] = command
    return command


def resultOf(reply: bytes) -> str:
    """
    @return: the result of a reply line: C{ok}, or the code after C{ERR}.
    """
    if reply.startswith(b"OK"):
        return "ok"
    return reply.split(b" ", 2)[1].decode("ascii", "replace")


class ObservedResponder:
    """
    Times the requests of one connection and reports each to an observer.

    Its L{respond} stands in for L{avatard.request.responder.Responder.respond} and
    returns exactly what that returns (the same reply object, or the same
    L{Deferred}), so the connection cannot tell the difference.
    """

    __slots__ = ("_observer", "_peer", "_respond", "_timer")

    def __init__(
        self, respond: Respond, peer: str, observer: IRequestObserver, timer: Callable[[], float]
    ) -> None:
        self._respond = respond
        self._peer = peer
        self._observer = observer
        self._timer = timer

    def respond(self, line: bytes) -> bytes | Deferred[bytes]:
        timer = self._timer
        started = timer()
        reply = self._respond(line)
        if reply.__class__ is bytes:
            assert isinstance(reply, bytes)
            self._observer.requestAnswered(
                self._peer, commandOf(line), resultOf(reply), line, timer() - started
            )
        else:
            assert isinstance(reply, Deferred)
            reply.addCallback(self._answered, line, started)
        return reply

    def tooLong(self, line: bytes, reply: bytes) -> None:
        """
        Report a line that was too long to be read, answered at once.
        """
        self._observer.requestAnswered(self._peer, NO_COMMAND, resultOf(reply), line, 0.0)

    def answeredAtOnce(self, line: bytes, reply: bytes) -> None:
        """
        Report a request the connection answered itself, at once (one past
        its client's budget).
        """
        self._observer.requestAnswered(self._peer, commandOf(line), resultOf(reply), line, 0.0)

    def _answered(self, reply: bytes, line: bytes, started: float) -> bytes:
        self._observer.requestAnswered(
            self._peer, commandOf(line), resultOf(reply), line, self._timer() - started
        )
        return reply
