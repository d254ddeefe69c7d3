"""Loading and validating the configuration.

The schema in ``workflow/schemas/config.schema.yaml`` is the one source of
truth for keys, types and defaults; both the cron wrapper and the Snakefile
call :func:`finalize`, which validates once with ``snakemake.utils.validate``
(filling the schema's defaults) against its JSON twin, ``config.schema.json``
(``make schema`` writes it; Snakemake reads a YAML schema through yte, 0.3 s).
After validation, relative paths are made absolute (see :func:`relative_base`),
so every process sees the same paths.

The workflow, profiles, schema and default config are found by
:func:`resource_root`: the source checkout this module runs from, else the copy
shipped inside the installed package, unless ``FULLIAUTOMATIX_HOME`` names
another tree.
"""

from __future__ import annotations

import copy
import getpass
import json
import os
import posixpath
import re
from pathlib import Path

HOME_ENV = "FULLIAUTOMATIX_HOME"
DB_ENV = "FULLIAUTOMATIX_RUNS_DB"
PACKAGED = Path(__file__).resolve().parent / "resources"  # the copy setup.py puts in the wheel


def resource_root() -> Path:
    """The tree holding workflow/, profiles/ and config/.

    $FULLIAUTOMATIX_HOME when set (a checkout, or a copy of those three
    directories); else the source checkout this module runs from (src/ layout,
    editable install); else the copy installed with the package.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "src" / "fulliautomatix").is_dir() and (checkout / "workflow" / "Snakefile").is_file():
        return checkout
    return PACKAGED


ROOT = resource_root()
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
# What validation reads: the YAML schema as JSON (`make schema`; a test keeps them equal).
# Snakemake loads a YAML schema through yte, 0.3 s of every command's start-up.
SCHEMA_JSON = SCHEMA.with_suffix(".json")
DEFAULT_CONFIG = ROOT / "config" / "config.yaml"


def version() -> str:
    """The installed package's version (its metadata), as `fulliautomatix --version` prints it."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("fulliautomatix")
    except PackageNotFoundError:
        return "unknown (not installed)"


def resource_paths() -> dict[str, Path]:
    """What `fulliautomatix paths` prints: where Snakemake users find the workflow."""
    return {
        "root": ROOT,
        "snakefile": ROOT / "workflow" / "Snakefile",
        "profiles": ROOT / "profiles",
        "config": DEFAULT_CONFIG,
        "schema": SCHEMA,
    }


def relative_base(config_path: str | os.PathLike | None = None) -> Path:
    """The directory that relative paths in the config are relative to.

    A source checkout or $FULLIAUTOMATIX_HOME: that tree, as always. An
    installed package: the directory of the config file given (--config,
    --configfile), else the current directory; never the package itself.
    """
    if ROOT != PACKAGED:
        return ROOT
    return Path(config_path).resolve().parent if config_path else Path.cwd()


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key."""


def read(path: str | os.PathLike | None = None) -> dict:
    """Read a YAML config file (the default one when path is None)."""
    import yaml  # here, not at the top: a stage job gets its config from Snakemake and never reads YAML

    path = Path(path) if path else DEFAULT_CONFIG
    try:
        with open(path) as fh:
            # libyaml's safe loader where PyYAML has it: the same documents, ten times faster (40 ms a start)
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys")
    return data


def validate(config: dict) -> dict:
    """Validate in place against the schema, filling its defaults, and return it; else one-line ConfigError.

    Snakemake's own ``snakemake.utils.validate(set_default=True)`` does the
    work, for the wrapper and the Snakefile alike (both call :func:`finalize`).
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    try:
        snakemake_validate(config, str(SCHEMA_JSON), set_default=True)
    except (WorkflowError, AttributeError) as exc:  # AttributeError: its default filler met a non-mapping
        raise ConfigError(first_error(config) or str(exc).strip().splitlines()[0]) from None
    plain_mappings(config)
    try:
        re.compile(config["run_name_pattern"])
    except re.error as exc:
        raise ConfigError(f"config key run_name_pattern: not a regular expression ({exc})") from None
    check_command(config["processing"]["command"])
    return config


