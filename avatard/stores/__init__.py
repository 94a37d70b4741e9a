"""
The databases avatard serves, each kind a backend (L{IBackend}) chosen by
the scheme of a C{--db} locator, as Twisted's C{serverFromString} chooses
an endpoint parser by its prefix: the one place that reads a C{DB}
argument.  The daemon's C{--db} option and every admin command hand the
same text to L{parseDatabase}.

The SQLite backend serves plain paths and C{sqlite:PATH}; the PostgreSQL
backend C{postgresql://} and C{postgres://} URLs.  Registering them
imports no database driver: each backend imports its own when a database
of its kind is checked, opened or administered.
"""

from __future__ import annotations

from avatard.interfaces import IBackend, IDatabase
from avatard.stores import postgres, sqlite
from avatard.stores.base import AdminError, DatabaseError, counted

__all__ = [
    "AdminError",
    "DatabaseError",
    "counted",
    "parseDatabase",
    "register",
    "registered",
    "unregister",
]

_backends: dict[str, IBackend] = {}


def register(backend: IBackend) -> None:
    """
    Serve the locators of C{backend.schemes} with C{backend}.

    @raise ValueError: when another backend serves one of those schemes.
    """
    for scheme in backend.schemes:
        other = _backends.get(scheme)
        if other is not None and other is not backend:
            raise ValueError(f"the scheme {scheme!r} is served by the {other.name} backend already")
    for scheme in backend.schemes:
        _backends[scheme] = backend


def unregister(backend: IBackend) -> None:
    """
    Stop serving the locators of C{backend}: undoes L{register}.
    """
    for scheme in backend.schemes:
        if _backends.get(scheme) is backend:
            del _backends[scheme]


def registered() -> list[IBackend]:
    """
    @return: the backends registered, each once, in the order registered.
    """
    return list(dict.fromkeys(_backends.values()))


def parseDatabase(text: str) -> IDatabase:
    """
    Read a C{DB} argument.

    Its scheme is the text before its first C{:}, in any case: the
    backend registered for it reads the whole text.  Text with no scheme
    that any backend serves is a path, for the backend of the empty scheme
    (SQLite), unless it holds C{://}: a URL of a scheme no backend serves
    is refused by name.

    @raise DatabaseError: when C{text} names nothing avatard can use, or
        the driver its backend needs is not installed.
    """
    if not text:
        raise DatabaseError("the database name is empty")
    scheme, colon, _ = text.partition(":")
    backend = _backends.get(scheme.lower()) if colon else None
    if backend is None:
        if "://" in text:
            raise DatabaseError(
                f"unsupported database URL scheme {text.split('://', 1)[0]!r}: "
                "give an SQLite file path or a postgresql:// URL"
            )
        backend = _backends.get("")
        if backend is None:
            raise DatabaseError(f"no database backend reads plain paths such as {text!r}")
    database: IDatabase = backend.parse(text)
    return database


register(sqlite.BACKEND)
register(postgres.BACKEND)
