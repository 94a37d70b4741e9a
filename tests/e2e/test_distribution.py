"""
The installed distribution: what C{pip install .} puts on a machine, seen
from an unrelated directory with no help from this source tree.
"""

from __future__ import annotations

import json
import os
import textwrap

from twisted.trial.unittest import SynchronousTestCase

from tests.daemon import REPO, runPython

_DESCRIBE_LICENSE = textwrap.dedent(
    """
    import json
    from importlib.metadata import distribution

    found = distribution("avatard")
    files = [path for path in found.files or () if path.name == "LICENSE"]
    print(json.dumps({
        "expression": found.metadata["License-Expression"],
        "licenseFiles": found.metadata.get_all("License-File"),
        "texts": [path.read_text(encoding="utf-8") for path in files],
    }))
    """
)


class LicenseTests(SynchronousTestCase):
    def test_installedDistributionCarriesItsLicense(self) -> None:
        """
        The installed C{avatard} distribution says it is under the MIT
        license, names its C{LICENSE} file, and carries that file: this
        repository's C{LICENSE}.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        output = runPython(_DESCRIBE_LICENSE, env=env, cwd=directory)
        installed = json.loads(output)
        with open(os.path.join(REPO, "LICENSE"), encoding="utf-8") as f:
            expected = f.read()
        self.assertTrue(expected.startswith("MIT License\n\nCopyright (c) 2026 the avatard developers\n"))
        self.assertEqual(installed, {"expression": "MIT", "licenseFiles": ["LICENSE"], "texts": [expected]})


_LIST_FILES = textwrap.dedent(
    """
    import json
    from importlib.metadata import distribution

    print(json.dumps([str(path) for path in distribution("avatard").files or ()]))
    """
)


class ContentsTests(SynchronousTestCase):
    def test_installedDistributionHoldsEveryModuleAndSchema(self) -> None:
        """
        Every module of the C{avatard} package in this source tree, every
        backend's schema and the twistd dropin are in the installed
        distribution: a package left out of C{pyproject.toml} would make an
        installed daemon fail at its first import.
        """
        directory = os.path.abspath(self.mktemp())
        os.mkdir(directory)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        output = runPython(_LIST_FILES, env=env, cwd=directory)
        installed = set(json.loads(output))
        expected = {"twisted/plugins/avatard_plugin.py"}
        for root, _, names in os.walk(os.path.join(REPO, "avatard")):
            for name in names:
                if name.endswith((".py", ".sql")):
                    expected.add(os.path.relpath(os.path.join(root, name), REPO))
        self.assertEqual(sorted(expected - installed), [])
