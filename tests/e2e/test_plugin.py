"""
The twistd dropin: found by twistd once installed, from any directory, and
robust to a plugin cache that is stale or cannot be written.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import textwrap

from twisted.copyright import version as twistedVersion
from twisted.trial.unittest import SynchronousTestCase

from avatard import __version__
from tests.daemon import REPO, environment, twistdCommand

DROPIN = os.path.join(REPO, "twisted", "plugins", "avatard_plugin.py")


class DropinTests(SynchronousTestCase):
    def test_dropinIsOneServiceMaker(self) -> None:
        """
        The dropin names C{avatard.tap} as a string and does nothing else,
        so loading it (and caching it) never imports the daemon.
        """
        with open(DROPIN) as f:
            code = [line for line in f.read().splitlines() if line.strip()]
        self.assertEqual(code[0], "from twisted.application.service import ServiceMaker")
        self.assertEqual(len(code), 2)
        self.assertIn('ServiceMaker("avatard", "avatard.tap",', code[1])

    def test_noPackageInitInTwistedPlugins(self) -> None:
        """
        C{twisted/} and C{twisted/plugins/} have no C{__init__.py}, which
        would shadow Twisted itself.
        """
        for directory in ("twisted", os.path.join("twisted", "plugins")):
            self.assertFalse(os.path.exists(os.path.join(REPO, directory, "__init__.py")))


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
        for option in ("--db=", "--port=", "--max-line=", "--shutdown-timeout="):
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


_LIST_PLUGINS = textwrap.dedent(
    """
    import sys
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins
    import avatardtestplugins
    for maker in getPlugins(IServiceMaker, avatardtestplugins):
        print(maker.tapname, maker.module)
    """
)


class PluginCacheTests(SynchronousTestCase):
    """
    A C{dropin.cache} beside the dropin that is garbage, stale, or cannot be
    written does not hide avatard.
    """

    def listPlugins(self, prepare: str) -> str:
        root = os.path.abspath(self.mktemp())
        package = os.path.join(root, "avatardtestplugins")
        os.makedirs(package)
        open(os.path.join(package, "__init__.py"), "w").close()
        shutil.copy(DROPIN, package)
        cache = os.path.join(package, "dropin.cache")
        if prepare == "garbage":
            with open(cache, "wb") as f:
                f.write(b"\x80\x04this is not a pickle")
        elif prepare == "unwritable":
            os.mkdir(cache)
        elif prepare == "stale":
            with open(cache, "wb") as f:
                f.write(b"\x80\x04}\x94.")  # an empty cache, newer than the dropin
            os.utime(os.path.join(package, "avatard_plugin.py"), (0, 0))
        env = environment()
        env["PYTHONPATH"] = os.pathsep.join([root, env["PYTHONPATH"]])
        result = subprocess.run(
            [sys.executable, "-c", _LIST_PLUGINS],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertNotIn("Traceback", result.stderr)
        return result.stdout

    def test_garbageCache(self) -> None:
        """
        A cache that cannot be read is rebuilt.
        """
        self.assertEqual(self.listPlugins("garbage"), "avatard avatard.tap\n")

    def test_unwritableCache(self) -> None:
        """
        A cache that cannot be written (here a directory in its place, which
        even root cannot overwrite) only costs a re-scan.
        """
        self.assertEqual(self.listPlugins("unwritable"), "avatard avatard.tap\n")

    def test_staleCache(self) -> None:
        """
        A cache that is newer than the dropin but does not list it is
        completed.
        """
        self.assertEqual(self.listPlugins("stale"), "avatard avatard.tap\n")

    def test_noCache(self) -> None:
        """
        Without any cache the dropin is found.
        """
        self.assertEqual(self.listPlugins("none"), "avatard avatard.tap\n")
