"""
Shared test fixtures: databases made as the original tutorial made them, a
fake reactor that runs real thread pools, stores that answer when told,
connections on memory transports, and readers of what the daemon says
(C{STATS} replies, readiness notifications).
"""

from __future__ import annotations

import datetime
import os
import queue
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar, cast

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolFactory,
    ISSLTransport,
    IStreamServerEndpoint,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides, implementer

from avatard.interfaces import IAvatarStore
from avatard.model import Avatar
from avatard.protocol.connection import WhoProtocol
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.stores.pool import POOL_NAME, PoolService
from avatard.stores.sqlite.store import SQLiteStore, sqlitePool
from avatard.tap import Options

T = TypeVar("T")

TUTORIAL_USERS = (
    ("yoen", "Van der Veld", "Yoen"),
    ("esteban", "Garcia Marquez", "Estebán"),
    ("mohamed", "Al Ghâlib", "Mohamed"),
)

TUTORIAL_REPLIES = {
    "yoen": b"OK Mr 'Yoen Van der Veld' is connected under 'yoen'\r\n",
    "esteban": "OK Mr 'Estebán Garcia Marquez' is connected under 'esteban'\r\n".encode(),
    "mohamed": "OK Mr 'Mohamed Al Ghâlib' is connected under 'mohamed'\r\n".encode(),
}


