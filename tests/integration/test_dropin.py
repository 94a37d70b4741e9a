"""
The twistd dropin, C{twisted/plugins/avatard_plugin.py}, loaded by
Twisted's plugin system in an interpreter of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import REPO, environment, runPython

_LOAD_DROPIN = textwrap.dedent(
    """
    import json
    import sys
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins
    import avatardtestplugins
    makers = [(maker.tapname, maker.module) for maker in getPlugins(IServiceMaker, avatardtestplugins)]
    imported = sorted(name for name in sys.modules if name.split(".")[0] == "avatard")
    print(json.dumps({"makers": makers, "imported": imported}))
    """
)


DROPIN = os.path.join(REPO, "twisted", "plugins", "avatard_plugin.py")


class DropinTests(SynchronousTestCase):
    def test_loadingTheDropinImportsNothingOfTheDaemon(self) -> None:
        """
        Twisted's plugin system, loading the dropin in a fresh interpreter,
        finds one service maker, C{avatard}, naming C{avatard.tap}, and
        nothing of avatard is imported: listing or caching plugins never
        imports the daemon.
        """
        root = os.path.abspath(self.mktemp())
        package = os.path.join(root, "avatardtestplugins")
        os.makedirs(package)
        open(os.path.join(package, "__init__.py"), "w").close()
        shutil.copy(DROPIN, package)
        env = environment()
        env["PYTHONPATH"] = os.pathsep.join([root, env["PYTHONPATH"]])
        self.assertEqual(
            json.loads(runPython(_LOAD_DROPIN, env=env)),
            {"makers": [["avatard", "avatard.tap"]], "imported": []},
        )
