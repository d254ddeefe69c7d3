"""Ship the workflow, profiles and default config inside the wheel.

They stay where users know them in the repository (workflow/, profiles/,
config/); building the package copies them into it as
fulliautomatix/resources/, which config.resource_root() finds when the
package does not run from a source checkout. Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TREES = ("workflow", "profiles", "config")
SKIP = shutil.ignore_patterns("__pycache__", "*.py[co]", ".snakemake")


class BuildWithResources(build_py):
    """build_py that also copies the resource trees into the built package."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout, which holds them
        here = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "fulliautomatix" / "resources"
        shutil.rmtree(dest, ignore_errors=True)  # nothing stale from an earlier build
        for name in TREES:
            shutil.copytree(here / name, dest / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithResources})
