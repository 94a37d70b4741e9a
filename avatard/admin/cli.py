"""
The C{avatard} admin command: create a database and manage its users.

Every failure is one line on standard error, starting with C{avatard:},
and a non-zero exit status: 1 when the command could not be done, 2 when
it was not understood.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from avatard import __version__
from avatard.admin.commands import STDIN, Commands
from avatard.interfaces import IDatabase
from avatard.stores import AdminError, DatabaseError, parseDatabase

DB_HELP = (
    "the database: a path to an SQLite file (or sqlite:PATH), or a "
    "postgresql://user@host[:port]/dbname[?params] URL (the password from "
    "PGPASSWORD or ~/.pgpass)"
)


def _database(text: str) -> IDatabase:
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

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(command=name)
        sub.add_argument("db", metavar="DB", type=_database, help=DB_HELP)
        return sub

    init = command(
        "init",
        "Create the database and its users table (an existing one is kept as it is).",
    )
    init.add_argument("--demo", action="store_true", help="also add the demo users yoen, esteban and mohamed")

    add = command("add", "Add one user; fails if the login exists.")
    add.add_argument("login", metavar="LOGIN")
    add.add_argument("name", metavar="NAME", help="family name")
    add.add_argument("forname", metavar="FORNAME", help="given name")

    command("remove", "Remove one user.").add_argument("login", metavar="LOGIN")
    command("show", "Show one user.").add_argument("login", metavar="LOGIN")
    command("list", "Write every user as CSV (login,name,forname), which import reads back.")

    importer = command(
        "import",
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
    Run the admin command: the sub-command the arguments name runs as
    L{Commands} runs it, on the database they name, whatever its backend.

    @return: the exit status.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    arguments = buildParser().parse_args(argv)
    try:
        Commands(out).run(arguments.command, arguments)
        out.flush()
    except (AdminError, DatabaseError) as e:
        err.write(f"avatard: {e}\n")
        return 1
    except BrokenPipeError:
        # The reader went away (avatard list DB | head): not an error. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
