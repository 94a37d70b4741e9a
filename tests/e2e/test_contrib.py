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
        C{systemd-analyze verify} finds nothing to say about the units,
        the finger socket and its drop-in included (with C{ExecStart}
        pointing at this environment's twistd, since it checks that the
        command exists).
        """
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise SkipTest("systemd-analyze is not installed")
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        os.mkdir(os.path.join(directory, "avatard.service.d"))
        for name in ("avatard.service", os.path.join("avatard.service.d", "finger.conf")):
            with open(os.path.join(SYSTEMD, name), encoding="utf-8") as f:
                text = f.read().replace("/opt/avatard/bin/twistd", twistdCommand()[0])
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(text)
        shutil.copy(os.path.join(SYSTEMD, "avatard.socket"), directory)
        shutil.copy(os.path.join(SYSTEMD, "avatard-finger.socket"), directory)
        result = subprocess.run(
            [analyze, "verify", "--man=no", "avatard.service", "avatard.socket", "avatard-finger.socket"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual((result.returncode, result.stderr, result.stdout), (0, "", ""))