def plain_mappings(value):
    """Turn, in place, the OrderedDicts that defaults read from the JSON schema bring into dicts.

    Snakemake loads a JSON schema with ``object_pairs_hook=OrderedDict``;
    the config is later written with ``yaml.safe_dump``, which refuses them.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = dict(plain_mappings(item)) if isinstance(item, dict) else plain_mappings(item)
    elif isinstance(value, list):
        value[:] = [dict(plain_mappings(v)) if isinstance(v, dict) else plain_mappings(v) for v in value]
    return value


def first_error(config: dict) -> str | None:
    """The config's first schema error (by key path) as one line naming the key; None when it has none."""
    import jsonschema

    with open(SCHEMA_JSON) as fh:
        schema = json.load(fh)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(config), key=lambda e: list(e.path))
    if not errors:
        return None
    err = errors[0]
    path = [str(p) for p in err.absolute_path]
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        # Name the unknown key itself, not its parent, and what it could have been.
        known = sorted(err.schema.get("properties", {}))
        unknown = sorted(k for k in err.instance if k not in known)
        if unknown and known:
            return f"config key {'.'.join(path + [str(unknown[0])])}: unknown key (known here: {', '.join(known)})"
    fix = ""
    if err.validator == "minLength" and err.instance == "":
        default = err.schema.get("default")
        fix = f"; give a path, or leave the key out for its default ({default})" if default else "; give a path"
    return f"config key {'.'.join(path) or '(top level)'}: {err.message}{fix}"


PLACEHOLDERS = ("raw", "output", "pax_config", "run", "python")  # what processing.command may hold


def check_command(template: str) -> list[str]:
    """processing.command split into words, each with only known placeholders; else ConfigError."""
    import shlex

    key = "config key processing.command"
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(f"{key}: cannot be split into words ({exc})") from None
    if not words or not words[0].strip():
        raise ConfigError(
            f"{key}: empty; give the processor's command line, e.g. "
            '"{python} -m fulliautomatix.processor --config {pax_config} --input {raw} '
            '--output {output}"'
        )
    dummy = {name: name for name in PLACEHOLDERS}
    for word in words:
        try:
            word.format(**dummy)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{key}: bad placeholder in {word!r} ({type(exc).__name__}: {exc}); "
                f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
            ) from None
    return words


def _abs(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p).resolve())


