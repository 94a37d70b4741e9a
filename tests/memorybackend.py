"""
A backend that keeps its databases in memory, for the tests of the seam:
registered with L{avatard.stores.register}, it is chosen by the scheme of
C{memory:NAME} and used by the daemon and the admin command through the
same path as the real backends.

Every locator C{memory:NAME} given to one L{MemoryBackend} names the same
database, as a path names one file: what the admin command writes there,
a daemon on it reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from avatard.interfaces import (
    IAdmin,
    IAvatarStore,
    IBackend,
    IChangeWatch,
    IDatabase,
    IImmediateLookup,
    IStorage,
)
from avatard.model import Avatar
from avatard.stores import AdminError, DatabaseError, counted

LIST_BATCH = 2
"""
Users per batch of L{MemoryAdmin.list}: small, so that lists come in
several batches.
"""


class Table:
    """
    The C{users} table of one database in memory.

    @ivar users: the users, by login.
    @ivar changes: how many writes changed it.
    @ivar served: what happened to the services that read it, in order:
        C{"started"}, C{"stopped"}.
    """

    def __init__(self) -> None:
        self.users: dict[str, Avatar] = {}
        self.changes = 0
        self.served: list[str] = []


@implementer(IBackend)
class MemoryBackend:
    """
    Serves C{memory:NAME} locators from the tables it keeps.

    @ivar tables: the databases made (by C{init}), by name.
    """

    name = "memory"
    schemes = ("memory",)

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}

    def parse(self, locator: str) -> MemoryDatabase:
        name = locator.partition(":")[2]
        if not name:
            raise DatabaseError("memory: needs a name, as in memory:users")
        return MemoryDatabase(self, name)


@implementer(IDatabase)
class MemoryDatabase:
    """
    The database C{memory:NAME} of a L{MemoryBackend}.
    """

    def __init__(self, backend: MemoryBackend, name: str) -> None:
        self.backend = backend
        self.name = name

    def describe(self) -> str:
        return f"memory:{self.name}"

    def check(self, queryTimeout: float) -> None:
        if self.name not in self.backend.tables:
            raise DatabaseError(
                f"database {self.describe()} does not exist (create it with: avatard init {self.describe()})"
            )

    def open(self, reactor: Any, queryTimeout: float) -> MemoryStorage:
        return MemoryStorage(self.backend.tables[self.name])

    def admin(self) -> MemoryAdmin:
        return MemoryAdmin(self)


@implementer(IAvatarStore, IImmediateLookup, IChangeWatch)
class MemoryStore:
    """
    Answers lookups at once from a L{Table}, and tells when it changes.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    def lookup(self, login: str) -> Deferred[Avatar | None]:
        return succeed(self.table.users.get(login))

    def lookupMany(self, logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        users = self.table.users
        return succeed({login: users[login] for login in logins if login in users})

    def lookupNow(self, login: str) -> Avatar | None:
        return self.table.users.get(login)

    def version(self) -> int:
        return self.table.changes


class MemoryService(Service):
    """
    The service of a L{MemoryStorage}: it has nothing to start or stop,
    and notes in its table when it starts and stops.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    def startService(self) -> None:
        super().startService()
        self.table.served.append("started")

    def stopService(self) -> None:
        super().stopService()
        self.table.served.append("stopped")


@implementer(IStorage)
class MemoryStorage:
    """
    What the daemon reads a L{Table} through: no pool, and a service that
    has nothing to start or stop.
    """

    def __init__(self, table: Table) -> None:
        self.service = MemoryService(table)
        self.store = MemoryStore(table)
        self.watch = self.store

    def poolState(self) -> tuple[int, int]:
        return 0, 0


@implementer(IAdmin)
class MemoryAdmin:
    """
    The admin command's operations on a L{MemoryDatabase}.
    """

    def __init__(self, database: MemoryDatabase) -> None:
        self.database = database

    def _table(self) -> Table:
        table = self.database.backend.tables.get(self.database.name)
        if table is None:
            name = self.database.describe()
            raise AdminError(f"database {name} does not exist (create it with: avatard init {name})")
        return table

    def init(self, demo: Sequence[Avatar]) -> str:
        tables = self.database.backend.tables
        existed = self.database.name in tables
        table = tables.setdefault(self.database.name, Table())
        added = [avatar for avatar in demo if avatar.login not in table.users]
        self._write(table, added)
        name = self.database.describe()
        if existed:
            return f"{name} is ready" + (f"; {counted(len(added), 'demo user')} added" if demo else "")
        return f"created {name}" + (f" with {counted(len(added), 'demo user')}" if demo else "")

    def _write(self, table: Table, avatars: Iterable[Avatar]) -> None:
        for avatar in avatars:
            table.users[avatar.login] = avatar
        table.changes += 1

    def add(self, avatar: Avatar) -> None:
        table = self._table()
        if avatar.login in table.users:
            raise AdminError(f"login {avatar.login!r} already exists in {self.database.describe()}")
        self._write(table, [avatar])

    def remove(self, login: str) -> None:
        table = self._table()
        if table.users.pop(login, None) is None:
            raise AdminError(f"no login {login!r} in {self.database.describe()}")
        table.changes += 1

    def show(self, login: str) -> Avatar:
        avatar = self._table().users.get(login)
        if avatar is None:
            raise AdminError(f"no login {login!r} in {self.database.describe()}")
        return avatar

    def list(self) -> Iterator[list[Avatar]]:
        ordered = sorted(self._table().users.values(), key=lambda avatar: avatar.login)
        for start in range(0, len(ordered), LIST_BATCH):
            yield ordered[start : start + LIST_BATCH]

    def importUsers(self, avatars: Iterable[Avatar]) -> tuple[int, int]:
        table = self._table()
        given = list(avatars)
        added = sum(1 for avatar in given if avatar.login not in table.users)
        self._write(table, given)
        return added, len(given) - added
