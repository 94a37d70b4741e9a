"""
Shared test fixtures: databases made as the original tutorial made them, a
fake reactor that runs real thread pools, and a store that answers when told.
"""

from __future__ import annotations

import datetime
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from zope.interface import directlyProvides, implementer

from avatard.interfaces import IAvatarStore
from avatard.model import Avatar
from avatard.protocol.connection import WhoProtocol
from avatard.protocol.factory import WhoFactory
from avatard.protocol.limits import Limits
from avatard.request.render import ClassicRenderer
from avatard.request.responder import Responder
from avatard.stores.pool import POOL_NAME

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


class ThreadedMemoryReactor(MemoryReactorClock):
    """
    A memory reactor that also takes calls from threads, so that a real
    L{twisted.enterprise.adbapi.ConnectionPool} can run on it.  L{drive}
    runs those calls until a L{Deferred} has a result.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fromThreads: queue.Queue[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = (
            queue.Queue()
        )

    def callFromThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.fromThreads.put((f, args, kwargs))

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
