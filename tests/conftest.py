"""
pytest configuration shared by every test.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator

import pytest
from twisted.python.threadpool import ThreadPool


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
