"""A real install: the wheel, in a fresh venv, runs a tick from a directory outside the checkout.

The wheel is built from a copy of the files a build reads (so nothing is written
into the checkout and no stale build/ is shipped), installed without the
checkout anywhere on sys.path, and run with a site config of relative paths in
one directory while the current directory is another.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pymongo
import pytest
import yaml

from fa_testlib import ROOT
from fulliautomatix import config as fa_config
from fulliautomatix import states

BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src", "workflow", "profiles", "config")
SKIP = shutil.ignore_patterns("__pycache__", "*.py[co]", "*.egg-info", ".snakemake")
ONDECK_OR_LATER = states.RAW_STATES[states.RAW_STATES.index("ondeck") :]


def run(argv: list, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert r.returncode == 0, f"$ {' '.join(map(str, argv))}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv (no system site packages) holding the wheel built from this checkout."""
    tmp = tmp_path_factory.mktemp("install")
    source, wheels, venv = tmp / "source", tmp / "wheels", tmp / "venv"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=SKIP)
        else:
            shutil.copy2(ROOT / name, source / name)
    started = time.monotonic()
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, source], cwd=tmp)
    [wheel] = wheels.glob("fulliautomatix-*.whl")
    run([sys.executable, "-m", "venv", venv], cwd=tmp)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=tmp, timeout=600)
    print(f"wheel built and installed in {time.monotonic() - started:.0f} s")
    return venv


def clean_env(venv: Path) -> dict:
    """This shell's environment without anything that points at the checkout or its venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (fa_config.DB_ENV, fa_config.HOME_ENV, "PYTHONPATH", "VIRTUAL_ENV")
    }
    dev_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != dev_bin]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *path])
    return env


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    env = clean_env(installed)
    r = run(
        [installed / "bin" / "python", "-c", "import fulliautomatix.cli as m; print(m.__file__)"], cwd=tmp_path, env=env
    )
    assert Path(r.stdout.strip()).is_relative_to(installed)
    root = Path(run(["fulliautomatix", "paths", "root"], cwd=tmp_path, env=env).stdout.strip())
    assert root.is_relative_to(installed), "the workflow tree ships inside the package"
    for name in (
        "workflow/Snakefile",
        "workflow/rules/common.smk",
        "workflow/scripts/transfer_run.py",
        "workflow/schemas/config.schema.yaml",
        "workflow/schemas/config.schema.json",
        "workflow/envs/fulliautomatix.yaml",
        "profiles/local/config.yaml",
        "profiles/conte/config.yaml",
        "config/config.yaml",
    ):
        assert (root / name).is_file(), f"{name} is not in the installed package"
    assert not (root / "src").exists()


def test_an_installed_tick_runs_from_any_directory(installed, tmp_path, nx_server, db_name):
    env = clean_env(installed)
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    config = site / "site.yaml"  # relative paths (the default config's data/...) resolve beside this file
    config.write_text(
        yaml.safe_dump(
            {"runs_db": {"uri": nx_server, "database": db_name, "collection": db_name}, "archive": {"batch_runs": 2}}
        )
    )
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert run(["fulliautomatix", "--version"], cwd=elsewhere, env=env).stdout.strip() == f"fulliautomatix {version}"

    run(
        ["fulliautomatix", "--config", config, "--log", "INFO", "simulate-daq", "--runs", "2", "--events", "200"],
        cwd=elsewhere,
        env=env,
    )
    assert len(list((site / "data" / "daq").iterdir())) == 2, "the DAQ directory is data/daq beside the config"
    run(["fulliautomatix", "--config", config], cwd=elsewhere, env=env)

    client = pymongo.MongoClient(nx_server)
    try:
        docs = list(client[db_name][db_name].find({}, {"name": 1, states.RAW: 1}))
    finally:
        client.close()
    assert len(docs) == 2
    for doc in docs:
        assert doc[states.RAW] in ONDECK_OR_LATER, doc
    assert (site / "data" / "work" / "state" / "ondeck").is_dir()
    assert list(elsewhere.iterdir()) == [], "nothing is written into the current directory"
