"""The command line's surface: --help lists every subcommand, --version, --log in any case, paths."""

import tomllib

import pytest

from fa_testlib import ROOT
from fulliautomatix import cli
from fulliautomatix import config as fa_config


def test_the_top_level_help_lists_every_subcommand_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ("status", "simulate-daq", "restore", "retry", "db", "paths"):
        described = [ln for ln in lines if ln.split()[:1] == [name] and len(ln.split()) > 3]
        assert described, f"{name} is not listed with a description in --help"
    assert "--version" in "\n".join(lines)


def test_every_subcommand_has_a_description_in_its_own_help(capsys):
    for name, what in cli.COMMANDS.items():
        with pytest.raises(SystemExit):
            cli.command_parser(name).parse_args(["--help"])
        assert what in " ".join(capsys.readouterr().out.split())


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out.strip() == f"fulliautomatix {version}"


@pytest.mark.parametrize("given", ["INFO", "Info", "info", "DEBUG", "Warning"])
def test_log_accepts_any_case(given):
    assert cli.tick_parser().parse_args(["--log", given]).log == given.lower()
    assert cli.command_parser("status").parse_args(["--log", given]).log == given.lower()


def test_an_unknown_log_level_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--log", "loud"])
    assert exit_.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err


def test_paths_print_the_workflow_tree_without_a_config(capsys, tmp_path):
    missing = tmp_path / "no-such-config.yaml"
    assert cli.main(["--config", str(missing), "paths"]) == 0, "paths reads no config"
    out = dict(ln.split(None, 1) for ln in capsys.readouterr().out.splitlines())
    assert out["snakefile"] == str(fa_config.ROOT / "workflow" / "Snakefile")
    assert out["profiles"] == str(fa_config.ROOT / "profiles")
    assert cli.main(["paths", "snakefile"]) == 0
    assert capsys.readouterr().out == f"{fa_config.ROOT / 'workflow' / 'Snakefile'}\n"
    for path in fa_config.resource_paths().values():
        assert path.exists(), path


def test_an_unknown_cluster_names_the_wrappers_own_flag_for_a_config(capsys):
    """The config's check is shared by both doors: it names each door's flag (the wrapper takes --config)."""
    assert cli.main(["--cluster", "nosuch"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fulliautomatix: unknown cluster 'nosuch', named by --cluster"), err
    assert err[0].endswith("the wrapper's --config FILE, Snakemake's --configfile FILE)"), err
