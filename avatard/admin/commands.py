"""
The admin command's sub-commands: each is a method C{do_NAME} of
L{Commands}, which runs it on the database its arguments name through
that database's L{IAdmin}, whatever its backend, and writes what it did.

Everything here is synchronous: the admin command is a short-lived process
with nothing else to do while it waits on the database.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from avatard.admin.csvio import DEMO_USERS, parseCSV, writeCSV
from avatard.interfaces import IAdmin, IDatabase
from avatard.model import COLUMNS, Avatar, userProblem
from avatard.stores import AdminError, counted
from avatard.text import terminalSafe

STDIN = "-"
"""
The C{FILE.csv} argument of C{import} that names standard input.
"""


def readInput(name: str) -> tuple[bytes, str]:
    """
    @param name: a path, or L{STDIN}.
    @return: the bytes of the file or of standard input, and how messages
        name it.
    @raise AdminError: when it cannot be read.
    """
    if name == STDIN:
        source = "standard input"
        if sys.stdin is None:
            raise AdminError(f"cannot read {source}: it is closed")
        try:
            return sys.stdin.buffer.read(), source
        except OSError as e:
            raise AdminError(f"cannot read {source}: {e.strerror}") from None
    try:
        with open(name, "rb") as f:
            return f.read(), name
    except OSError as e:
        raise AdminError(f"cannot read {name}: {e.strerror}") from None


def _admin(arguments: argparse.Namespace) -> IAdmin:
    database: IDatabase = arguments.db
    return database.admin()


class Commands:
    """
    Runs the admin command's sub-commands, writing what each did to C{out}.

    Each C{do_NAME} takes the parsed arguments of sub-command C{NAME}, its
    database in C{arguments.db} (an L{IDatabase}), and raises
    L{AdminError} with one line when it cannot be done.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def run(self, command: str, arguments: argparse.Namespace) -> None:
        """
        Run the sub-command named C{command}.
        """
        getattr(self, f"do_{command}")(arguments)

    def do_init(self, arguments: argparse.Namespace) -> None:
        """
        Create the database's C{users} table, with C{--demo} the demo users.
        """
        self.out.write(_admin(arguments).init(DEMO_USERS if arguments.demo else ()) + "\n")

    def do_add(self, arguments: argparse.Namespace) -> None:
        """
        Add one user, checked first: a user the daemon could never serve is
        refused before the database is opened.
        """
        avatar = Avatar(arguments.login, arguments.name, arguments.forname)
        problem = userProblem(avatar)
        if problem is not None:
            raise AdminError(problem)
        _admin(arguments).add(avatar)
        self.out.write(f"added {terminalSafe(arguments.login)}\n")

    def do_remove(self, arguments: argparse.Namespace) -> None:
        """
        Remove one user.
        """
        _admin(arguments).remove(arguments.login)
        self.out.write(f"removed {terminalSafe(arguments.login)}\n")

    def do_show(self, arguments: argparse.Namespace) -> None:
        """
        Show one user, a line per column.
        """
        avatar = _admin(arguments).show(arguments.login)
        for field in COLUMNS:
            value = getattr(avatar, field)
            # A NULL column shows as empty, as it does in CSV.
            self.out.write(f"{field}: {'' if value is None else terminalSafe(value)}\n")

    def do_list(self, arguments: argparse.Namespace) -> None:
        """
        Write every user as CSV, ordered by login.
        """
        writeCSV(_admin(arguments).list(), self.out)

    def do_import(self, arguments: argparse.Namespace) -> None:
        """
        Add or update the users of a CSV file (or standard input), all or
        nothing: the whole file is read and checked before the database is
        opened.
        """
        data, source = readInput(arguments.file)
        added, updated = _admin(arguments).importUsers(parseCSV(data, source))
        imported = counted(added + updated, "user")
        self.out.write(f"imported {imported} from {source}: {added} added, {updated} updated\n")
