"""
L{avatard.protocol.flow}: a client that sends faster than it reads does
not make the server buffer without bound; on fake clocks and transports.
"""

from __future__ import annotations

from twisted.internet.interfaces import IPullProducer, IPushProducer
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from avatard.model import Avatar
from avatard.protocol.connection import UNSENT_LIMIT
from avatard.protocol.limits import Limits
from tests.helpers import TUTORIAL_REPLIES, Connection, ControlledStore, connect


def producerOf(c: Connection) -> IPushProducer:
    producer = c.transport.producer
    assert producer is not None
    return producer  # type: ignore[no-any-return]


class BackpressureTests(SynchronousTestCase):
    """
    A client that sends faster than it reads does not make the server buffer
    without bound.
    """

    def test_tooManyPendingRepliesPausesReading(self) -> None:
        """
        Past C{maxPending} replies owed, the server stops reading (and
        stops starting lookups); it resumes at half, and every request is
        answered in order in the end, whatever order the lookups complete
        in.
        """
        store = ControlledStore()

        def answer(index: int) -> None:
            store.answer(index, Avatar(store.pending[index][0], "User", "Some"))

        c = connect(store, limits=Limits(maxPending=10), queryTimeout=100)
        c.send(b"".join(b"WHO u%d\n" % i for i in range(50)))
        self.assertEqual(len(store.pending), 11)
        self.assertEqual(c.transport.producerState, "paused")
        for _ in range(5):
            answer(0)
        self.assertEqual(len(store.pending), 6)
        # At half, reading resumes: the buffered requests start six more
        # lookups, and reading pauses again.
        answer(0)
        self.assertEqual(len(store.pending), 11)
        self.assertEqual(c.transport.producerState, "paused")
        # The latest lookup first: replies still go out in request order.
        while store.pending:
            answer(-1)
        self.assertEqual(
            c.received(), b"".join(b"OK Mr 'Some User' is connected under 'u%d'\r\n" % i for i in range(50))
        )
        self.assertEqual(c.transport.producerState, "producing")

    def test_unsentRepliesPauseReading(self) -> None:
        """
        When more than 64 KiB of replies wait unsent in the transport, the
        server stops reading; once the transport reports everything sent,
        reading and answering resume.
        """
        # Every request of the read in one turn: only unsent bytes pause.
        c = connect(limits=Limits(linesPerTurn=10**9))
        self.assertFalse(c.transport.streaming)
        self.assertTrue(verifyObject(IPullProducer, c.transport.producer))
        requests = UNSENT_LIMIT // len(b"OK pong\r\n") + 1000
        c.send(b"PING\n" * requests)
        self.assertEqual(c.transport.producerState, "paused")
        unsent = len(c.transport.value())
        self.assertGreater(unsent, UNSENT_LIMIT)
        self.assertLessEqual(unsent, UNSENT_LIMIT + len(b"OK pong\r\n"))
        c.sent()
        self.assertEqual(c.transport.producerState, "producing")
        self.assertEqual(c.received(), b"OK pong\r\n" * requests)

    def test_sentRepliesDoNotAddUp(self) -> None:
        """
        Only replies not sent yet count: a client that reads what it is
        sent is never paused, however much it asks for in all.
        """
        c = connect()
        c.protocol.unsentLimit = 20
        for _ in range(10):
            c.send(b"PING\nPING\n")
            self.assertEqual(c.transport.producerState, "producing")
            self.assertEqual(c.received(), b"OK pong\r\n" * 2)

    def test_tlsTransportPausesReading(self) -> None:
        """
        A TLS transport, which would drive a pull producer with a loop of
        calls, gets a streaming one: when it says its buffer of unsent
        replies is full, the server stops reading; when it drains, reading
        and answering resume.
        """
        c = connect(tls=True)
        transport = c.transport
        producer = producerOf(c)
        self.assertTrue(transport.streaming)
        producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        c.send(b"WHO yoen\nWHO esteban\n")
        self.assertEqual(c.received(), b"")
        producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(c.received(), TUTORIAL_REPLIES["yoen"] + TUTORIAL_REPLIES["esteban"])

    def test_tlsTransportIsNotPausedByCount(self) -> None:
        """
        On a TLS transport, which never says when all is sent, unsent bytes
        are not counted against the limit: only its producer pauses reading.
        """
        c = connect(tls=True, limits=Limits(linesPerTurn=10**9))
        transport = c.transport
        requests = UNSENT_LIMIT // len(b"OK pong\r\n") + 1000
        c.send(b"PING\n" * requests)
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(c.received(), b"OK pong\r\n" * requests)

    def test_bothReasonsMustClear(self) -> None:
        """
        Reading resumes only when neither reason to pause remains.
        """
        store = ControlledStore()
        c = connect(store, limits=Limits(maxPending=1), queryTimeout=100)
        c.protocol.unsentLimit = 1
        c.send(b"WHO a\nWHO b\nWHO c\n")
        store.answer(0, None)
        store.answer(0, None)
        self.assertEqual(c.transport.producerState, "paused")
        self.assertEqual(len(store.pending), 0)
        c.sent()
        self.assertEqual(c.transport.producerState, "producing")
        self.assertEqual(len(store.pending), 1)

    def test_closingUnregistersTheProducer(self) -> None:
        """
        Closing unregisters the producer first, which would otherwise hold
        the close back.
        """
        c = connect()
        c.protocol.unsentLimit = 1
        c.send(b"PING\n")
        self.assertEqual(c.transport.producerState, "paused")
        c.protocol.finish()
        self.assertIsNone(c.transport.producer)
        self.assertTrue(c.closing)

    def test_endOfInputBehindAPause(self) -> None:
        """
        When the client ends its input while lines wait behind a pause,
        they are still answered, then the connection closes.
        """
        store = ControlledStore()
        c = connect(store, limits=Limits(maxPending=1), queryTimeout=100)
        c.send(b"WHO a\nWHO b\nWHO c\nPING")
        c.protocol.readConnectionLost()
        self.assertFalse(c.closing)
        while store.pending:
            store.answer(0, None)
        self.assertEqual(c.received(), b"ERR not-found no such login\r\n" * 3 + b"OK pong\r\n")
        self.assertTrue(c.closing)
