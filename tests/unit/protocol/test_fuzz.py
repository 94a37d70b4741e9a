"""
Property-based tests of the protocol: arbitrary byte streams, split
arbitrarily, answered by a store that completes lookups in any order.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from avatard.model import Avatar
from avatard.protocol.limits import Limits
from tests.helpers import TUTORIAL_REPLIES, TUTORIAL_USERS, ControlledStore, connect

MAX_LINE = 64

USERS = {login: Avatar(login, name, forname) for login, name, forname in TUTORIAL_USERS}

# Pieces that make the interesting cases likely: commands, logins, line
# endings, and bytes that are hostile to decoders and terminals.
TOKENS = [
    b"WHO ",
    b"who ",
    b"yoen",
    b"esteban",
    b"mohamed",
    b"PING",
    b"STATS",
    b"HELP",
    b"QUIT",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
    b"\xc3",
    b"\x1b[2J",
    b"@",
    b"%_*'",
    b"x" * 70,
]

streams = st.lists(st.one_of(st.sampled_from(TOKENS), st.binary(max_size=12)), max_size=60).map(b"".join)


def expectedReplyCount(stream: bytes, endOfInput: bool) -> int:
    """
    How many replies the contract promises for C{stream}: one per complete
    line, up to and including the first that closes the connection (C{QUIT},
    or a line over the limit); at the end of input, one more for an
    unterminated last line.
    """
    *lines, rest = stream.split(b"\n")
    count = 0
    for line in lines:
        count += 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE or _isQuit(line):
            return count
    if len(rest) > MAX_LINE + 1:
        return count + 1
    if endOfInput and rest:
        return count + 1
    return count


def _isQuit(line: bytes) -> bool:
    try:
        words = line.decode("utf-8").split()
    except UnicodeDecodeError:
        return False
    return len(words) == 1 and words[0].upper() == "QUIT"


class ProtocolPropertyTests(SynchronousTestCase):
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(stream=streams, data=st.data())
    def test_oneWellFormedReplyPerRequestInOrder(self, stream: bytes, data: st.DataObject) -> None:
        """
        Whatever bytes arrive, in whatever pieces, with lookups completing
        in whatever order: exactly one reply per complete line, in request
        order, each an C{OK} or C{ERR} line ending in CRLF, the tutorial
        users answered exactly, each reply counted once under its result,
        and nothing logged as an error.
        """
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8), label="cuts"))
        endOfInput = data.draw(st.booleans(), label="endOfInput")
        store = ControlledStore()
        c = connect(store, limits=Limits(maxLine=MAX_LINE), queryTimeout=1000)
        with capturedLogs() as events:
            start = 0
            for cut in [*cuts, len(stream)]:
                c.send(stream[start:cut])
                start = cut
            if endOfInput:
                c.protocol.readConnectionLost()
            requested = [login for login, _ in store.pending]
            while store.pending:
                index = data.draw(st.integers(0, len(store.pending) - 1), label="answer")
                store.answer(index, USERS.get(store.pending[index][0]))
        replies = c.received().split(b"\r\n")
        self.assertEqual(replies.pop(), b"", "every reply ends in CRLF")
        self.assertEqual(len(replies), expectedReplyCount(stream, endOfInput))
        for reply in replies:
            self.assertTrue(reply.startswith((b"OK ", b"ERR ")), reply)
            self.assertNotIn(b"\r", reply)
            self.assertNotIn(b"\n", reply)
            self.assertTrue(all(b >= 0x20 and b != 0x7F for b in reply), reply)
        counted = c.factory.counters.requestCounts()
        self.assertEqual(sum(counted.values()), len(replies))
        self.assertEqual(counted.get(("WHO", "ok"), 0), sum(r.startswith(b"OK Mr ") for r in replies))
        whoReplies = [r + b"\r\n" for r in replies if r.startswith((b"OK Mr ", b"ERR not-found"))]
        self.assertEqual(
            whoReplies,
            [TUTORIAL_REPLIES.get(login, b"ERR not-found no such login\r\n") for login in requested],
        )
        self.assertEqual(
            [
                e
                for e in events
                if e["log_level"] in (LogLevel.error, LogLevel.critical) or "log_failure" in e
            ],
            [],
        )
