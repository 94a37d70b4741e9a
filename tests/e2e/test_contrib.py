"""
The shipped systemd units, checked by systemd's own C{systemd-analyze}.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.daemon import REPO, twistdCommand

SYSTEMD = os.path.join(REPO, "contrib", "systemd")


class SystemdAnalyzeTests(SynchronousTestCase):
    """
    contrib/systemd/, as systemd's own checker reads it.
    """

    def test_systemdAnalyzeVerify(self) -> None:
        """
        C{systemd-analyze verify} finds nothing to say about the units
        (with C{ExecStart} pointing at this environment's twistd, since it
        checks that the command exists).
        """
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise SkipTest("systemd-analyze is not installed")
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        with open(os.path.join(SYSTEMD, "avatard.service"), encoding="utf-8") as f:
            service = f.read().replace("/opt/avatard/bin/twistd", twistdCommand()[0])
        with open(os.path.join(directory, "avatard.service"), "w", encoding="utf-8") as f:
            f.write(service)
        shutil.copy(os.path.join(SYSTEMD, "avatard.socket"), directory)
        result = subprocess.run(
            [analyze, "verify", "--man=no", "avatard.service", "avatard.socket"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual((result.returncode, result.stderr, result.stdout), (0, "", ""))
