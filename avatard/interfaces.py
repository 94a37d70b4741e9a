"""
The seams of avatard: where storage and rendering plug in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from avatard.model import Avatar


class IAvatarStore(Interface):
    """
    Looks users up by login.

    Lookups never block the caller: they return a L{Deferred}.  A login that
    is not in the store is not an error.  Any failure of the store itself
    (unreadable file, lost server, timeout) is delivered as a failed
    L{Deferred}.
    """

    def lookup(login: str) -> Deferred[Avatar | None]:
        """
        Look one login up.

        @return: a L{Deferred} firing with the L{Avatar}, or L{None} when no
            user has that login.
        """

    def lookupMany(logins: Sequence[str]) -> Deferred[Mapping[str, Avatar]]:
        """
        Look several logins up at once.

        @return: a L{Deferred} firing with a mapping from each login found to
            its L{Avatar}; logins that are not found are absent from it.
        """


class WouldBlock(Exception):
    """
    An answer cannot be had without waiting: ask through the L{Deferred}
    path instead.
    """


class IImmediateLookup(Interface):
    """
    A store that can sometimes answer a lookup at once, in the caller's
    thread, without the cost of a L{Deferred}.
    """

    def lookupNow(login: str) -> Avatar | None:
        """
        Look one login up, at once.

        @return: the L{Avatar}, or L{None} when no user has that login.
        @raise WouldBlock: when the answer cannot be had without waiting,
            or the attempt failed for any reason: the caller then uses
            L{IAvatarStore.lookup}, which waits, and reports failures.
        """


class IChangeWatch(Interface):
    """
    A store that can tell, cheaply and at once, whether its data may have
    changed: a cache in front of it can then keep replies until they do,
    rather than for a fixed time.
    """

    def version() -> int:
        """
        @return: a number that stays the same while the data stays the same,
            and differs from every number returned before once the data may
            have changed.
        @raise WouldBlock: when that cannot be known now (another process
            holds the database, or it cannot be read): the caller must then
            assume that the data changed.
        """


class IReplyCache(Interface):
    """
    Rendered replies by request line, kept while they are known to be
    current, within a size bound counted in users: every reply kept for one
    login, whatever its format or the spelling of its request line, shares
    that user's entry.  It counts the requests it answers, by what they
    count as, and the lookups begun for want of a reply (L{stamp}), in the
    daemon's counters.
    """

    def __len__() -> int:
        """
        @return: how many users (logins found or not) have replies kept now.
        """

    def get(request: bytes) -> bytes | None:
        """
        @return: the reply to the request line C{request}, or L{None} if
            none is known to be current.
        """

    def stamp() -> float:
        """
        Count a lookup that begins now, for want of a cached reply.

        @return: what L{put} needs to know of that lookup.
        """

    def put(request: bytes, user: str, reply: bytes, found: bool, command: str, stamp: float) -> None:
        """
        Keep C{reply} to the request line C{request}, the outcome of a
        lookup of the login C{user} that began when L{stamp} returned
        C{stamp}, unless it may be out of date already, or the cache may
        decline to keep it (as a full cache declines a login it has not
        seen asked before).

        @param request: what L{get} finds the reply by: a request line, or
            a key of another front-end that no request line can equal.
        @param found: whether the login was found.
        @param command: what a request answered with C{reply} is counted
            as, with the result C{ok} when C{found}, else C{not-found}.
        """


class IReplyFormat(Interface):
    """
    How the replies of one command or front-end are written, for every
    outcome of a lookup of one login (L{avatard.request.who.WhoPath.lookup}):
    C{WHO} and C{JSON} are two formats of one path, which share its
    cache, coalescing, timeouts, failure reports and counters.
    """

    command = Attribute(
        "The name its requests are counted and logged under (C{WHO}, C{JSON}), with the "
        "result of each: C{ok}, C{not-found}, C{bad-request} or C{unavailable}."
    )
    notFound = Attribute("The reply, as bytes ready to send, for a login no user has.")
    unavailable = Attribute(
        "The reply, as bytes ready to send, for a lookup that failed or had no answer in time."
    )

    def found(avatar: Avatar) -> bytes:
        """
        @return: the reply for the user C{avatar}, as bytes ready to send:
            terminal-safe, whatever the database holds.
        """

    def badLogin(problem: str) -> bytes:
        """
        @param problem: a short phrase saying what is wrong with the login
            (L{avatard.model.loginProblem}).
        @return: the reply for a login that breaks the rules, as bytes
            ready to send.
        """


class IRenderer(Interface):
    """
    Turns an avatar into the text of an C{OK} reply.
    """

    def render(avatar: Avatar) -> str:
        """
        @return: one line of text, without a line ending, describing
            C{avatar}.  The protocol makes it terminal-safe before sending.
        """


class IBackend(Interface):
    """
    A kind of database avatard can serve (SQLite, PostgreSQL...), chosen by
    the scheme of a C{--db} locator (L{avatard.stores.parseDatabase}), once
    registered (L{avatard.stores.register}).

    A backend imports its database driver only when one of its databases
    is checked, opened or administered, never to parse a locator: the
    registry works whatever drivers are installed.
    """

    name = Attribute("What metrics call it: C{sqlite}, C{postgresql}.")
    schemes = Attribute(
        "The locator schemes it serves, lowercase, without C{:}; the backend with the empty "
        "scheme serves plain paths."
    )

    def parse(locator: str) -> IDatabase:
        """
        @param locator: the C{--db} text, whole: with a scheme this backend
            serves (in any case), or a plain path for the backend of the
            empty scheme.
        @return: the database it names.  Nothing is opened or connected.
        @raise avatard.stores.DatabaseError: when it names nothing usable,
            or the backend's driver is not installed (saying what to
            install).
        """


class IDatabase(Interface):
    """
    One database, as a C{--db} locator names it: what the daemon serves and
    the admin command manages.
    """

    backend = Attribute("The L{IBackend} that serves it.")

    def describe() -> str:
        """
        @return: how logs and messages name it, any password replaced by
            C{***}.
        """

    def check(queryTimeout: float) -> None:
        """
        Check, before the daemon starts, that it can be served: log what an
        operator should know (a server that cannot be reached yet, a
        password in the locator).  Never creates or changes anything.  What
        it finds may shape what L{open} builds (a database that sends no
        change notifications has no L{IStorage.watch}).

        @param queryTimeout: how long, in seconds, the daemon's lookups may
            take, from which a backend derives how long the check may wait.
        @raise avatard.stores.DatabaseError: naming the problem, when the
            daemon must not start on it.
        """

    def open(reactor: object, queryTimeout: float) -> IStorage:
        """
        @param reactor: the reactor the daemon runs on: lookups are
            answered, and the pool's threads hand their results back, in
            its thread.
        @param queryTimeout: how long, in seconds, a lookup may take before
            the daemon answers C{ERR unavailable}; queries still running
            then are given up, where the backend can.
        @return: what the daemon reads this database through; nothing is
            connected or started until its service starts.
        """

    def admin() -> IAdmin:
        """
        @return: the admin command's operations on this database.
        """


class IStorage(Interface):
    """
    What the daemon reads a database through, built by L{IDatabase.open}.
    """

    service = Attribute(
        "The IService that owns the connection pool (and whatever else reads the database, "
        "such as a change listener, as its children): started with the daemon; when stopped, "
        "once the daemon has answered what it read, it stops its "
        "children, makes queries still running give up and closes the pool, and its stop "
        "completes (or the L{Deferred} it returns fires) once no thread of the pool is left."
    )
    store = Attribute("The L{IAvatarStore} lookups go to (perhaps also an L{IImmediateLookup}).")
    watch = Attribute("An L{IChangeWatch} of the data, or L{None}: replies are then cached for a time.")

    def poolState() -> tuple[int, int]:
        """
        @return: the pool's threads running a query now, and the most it runs.
        """


class IAdmin(Interface):
    """
    The admin command's operations on one database.  Each is synchronous
    and raises L{avatard.stores.AdminError} with one line for the person
    who asked when it cannot be done.
    """

    def init(demo: Sequence[Avatar]) -> str:
        """
        Create the C{users} table if missing, and add the users of C{demo}
        that are missing.

        @return: a sentence saying what was done.
        """

    def add(avatar: Avatar) -> None:
        """
        Add one user; fails if the login exists.
        """

    def remove(login: str) -> None:
        """
        Remove one user; fails if there is no such login.
        """

    def show(login: str) -> Avatar:
        """
        @return: the user with that login; fails if there is none.
        """

    def list() -> Iterator[list[Avatar]]:
        """
        @return: every user, ordered by login (code point), in batches that
            are never empty; every failure but the reading of a later batch
            raises before the first batch is yielded.
        """

    def importUsers(avatars: Iterable[Avatar]) -> tuple[int, int]:
        """
        Add or update users, all in one transaction.

        @return: how many were added, and how many updated.
        """
