"""
Framing: requests split from what a client sends, and the limit on their
length.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import TUTORIAL_REPLIES, ControlledStore, connect


class FramingTests(SynchronousTestCase):
    """
    Requests are lines, however they arrive.
    """

    def test_requestSplitAcrossWrites(self) -> None:
        """
        A request that arrives in pieces is answered once it is complete.
        """
        c = connect()
        for piece in (b"WH", b"O yo", b"en\r", b"\n"):
            self.assertEqual(c.received(), b"")
            c.send(piece)
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

    def test_emptyReadIsNoRequest(self) -> None:
        """
        A read of nothing (as when reading resumes) is not an empty line:
        it gets no reply, alone or after a whole request.
        """
        c = connect()
        c.send(b"")
        self.assertEqual(c.received(), b"")
        c.send(b"WHO yoen\n")
        c.send(b"")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"])

    def test_oneWholeRequestPerRead(self) -> None:
        """
        Reads of exactly one request each, the usual case, are answered one
        by one, an empty line and a CRLF line included.
        """
        c = connect()
        for line in (b"WHO yoen\n", b"\n", b"PING\r\n", b"WHO nobody\n"):
            c.send(line)
        self.assertEqual(
            c.received(),
            TUTORIAL_REPLIES["yoen"]
            + b"ERR bad-request empty request, try HELP\r\n"
            + b"OK pong\r\n"
            + b"ERR not-found no such login\r\n",
        )

    def test_thousandsOfPipelinedRequestsInOneWrite(self) -> None:
        """
        Five thousand requests in a single write get five thousand replies,
        in order.
        """
        c = connect()
        logins = [("yoen", "esteban", "mohamed", "nobody")[i % 4] for i in range(5000)]
        c.send(b"".join(b"WHO " + login.encode() + b"\n" for login in logins))
        expected = [TUTORIAL_REPLIES.get(login, b"ERR not-found no such login\r\n") for login in logins]
        self.assertEqual(c.received(), b"".join(expected))


class LineLimitTests(SynchronousTestCase):
    """
    The request line length limit.
    """

    def test_lineAtTheLimitIsServed(self) -> None:
        """
        A request of exactly the limit, CRLF not counted, is served.
        """
        c = connect(maxLine=20)
        request = b"WHO " + b"y" * 16
        c.send(request + b"\r\n")
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n")

    def test_longerLineIsRefusedAndClosed(self) -> None:
        """
        A longer line is answered C{ERR too-long} and the connection closed.
        """
        c = connect(maxLine=20)
        c.send(b"WHO " + b"y" * 17 + b"\n")
        self.assertEqual(c.received(), b"ERR too-long request line too long, closing\r\n")
        self.assertTrue(c.closing)

    def test_unterminatedFloodIsNotBuffered(self) -> None:
        """
        Bytes without a line ending beyond the limit are refused at once and
        not kept; what follows is ignored.
        """
        c = connect(maxLine=20)
        c.send(b"x" * 100)
        self.assertEqual(c.received(), b"ERR too-long request line too long, closing\r\n")
        c.send(b"y" * 100000 + b"\nWHO yoen\n")
        self.assertEqual(c.received(), b"")
        self.assertEqual(c.protocol.clearLineBuffer(), b"")

    def test_tooLongAfterPendingRepliesComesLast(self) -> None:
        """
        C{ERR too-long} comes after the replies owed to earlier requests.
        """
        store = ControlledStore()
        c = connect(store, maxLine=20)
        c.send(b"WHO yoen\n" + b"z" * 50)
        self.assertEqual(c.received(), b"")
        store.answer(0, None)
        self.assertEqual(
            c.received(),
            b"ERR not-found no such login\r\nERR too-long request line too long, closing\r\n",
        )
        self.assertTrue(c.closing)
