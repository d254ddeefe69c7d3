"""The package's shape (scripts/check_shape.py): no import cycle, including imports inside functions."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("check_shape", ROOT / "scripts" / "check_shape.py")
check_shape = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_shape)


def test_the_package_has_no_import_cycle():
    graph = check_shape.import_graph(ROOT / "src" / "fulliautomatix")
    assert "fulliautomatix.hosts.runner" in graph  # the walk sees subpackages
    assert check_shape.cycles(graph) == []


def test_an_import_inside_a_function_closes_a_cycle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from . import high\n    return high\n")
    (package / "high.py").write_text("from .low import f\n")
    (package / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import high\n")
    assert check_shape.cycles(check_shape.import_graph(package)) == [["pkg.high", "pkg.low"]]


def test_long_modules_and_functions_are_named(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "big.py").write_text("def f():\n" + "    x = 1\n" * 70 + "\n" * 400)
    found = check_shape.problems(package)
    assert any("big.py: 471 lines" in line for line in found)
    assert any("big.py:1: f is 71 lines" in line for line in found)
