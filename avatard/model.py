"""
What avatard knows of a user: the row of the C{users} table it serves,
and the rules for logins.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from avatard.text import UNSAFE_CATEGORIES

COLUMNS = ("login", "name", "forname")
"""
The columns of the C{users} table avatard reads, in the order of an
L{Avatar}'s fields: every query and the CSV of the admin command name them
in this order.
"""

SELECT_COLUMNS = ", ".join(COLUMNS)
"""
L{COLUMNS} as a query's select list.
"""

UPDATE_FIELDS = ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[1:])
"""
What an upsert sets when the login exists: every column but the login, to
the value of the row that conflicted.
"""

MAX_LOGIN_LENGTH = 256
"""
The longest login, in characters, that avatard accepts anywhere.
"""


class Avatar(NamedTuple):
    """
    One row of the C{users} table: immutable, its fields in the order of
    L{COLUMNS}.

    A named tuple rather than a frozen dataclass: a row read as text
    becomes an L{Avatar} without a call to Python code (L{avatarFromRow}),
    which a lookup that misses the cache pays for every user it reads
    (docs/PERFORMANCE.md).  Like any tuple it equals the plain tuple of its
    fields.

    @ivar login: the unique login.
    @ivar name: the family name; L{None} for a C{NULL} column.
    @ivar forname: the given name; L{None} for a C{NULL} column.
    """

    login: str
    name: str | None
    forname: str | None


_asAvatar: Callable[[type[Avatar], Sequence[Any]], Avatar] = tuple.__new__
"""
Make an L{Avatar} of a sequence of its three fields, as they are.
"""


def avatarFromRow(row: Sequence[Any]) -> Avatar:
    """
    Build an L{Avatar} from a row of L{COLUMNS}.

    The original schema allows C{NULL} names: they stay L{None}, which a
    C{WHO} reply renders as empty text and a C{JSON} reply as C{null}.
    Values of other types than text (a column without a declared type may
    hold numbers) are turned into text.

    @raise ValueError: for a row of more or fewer than three columns.
    """
    login, name, forname = row
    if (
        type(login) is str
        and (type(name) is str or name is None)
        and (type(forname) is str or forname is None)
    ):
        # The usual row: its values taken as they are.
        return _asAvatar(Avatar, row)
    return Avatar(
        str(login),
        None if name is None else str(name),
        None if forname is None else str(forname),
    )


def loginProblem(login: str) -> str | None:
    """
    Check a login against the rules every part of avatard applies.

    A login is 1 to L{MAX_LOGIN_LENGTH} characters with no white space, no
    control or format characters and no C{@} (C{user@host} is a forwarding
    request, which avatard does not serve).

    @return: L{None} if C{login} is acceptable, otherwise a short phrase
        saying what is wrong with it.
    """
    # The common case first, decided without a look at each character.
    if (
        0 < len(login) <= MAX_LOGIN_LENGTH
        and login.isascii()
        and login.isprintable()
        and " " not in login
        and "@" not in login
    ):
        return None
    if not login:
        return "login is empty"
    if len(login) > MAX_LOGIN_LENGTH:
        return f"login is longer than {MAX_LOGIN_LENGTH} characters"
    if "@" in login:
        return "forwarding (user@host) is not supported"
    for character in login:
        if character.isspace():
            return "login contains white space"
        if unicodedata.category(character) in UNSAFE_CATEGORIES:
            return "login contains a control character"
    return None


def userProblem(avatar: Avatar) -> str | None:
    """
    Check a user before it is written.

    @return: L{None} if C{avatar} can be stored, otherwise a phrase saying
        what is wrong.
    """
    problem = loginProblem(avatar.login)
    if problem is not None:
        return f"login {avatar.login!r}: {problem}"
    for field, value in (("name", avatar.name), ("forname", avatar.forname)):
        if value is not None and not value.isprintable():
            return f"{field} {value!r} contains a control character"
    return None
