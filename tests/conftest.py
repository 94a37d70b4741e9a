"""
pytest configuration shared by every test.

Every test is marked by the directory it lives in: C{unit} (C{tests/unit/},
no network sockets, no sleeps, no subprocesses: seconds in all),
C{integration} (C{tests/integration/}: a PostgreSQL server, or programs
run as subprocesses other than the daemon) or C{e2e} (C{tests/e2e/}: the
real C{twistd -n avatard} and other real programs).  So C{pytest -m unit}
runs the fast ones alone, as C{pytest tests/unit} does.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.python.threadpool import ThreadPool

KINDS = ("unit", "integration", "e2e")
"""
The kinds of tests, each a directory under C{tests/} and a marker.
"""

TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """
    Mark each test with the kind its directory says; refuse a test that is
    in none of them, which C{-m} would otherwise leave out unnoticed.
    """
    for item in items:
        path = item.path.resolve()
        kind = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if kind not in KINDS:
            raise pytest.UsageError(
                f"{item.nodeid}: every test lives in tests/unit, tests/integration or tests/e2e"
            )
        item.add_marker(kind)


@pytest.fixture(autouse=True, scope="session")
def _workInTemporaryDirectory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """
    Run the tests from a temporary directory, as trial does, so that
    C{TestCase.mktemp()} paths (relative to the working directory) never land
    in the source tree.
    """
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("work"))
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture(autouse=True)
def _stopLeftoverThreadPools() -> Iterator[None]:
    """
    Stop any thread pool a failed test left running, so that one failure
    cannot keep the interpreter (and so the whole run) from exiting.
    """
    yield
    if any(t.name.startswith("PoolThread-") for t in threading.enumerate()):
        for candidate in gc.get_objects():
            if isinstance(candidate, ThreadPool) and candidate.started:
                candidate.stop()
