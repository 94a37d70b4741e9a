"""
Users as CSV, as the admin command reads (C{import}) and writes (C{list})
them, and the demo users of C{init --demo}.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from typing import TextIO

from avatard.model import COLUMNS, Avatar, userProblem
from avatard.stores import AdminError

DEMO_USERS = (
    Avatar("yoen", "Van der Veld", "Yoen"),
    Avatar("esteban", "Garcia Marquez", "Estebán"),
    Avatar("mohamed", "Al Ghâlib", "Mohamed"),
)
"""
The three users of the original tutorial, added by C{avatard init --demo}.
"""

CSV_HEADER = COLUMNS


def parseCSV(data: bytes, source: str) -> list[Avatar]:
    """
    Read users from CSV: UTF-8 (a byte-order mark is allowed), one
    C{login,name,forname} row per user, an optional header row naming those
    columns, blank lines ignored.

    @param source: how to name the file in errors.
    @raise AdminError: at the first bad row, naming its line.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise AdminError(f"{source}, line {line}: not valid UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    avatars: list[Avatar] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if not avatars and not seen and tuple(c.strip().lower() for c in row) == CSV_HEADER:
                continue
            if len(row) != 3:
                raise AdminError(
                    f"{source}, line {line}: expected 3 fields (login,name,forname), found {len(row)}"
                )
            avatar = Avatar(*row)
            problem = userProblem(avatar)
            if problem is not None:
                raise AdminError(f"{source}, line {line}: {problem}")
            if avatar.login in seen:
                first = seen[avatar.login]
                raise AdminError(
                    f"{source}, line {line}: login {avatar.login!r} already appears on line {first}"
                )
            seen[avatar.login] = line
            avatars.append(avatar)
    except csv.Error as e:
        raise AdminError(f"{source}, line {reader.line_num}: malformed CSV: {e}") from None
    return avatars


def writeCSV(batches: Iterable[Sequence[Avatar]], out: TextIO) -> None:
    """
    Write users as CSV that L{parseCSV} reads back: a header, then a row per
    user.

    Nothing is written before the first batch has been read: with
    L{avatard.interfaces.IAdmin.list}, a database that cannot be opened or
    read at all leaves C{out} untouched.  A failure reading a later batch
    leaves the rows written before it, whole, in C{out}.
    """
    remaining = iter(batches)
    first = next(remaining, ())
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for batch in itertools.chain((first,), remaining):
        writer.writerows((a.login, a.name, a.forname) for a in batch)
