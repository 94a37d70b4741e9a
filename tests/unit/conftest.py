"""
What a unit test may not do: open a network socket, start a process or
sleep.  Each is refused while a unit test runs, so that a test that needs
one fails at once, naming what it did, rather than slowing the fast
tests down; such a test belongs in C{tests/integration/} or
C{tests/e2e/}.  UNIX sockets (the service manager's notification socket)
and files stay allowed, as do the real thread pools of the SQLite store.
Connections a C library makes on its own (libpq's) are not seen here.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

NETWORK = (socket.AF_INET, socket.AF_INET6)


def _refused(what: str) -> Callable[..., Any]:
    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"a unit test may not {what}: move it to tests/integration or tests/e2e")

    return refuse


def _localOnly(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
        if self.family in NETWORK:
            _refused(what)()
        return method(self, *args, **kwargs)

    return guarded


@pytest.fixture(autouse=True)
def _noNetworkNoProcessNoSleep(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("connect", "connect_ex", "bind", "sendto"):
        monkeypatch.setattr(socket.socket, name, _localOnly(getattr(socket.socket, name), "use the network"))
    monkeypatch.setattr(subprocess.Popen, "__init__", _refused("start a process"))
    monkeypatch.setattr(time, "sleep", _refused("sleep"))