def selfSignedCertificate(directory: str) -> tuple[str, str]:
    """
    Write a fresh self-signed key and certificate for C{localhost}.

    @return: the paths of the key and of the certificate (PEM).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    keyPath = os.path.join(directory, "key.pem")
    certificatePath = os.path.join(directory, "cert.pem")
    with open(keyPath, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    with open(certificatePath, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certificatePath


def tutorialDatabase(path: str, users: Iterable[tuple[Any, ...]] = TUTORIAL_USERS) -> str:
    """
    Create a database exactly as the original tutorial's C{setup_db} did.

    @return: C{path}.
    """
    connection = sqlite3.connect(path)
    connection.execute("Create table users (login text unique, name text, forname text)")
    connection.executemany("INSERT INTO USERS VALUES (?, ?, ?)", list(users))
    connection.commit()
    connection.close()
    return path


@implementer(IListeningPort)
class MemoryPort:
    """
    A port a L{ThreadedMemoryReactor} listens on: it says whether it still
    listens.
    """

    def __init__(self, address: IAddress) -> None:
        self.address = address
        self.listening = True

    def startListening(self) -> None:
        self.listening = True

    def stopListening(self) -> None:
        self.listening = False

    def getHost(self) -> IAddress:
        return self.address


class ThreadedMemoryReactor(MemoryReactorClock):
    """
    A memory reactor that also takes calls from threads, so that a real
    L{twisted.enterprise.adbapi.ConnectionPool} can run on it.  L{drive}
    runs those calls until a L{Deferred} has a result.

    @ivar ports: the ports it listens on (TCP and UNIX), in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fromThreads: queue.Queue[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = (
            queue.Queue()
        )
        self.ports: list[MemoryPort] = []

    def callFromThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.fromThreads.put((f, args, kwargs))

    def listenTCP(
        self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = ""
    ) -> MemoryPort:
        return self._listened(super().listenTCP(port, factory, backlog, interface))

    def listenUNIX(
        self, address: str, factory: IProtocolFactory, backlog: int = 50, mode: int = 0o666, wantPID: int = 0
    ) -> MemoryPort:
        return self._listened(super().listenUNIX(address, factory, backlog, mode, wantPID))

    def _listened(self, port: IListeningPort) -> MemoryPort:
        listening = MemoryPort(port.getHost())
        self.ports.append(listening)
        return listening

    def listened(self, index: int = -1) -> WhoFactory:
        """
        @return: the factory of the C{index}th TCP port this reactor was
            asked to listen on: what a client connecting there reaches.
        """
        # The daemon's own: a WHO factory, which a Connection drives.
        return cast(WhoFactory, self.tcpServers[index][1])

    def runUntil(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """
        Run calls from threads, and the calls due now on the clock (never
        advancing it), until C{condition()} holds: it is checked before
        the first call and after each, and nothing else is waited for.

        @raise AssertionError: if no call comes from a thread for
            C{timeout} seconds while C{condition()} does not hold.
        """
        while True:
            self.advance(0)
            if condition():
                return
            try:
                f, args, kwargs = self.fromThreads.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no result within {timeout} s") from None
            f(*args, **kwargs)

    def drive(self, d: Deferred[T], timeout: float = 10.0) -> T:
        """
        Run calls from threads, and the calls due now on the clock (never
        advancing it), until C{d} has a result.

        @return: that result.
        @raise AssertionError: if C{d} has none within C{timeout} seconds,
            or failed.
        """
        results: list[Any] = []
        d.addBoth(results.append)
        self.runUntil(lambda: bool(results), timeout)
        result = results[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result  # type: ignore[no-any-return]


def poolThreads() -> list[threading.Thread]:
    """
    @return: the live threads of avatard's database pools.
    """
    return [t for t in threading.enumerate() if t.name.startswith(f"PoolThread-{POOL_NAME}-")]


@implementer(IAvatarStore)
class ControlledStore:
    """
    A store whose lookups wait until the test answers them, in any order.

    @ivar pending: the lookups not answered yet, as C{(login, deferred)}.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[str, Deferred[Avatar | None]]] = []
        self.manyCalls: list[Sequence[str]] = []
        self.cancelled: list[str] = []

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        d: Deferred[Avatar | None] = Deferred(lambda _: self.cancelled.append(login))
        self.pending.append((login, d))
        return d

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        self.manyCalls.append(logins)
        return succeed({})

    def answer(self, index: int, avatar: Avatar | None) -> None:
        """
        Answer the C{index}th lookup still pending (unless it was cancelled
        meanwhile: then the answer is dropped, as a real store drops it).
        """
        _, d = self.pending.pop(index)
        if not d.called:
            d.callback(avatar)

    def fail(self, index: int, error: Exception) -> None:
        """
        Fail the C{index}th lookup still pending.
        """
        _, d = self.pending.pop(index)
        d.errback(error)


@implementer(IAvatarStore)
class DictStore:
    """
    A store answering at once from a dictionary; or failing every lookup
    while C{error} is set.
    """

    def __init__(self, users: Iterable[tuple[str, str, str]] = TUTORIAL_USERS) -> None:
        self.users = {login: Avatar(login, name, forname) for login, name, forname in users}
        self.error: Exception | None = None
        self.lookups: list[str] = []

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        self.lookups.append(login)
        if self.error is not None:
            return fail(self.error)
        return succeed(self.users.get(login))

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        if self.error is not None:
            return fail(self.error)
        return succeed({login: self.users[login] for login in logins if login in self.users})


def oneTurn(clock: Clock) -> None:
    """
    Run the calls of C{clock} that are due now, as the reactor runs them at
    the start of a turn: not those they schedule to run at once, which wait
    for the turn after (where C{Clock.advance(0)} would run them too).
    """
    now = clock.seconds()
    due = [call for call in clock.calls if call.getTime() <= now]
    for call in due:
        if call.active():
            clock.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)


PEER = IPv4Address("TCP", "192.0.2.1", 40000)


class Connection:
    """
    One protocol on a StringTransport.
    """

    def __init__(self, factory: WhoFactory, peer: IPv4Address = PEER, tls: bool = False) -> None:
        self.factory = factory
        protocol = factory.buildProtocol(peer)
        assert isinstance(protocol, WhoProtocol)
        self.protocol = protocol
        self.transport = StringTransport(peerAddress=peer)
        if tls:
            directlyProvides(self.transport, ISSLTransport)
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def received(self) -> bytes:
        """
        Read what the server wrote, as a client reading everything does:
        each time the transport has sent all it holds, it tells the
        server's producer so, which may let the server write more.

        @return: what the server wrote since the last call.
        """
        chunks: list[bytes] = []
        while True:
            data: bytes = self.transport.value()
            self.transport.clear()
            if not data:
                if not self.nextTurn():
                    return b"".join(chunks)
                continue
            chunks.append(data)
            self.sent()

    def nextTurn(self) -> bool:
        """
        Run the reactor's next turn for the connections that stepped aside
        in this one (L{avatard.protocol.turns.NextTurn}).

        @return: whether any had.
        """
        if not self.factory.turns:
            return False
        clock = self.factory.clock
        assert isinstance(clock, Clock)
        oneTurn(clock)
        return True

    def sent(self) -> None:
        """
        Tell the server's producer that the transport has sent everything,
        as a real transport does each time its buffer empties.
        """
        producer = self.transport.producer
        if producer is not None and not self.transport.streaming:
            producer.resumeProducing()

    @property
    def clock(self) -> Clock:
        """
        The clock the connection's factory runs on.
        """
        clock = self.factory.clock
        assert isinstance(clock, Clock)
        return clock

    @property
    def closing(self) -> bool:
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


def connect(
    store: IAvatarStore | None = None,
    maxLine: int = 1024,
    limits: Limits | None = None,
    queryTimeout: float = 3.0,
    tls: bool = False,
) -> Connection:
    """
    Connect one client to a new factory serving C{store} (by default the
    tutorial users), on a L{Clock}; with C{tls}, over a transport that
    says it is TLS.
    """
    clock = Clock()
    responder = Responder(DictStore() if store is None else store, ClassicRenderer(), clock, queryTimeout)
    factory = WhoFactory(responder, clock, Limits(maxLine=maxLine) if limits is None else limits)
    return Connection(factory, tls=tls)


def options(*argv: str) -> Options:
    o = Options()
    o.parseOptions(list(argv))
    return o


def parseStats(reply: bytes) -> dict[str, float]:
    """
    @return: the counters of a C{STATS} reply, which must be one C{OK} line
        of C{key=value} words.
    """
    assert reply.startswith(b"OK "), reply
    assert reply.endswith(b"\r\n"), reply
    assert reply.count(b"\n") == 1, reply
    pairs = [word.split("=") for word in reply[3:-2].decode("ascii").split(" ")]
    assert all(len(pair) == 2 for pair in pairs), reply
    return {key: float(value) for key, value in pairs}


class NotifySocket:
    """
    The service manager's end of the readiness protocol: a datagram socket
    that collects what the daemon sends.
    """

    def __init__(self, address: str) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.socket.settimeout(30)
        self.messages: list[dict[str, str]] = []

    def waitFor(self, key: str) -> dict[str, str]:
        """
        Receive messages until one assigns C{key}.

        @return: that message.
        """
        while True:
            data = self.socket.recv(4096).decode("utf-8")
            message = dict(line.split("=", 1) for line in data.split("\n"))
            self.messages.append(message)
            if key in message:
                return message

    def close(self) -> None:
        self.socket.close()


class ErrorsFailTestCase(SynchronousTestCase):
    """
    Fails a test that logs an event at error level or above, with or
    without a failure, unless the test takes it with L{takeErrors}.
    (C{flushLoggedErrors} sees only events that carry a failure: an error
    logged by C{Logger.error} alone passes it unseen.)
    """

    def setUp(self) -> None:
        self._errors: list[LogEvent] = []

        def observe(event: LogEvent) -> None:
            if event.get("log_level", LogLevel.info) >= LogLevel.error:
                self._errors.append(event)

        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        # Cleanups run last first: stop observing, then check.
        self.addCleanup(self._noErrorLeft)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def takeErrors(self) -> list[LogEvent]:
        """
        @return: the events logged at error level or above so far, which no
            longer fail the test.
        """
        errors = list(self._errors)
        del self._errors[:]
        return errors

    def _noErrorLeft(self) -> None:
        self.assertEqual([formatEvent(event) for event in self._errors], [], "errors were logged")

    def assertErrorLoggedOnce(self, cause: str) -> None:
        """
        Exactly one error was logged: one line naming C{cause}, without a
        traceback.
        """
        errors = self.takeErrors()
        self.assertEqual(len(errors), 1, [formatEvent(event) for event in errors])
        self.assertEqual(errors[0].get("cause"), cause, formatEvent(errors[0]))
        self.assertNotIn("log_failure", errors[0])


def deferred(reply: bytes | Deferred[bytes]) -> Deferred[bytes]:
    """
    @return: C{reply}, which must be a L{Deferred}: the request was not
        answered from the cache.
    """
    assert isinstance(reply, Deferred), reply
    return reply


@implementer(IListeningPort)
class RecordingPort:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None]:
        self.events.append("stopped listening")
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8787)


@implementer(IStreamServerEndpoint)
class RecordingEndpoint:
    def __init__(self, events: list[str], error: Exception | None = None) -> None:
        self.events = events
        self.error = error

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        if self.error is not None:
            d: Deferred[IListeningPort] = Deferred()
            d.errback(self.error)
            return d
        self.events.append("listening")
        return succeed(RecordingPort(self.events))


def pooledStore(
    path: str, reactor: ThreadedMemoryReactor, lockTimeout: float = 5.0, inline: bool = False
) -> tuple[PoolService, SQLiteStore]:
    """
    @return: a store reading the file at C{path} through a pool (and, with
        C{inline}, in the reactor thread too), and the service that owns the
        pool and interrupts the store's queries when it stops; not started.
    """
    pool, connections = sqlitePool(path, reactor)
    store = SQLiteStore(pool, connections, path, lockTimeout, clock=reactor if inline else None)
    return PoolService(pool, store.interrupt), store


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """
    Parse the Prometheus text format with the client library's own parser.

    @return: every sample's value by name and sorted labels.
    """
    # Here: prometheus_client is needed by the tests of --metrics alone.
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
