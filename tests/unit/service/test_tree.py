"""
L{avatard.service.tree}: the order in which the daemon stops.
"""

from __future__ import annotations

import os

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError, ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from avatard.model import Avatar
from avatard.protocol.factory import WhoFactory
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.service.endpoint import EndpointService
from avatard.service.tree import AvatardService
from avatard.stores import parseDatabase
from avatard.stores.pool import PoolService
from tests.helpers import (
    TUTORIAL_REPLIES,
    ControlledStore,
    RecordingEndpoint,
    ThreadedMemoryReactor,
    poolThreads,
    tutorialDatabase,
)


class RecordingPoolService(PoolService):
    def __init__(self, events: list[str], service: PoolService) -> None:
        super().__init__(service.pool)
        self.events = events

    def stopService(self) -> Deferred[None]:
        self.events.append("pool closed")
        return super().stopService()


class OrderedStopTests(SynchronousTestCase):
    """
    Stopping goes: stop listening, answer what was read, close the pool.
    """

    def setUp(self) -> None:
        self.events: list[str] = []
        self.store = ControlledStore()
        reactor = ThreadedMemoryReactor()
        self.factory = WhoFactory(Responder(self.store, ClassicRenderer(), reactor), reactor)
        path = tutorialDatabase(os.path.abspath(self.mktemp()))
        storage = parseDatabase(path).open(reactor, 3.0)
        assert isinstance(storage.service, PoolService)
        pool = RecordingPoolService(self.events, storage.service)
        self.service = AvatardService(
            pool,
            EndpointService(RecordingEndpoint(self.events), self.factory, "tcp:8787"),
            "sqlite:test",
            shutdownTimeout=5,
        )

    def test_poolClosesOnlyAfterRepliesOwedAreWritten(self) -> None:
        """
        A lookup in flight when the stop begins is answered before the pool
        closes; the stop completes once the connection is gone.
        """
        self.service.privilegedStartService()
        with capturedLogs():
            self.service.startService()
        protocol = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"WHO yoen\n")
        with capturedLogs():
            stopping = self.service.stopService()
            self.assertEqual(self.events, ["listening", "stopped listening"])
            self.assertNoResult(stopping)
            self.store.answer(0, Avatar("yoen", "Van der Veld", "Yoen"))
            self.assertEqual(transport.value(), TUTORIAL_REPLIES["yoen"])
            self.assertTrue(transport.disconnecting)
            self.assertEqual(self.events, ["listening", "stopped listening"])
            protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.events, ["listening", "stopped listening", "pool closed"])
        self.successResultOf(stopping)
        self.assertEqual(poolThreads(), [])

    def test_listenFailureExitsWithOneLine(self) -> None:
        """
        When the endpoint cannot listen, starting ends the process with one
        line naming the endpoint and the reason.
        """
        service = AvatardService(
            self.service.storage,
            EndpointService(
                RecordingEndpoint(self.events, CannotListenError("127.0.0.1", 8787, OSError("in use"))),
                self.factory,
                "tcp:8787",
            ),
            "sqlite:test",
            shutdownTimeout=5,
        )
        with self.assertRaises(SystemExit) as raised:
            service.privilegedStartService()
        self.assertIn("avatard: cannot listen on tcp:8787: ", str(raised.exception.code))
        self.assertIn("in use", str(raised.exception.code))
