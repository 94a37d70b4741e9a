"""
The C{avatard} admin command: create a database and manage its users.

Every failure is one line on standard error, starting with C{avatard:},
and a non-zero exit status: 1 when the command could not be done, 2 when
it was not understood.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from avatard import __version__
from avatard.admin import (
    AdminError,
    addUser,
    counted,
    importUsers,
    initDatabase,
    listUsers,
    parseCSV,
    removeUser,
    showUser,
    writeCSV,
)
from avatard.database import Database, DatabaseError, parseDatabase
from avatard.model import COLUMNS, Avatar
from avatard.text import terminalSafe

DB_HELP = (
    "the database: a path to an SQLite file (or sqlite:PATH), or a "
    "postgresql://user@host[:port]/dbname[?params] URL (the password from "
    "PGPASSWORD or ~/.pgpass)"
)


def _init(arguments: argparse.Namespace, out: TextIO) -> None:
    out.write(initDatabase(arguments.db, demo=arguments.demo) + "\n")


def _add(arguments: argparse.Namespace, out: TextIO) -> None:
    addUser(arguments.db, Avatar(arguments.login, arguments.name, arguments.forname))
    out.write(f"added {terminalSafe(arguments.login)}\n")


def _remove(arguments: argparse.Namespace, out: TextIO) -> None:
    removeUser(arguments.db, arguments.login)
    out.write(f"removed {terminalSafe(arguments.login)}\n")


def _show(arguments: argparse.Namespace, out: TextIO) -> None:
    avatar = showUser(arguments.db, arguments.login)
    for field in COLUMNS:
        out.write(f"{field}: {terminalSafe(getattr(avatar, field))}\n")


def _list(arguments: argparse.Namespace, out: TextIO) -> None:
    writeCSV(listUsers(arguments.db), out)


STDIN = "-"
"""
The C{FILE.csv} argument of C{import} that names standard input.
"""


def _readInput(name: str) -> tuple[bytes, str]:
    """
    @param name: a path, or L{STDIN}.
    @return: the bytes of the file or of standard input, and how messages
        name it.
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


def _import(arguments: argparse.Namespace, out: TextIO) -> None:
    data, source = _readInput(arguments.file)
    added, updated = importUsers(arguments.db, parseCSV(data, source))
    imported = counted(added + updated, "user")
    out.write(f"imported {imported} from {source}: {added} added, {updated} updated\n")


def _database(text: str) -> Database:
    try:
        return parseDatabase(text)
    except DatabaseError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def buildParser() -> argparse.ArgumentParser:
    """
    @return: the parser of the whole command line, with a sub-command each.
    """
    parser = argparse.ArgumentParser(
        prog="avatard",
        description=(
            "Manage the users an avatard daemon serves. "
            "Start the daemon itself with 'twistd avatard --db PATH'."
        ),
    )
    parser.add_argument("--version", action="version", version=f"avatard {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(
        name: str, run: Callable[[argparse.Namespace, TextIO], None], summary: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(run=run)
        sub.add_argument("db", metavar="DB", type=_database, help=DB_HELP)
        return sub

    init = command(
        "init",
        _init,
        "Create the database and its users table (an existing one is kept as it is).",
    )
    init.add_argument("--demo", action="store_true", help="also add the demo users yoen, esteban and mohamed")

    add = command("add", _add, "Add one user; fails if the login exists.")
    add.add_argument("login", metavar="LOGIN")
    add.add_argument("name", metavar="NAME", help="family name")
    add.add_argument("forname", metavar="FORNAME", help="given name")

    command("remove", _remove, "Remove one user.").add_argument("login", metavar="LOGIN")
    command("show", _show, "Show one user.").add_argument("login", metavar="LOGIN")
    command("list", _list, "Write every user as CSV (login,name,forname), which import reads back.")

    importer = command(
        "import",
        _import,
        "Add or update users from CSV rows of login,name,forname (UTF-8, header optional), read from "
        "FILE.csv or, given -, from standard input. "
        "All or nothing: a bad row is reported with its line number and nothing is written.",
    )
    importer.add_argument(
        "file", metavar="FILE.csv", help=f"the CSV file; {STDIN} reads standard input (./- names a file '-')"
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """
    Run the admin command.

    @return: the exit status.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    arguments = buildParser().parse_args(argv)
    try:
        arguments.run(arguments, out)
        out.flush()
    except AdminError as e:
        err.write(f"avatard: {e}\n")
        return 1
    except sqlite3.Error as e:
        err.write(f"avatard: database error: {e}\n")
        return 1
    except BrokenPipeError:
        # The reader went away (avatard list DB | head): not an error. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
