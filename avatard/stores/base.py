"""
What the registry, every backend and the admin command share: the two
errors a database raises for a person to read, and how a sentence counts.
"""

from __future__ import annotations


class DatabaseError(Exception):
    """
    The database cannot be used.  C{str()} of it is one sentence meant for
    the person who named the database, without a traceback.
    """


class AdminError(Exception):
    """
    An admin command cannot do what it was asked.  C{str()} of it is the one
    line shown to the person who asked.
    """


def counted(count: int, noun: str) -> str:
    """
    @return: C{count} and C{noun}, in the plural unless C{count} is 1:
        C{"1 user"}, C{"2 users"}, C{"0 users"}.
    """
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
