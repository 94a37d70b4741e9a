"""
Play systemd's part in socket activation, for end-to-end tests.

C{python tests/listenfds.py FD[=NAME][,FD[=NAME]...] COMMAND...} moves the
listening sockets inherited as descriptors C{FD}, in order, to descriptors
3, 4 and on, sets C{LISTEN_FDS}, C{LISTEN_FDNAMES} (each socket's C{NAME},
by default C{avatard.socket}) and C{LISTEN_PID} (to this process's id,
which C{exec} keeps) as systemd does, and replaces itself with
C{COMMAND}.
"""

from __future__ import annotations

import fcntl
import os
import sys

FIRST = 3
"""
The first descriptor systemd passes (C{SD_LISTEN_FDS_START}).
"""


def main(argv: list[str]) -> None:
    sockets = [field.partition("=") for field in argv[1].split(",")]
    command = argv[2:]
    # Above every target first, so that no socket lands on one not moved yet.
    moved = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, FIRST + len(sockets)) for fd, _, _ in sockets]
    for inherited, _, _ in sockets:
        os.close(int(inherited))
    for index, fd in enumerate(moved):
        os.dup2(fd, FIRST + index)
        os.close(fd)
    os.environ.update(
        LISTEN_FDS=str(len(sockets)),
        LISTEN_FDNAMES=":".join(name or "avatard.socket" for _, _, name in sockets),
        LISTEN_PID=str(os.getpid()),
    )
    # Replacing this process is the point: LISTEN_PID must be the daemon's.
    os.execv(command[0], command)  # noqa: S606


if __name__ == "__main__":
    main(sys.argv)