def _profile(path: str, base: Path) -> str:
    """A profile: relative ones in the base directory if there, else among the shipped profiles."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute() or (base / p).is_dir():
        return _abs(path, base)
    return _abs(path, ROOT)


def _places(config: dict) -> list[tuple[str, str, str]]:
    """(config key, machine, directory) of the directories a tick moves runs out of and into."""
    clusters = config["clusters"].items()
    places = [(f"clusters.{name}.scratch", cl.get("host", "local"), cl["scratch"]) for name, cl in clusters]
    if config["archive"]["backend"] == "local":
        places.append(("archive.location", "local", config["archive"]["location"]))
    return places + [("work_dir", "local", config["work_dir"])]


def _same_or_inside(a: str, b: str, host: str) -> bool:
    """Whether directory a is b or one holds the other, on host (symbolic links resolved on this machine)."""
    if host == "local":
        a, b = os.path.realpath(a), os.path.realpath(b)
    elif not (a.startswith("/") and b.startswith("/")):
        return False  # relative to two logins' homes on that machine: nothing to compare
    a, b = posixpath.normpath(a), posixpath.normpath(b)
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def check_separate(config: dict) -> None:
    """Refuse a DAQ directory that is, or holds, or lies in another directory the tick writes on its machine.

    The transfer moves (mv -T) a run's finished copy out of scratch's staging
    area: with the DAQ's directory inside scratch, that moved the DAQ's only copy.
    """
    daq_host, raw_dir = config["daq"]["host"], config["daq"]["raw_dir"]
    for key, host, directory in _places(config):
        if host == daq_host and _same_or_inside(raw_dir, directory, host):
            where = "this machine" if host == "local" else host
            raise ConfigError(
                f"config keys daq.raw_dir ({raw_dir}) and {key} ({directory}) are the same directory or one holds the "
                f"other on {where}, so a tick would move or delete the DAQ's only copy; give them separate directories"
            )


def finalize(config: dict, base: str | os.PathLike | None = None) -> dict:
    """Validate, apply the environment override and absolutize paths against base (:func:`relative_base`)."""
    config = validate(config)
    base = Path(base) if base else relative_base()
    if os.environ.get(DB_ENV):
        config["runs_db"]["uri"] = os.environ[DB_ENV]
    config["work_dir"] = _abs(config["work_dir"], base)
    config["log_dir"] = _abs(config["log_dir"], base)
    config["report"]["path"] = _abs(config["report"]["path"] or str(Path(config["log_dir"]) / "report.html"), base)
    if config["metrics"]["textfile"]:
        config["metrics"]["textfile"] = _abs(config["metrics"]["textfile"], base)
    if config["daq"]["host"] == "local":
        config["daq"]["raw_dir"] = _abs(config["daq"]["raw_dir"], base)
    for cl in config["clusters"].values():
        if cl.get("host", "local") == "local":
            cl["scratch"] = _abs(cl["scratch"], base)
        cl["username"] = cl.get("username") or getpass.getuser()
        cl["profile"] = _profile(cl.get("profile", "profiles/local"), base)
    if config["archive"]["backend"] == "local":
        config["archive"]["location"] = _abs(config["archive"]["location"], base)
    if config["archive"]["staging"]:
        config["archive"]["staging"] = _abs(config["archive"]["staging"], base)
    # The wrapper's --cluster, else the profile's own cluster, else the config's default.
    cluster = config["tick"].get("cluster") or config["profile_cluster"] or config["cluster"]
    if cluster not in config["clusters"]:
        known = ", ".join(sorted(config["clusters"]))
        source = (
            "--cluster"
            if config["tick"].get("cluster")
            else "the profile (profile_cluster)"
            if config["profile_cluster"]
            else "config key cluster"
        )
        raise ConfigError(
            f"unknown cluster {cluster!r}, named by {source}; the config defines {known} "
            f"(add clusters.{cluster}, or give the config file that defines it: the wrapper's --config FILE, "
            "Snakemake's --configfile FILE)"
        )
    config["tick"]["cluster"] = cluster
    check_separate(config)
    host = config["clusters"][cluster].get("host", "local")
    if config["archive"]["backend"] == "hpss" and host != "local":
        raise ConfigError(
            f"config key archive.backend: hpss needs the compressed copies on this machine (htar reads them here), "
            f"but cluster {cluster}'s scratch is on {host}; run the tick on the cluster's front-end with "
            f"clusters.{cluster}.host: local, or archive with backend local or rsync"
        )
    return config


def deep_update(base: dict, extra: dict) -> dict:
    """Merge extra into base recursively, as Snakemake merges config files."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load(path: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """The default config, updated by the file at path and by overrides.

    This is the same layering Snakemake applies to ``configfile:`` and
    ``--configfile``, so the wrapper and the workflow see the same values.
    """
    config = read(DEFAULT_CONFIG)
    if path and Path(path).resolve() != DEFAULT_CONFIG.resolve():
        deep_update(config, read(path))
    deep_update(config, overrides or {})
    return finalize(config, relative_base(path))


def cluster(config: dict) -> dict:
    """The settings of the cluster this tick works on, with its name."""
    name = config["tick"]["cluster"]
    return {"name": name, **config["clusters"][name]}


def state_dir(config: dict) -> Path:
    return Path(config["work_dir"]) / "state"
