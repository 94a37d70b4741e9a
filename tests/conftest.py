"""
pytest configuration shared by every test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


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
