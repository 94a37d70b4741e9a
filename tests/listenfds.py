"""
Play systemd's part in socket activation, for end-to-end tests.

C{python tests/listenfds.py FD COMMAND...} moves the listening socket
inherited as descriptor C{FD} to descriptor 3, sets C{LISTEN_FDS},
C{LISTEN_FDNAMES} and C{LISTEN_PID} (to this process's id, which C{exec}
keeps) as systemd does, and replaces itself with C{COMMAND}.
"""

from __future__ import annotations

import os
import sys

FIRST = 3
"""
The first descriptor systemd passes (C{SD_LISTEN_FDS_START}).
"""


def main(argv: list[str]) -> None:
    fd = int(argv[1])
    command = argv[2:]
    if fd != FIRST:
        os.dup2(fd, FIRST)
        os.close(fd)
    os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="avatard.socket", LISTEN_PID=str(os.getpid()))
    # Replacing this process is the point: LISTEN_PID must be the daemon's.
    os.execv(command[0], command)  # noqa: S606


if __name__ == "__main__":
    main(sys.argv)
