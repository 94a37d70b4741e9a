"""
The admin command's user and import commands on SQLite files: the suite
every backend shares (L{tests.admincommand}); PostgreSQL runs it in
L{tests.integration.stores.postgres.test_admin}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.admincommand import ImportTestsMixin, UserTestsMixin
from tests.backends import SQLiteBackend


class SQLiteUserTests(SQLiteBackend, UserTestsMixin, SynchronousTestCase):
    """
    The shared user commands' tests on SQLite.
    """


class SQLiteImportTests(SQLiteBackend, ImportTestsMixin, SynchronousTestCase):
    """
    The shared import tests on SQLite.
    """
