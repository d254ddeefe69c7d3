"""Every package the code imports is declared in pyproject.toml's dependencies."""

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_top_levels() -> set[str]:
    """The top-level names of every absolute import in the package, functions' imports included."""
    names = set()
    for path in (ROOT / "src" / "fulliautomatix").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"fulliautomatix"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalized(re.split(r"[\s<>=!~;\[]", spec)[0]) for spec in project["dependencies"]}
    providers = packages_distributions()
    undeclared = {
        name: providers.get(name, [name])
        for name in imported_top_levels()
        if not declared & {normalized(d) for d in providers.get(name, [name])}
    }
    assert not undeclared, f"imported but not in pyproject.toml dependencies: {undeclared}"


def test_the_slurm_plugin_is_an_extra_pinned_to_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert re.fullmatch(r"snakemake-executor-plugin-slurm==[\d.]+", *project["optional-dependencies"]["slurm"])
