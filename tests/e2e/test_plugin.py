"""
The twistd dropin, once installed: found by the installed twistd from any
directory.
"""

from __future__ import annotations

import os
import platform
import subprocess

from twisted.copyright import version as twistedVersion
from twisted.trial.unittest import SynchronousTestCase

from avatard import __version__
from tests.daemon import environment, twistdCommand


class InstalledTwistdTests(SynchronousTestCase):
    """
    The installed C{twistd}, run from an unrelated directory with no help
    from this source tree.
    """

    def twistd(self, *arguments: str) -> str:
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        result = subprocess.run(
            [*twistdCommand(), *arguments],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        return result.stdout

    def test_twistdListsAvatard(self) -> None:
        """
        C{twistd --help} lists avatard (this needs C{pip install .} done).
        """
        self.assertRegex(self.twistd("--help"), r"\n\s+avatard\s+A directory daemon")

    def test_avatardHelpDocumentsEveryOption(self) -> None:
        """
        C{twistd avatard --help} documents every option.
        """
        text = self.twistd("avatard", "--help")
        for option in ("--db=", "--port=", "--max-line=", "--shutdown-timeout=", "--template="):
            self.assertIn(option, text)
        self.assertIn("Usage: twistd [options] avatard --db PATH [options]", text)


class TwistdVersionTests(SynchronousTestCase):
    """
    C{twistd avatard --version}, run by the real C{twistd} on this source
    tree.
    """

    def test_versionNamesAvatard(self) -> None:
        """
        C{twistd avatard --version} prints avatard's version, with
        Twisted's and Python's, and exits 0.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        result = subprocess.run(
            [*twistdCommand(), "avatard", "--version"],
            cwd=directory,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        self.assertEqual(
            result.stdout,
            f"avatard {__version__} (Twisted {twistedVersion}, Python {platform.python_version()})\n",
        )
