"""
avatard installed without its optional extras.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import avatard


class WithoutTLSExtraTests(SynchronousTestCase):
    def test_everyModuleButTLSImportsWithoutPyOpenSSL(self) -> None:
        """
        Without pyOpenSSL (avatard installed without its C{tls} extra),
        every module of the daemon imports, but the one that changes
        Twisted's TLS (and C{python -m avatard}'s, which runs a command):
        the daemon runs, with workers too, and only TLS endpoints need the
        extra.
        """
        modules = [
            name
            for _, name, _ in pkgutil.walk_packages(avatard.__path__, "avatard.")
            if name not in ("avatard.protocol.tls", "avatard.__main__")
        ]
        script = (
            "import importlib, sys\n"
            "sys.modules['OpenSSL'] = None\n"
            "failed = []\n"
            f"for name in {modules!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as e:\n"
            "        failed.append(f'{name}: {e}')\n"
            "print('\\n'.join(failed))\n"
        )
        # The avatard this test imported, wherever the working directory is.
        root = os.path.dirname(os.path.dirname(avatard.__file__))
        result = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": root},
        )
        self.assertIn("avatard.workers.sockets", modules)
        self.assertEqual(result.stdout.strip(), "")
