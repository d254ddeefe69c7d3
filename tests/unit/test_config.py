"""Config loading: schema defaults, one error naming the key, env override, absolute paths."""

import os
from pathlib import Path

import pytest
import yaml

from fulliautomatix import config as fa_config
from fulliautomatix.config import ConfigError


@pytest.fixture(autouse=True)
def no_db_env(monkeypatch):
    monkeypatch.delenv(fa_config.DB_ENV, raising=False)


@pytest.fixture
def write(tmp_path):
    def write(data, name="config.yaml") -> Path:
        p = tmp_path / name
        p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
        return p

    return write


def test_schema_defaults_fill_an_empty_config():
    c = fa_config.validate({})
    assert c["runs_db"] == {"uri": "embedded", "database": "asterix", "collection": "runs", "timeout_seconds": 10}
    assert c["run_name_pattern"] == "^[0-9]{6}_[0-9]{4}$"
    assert c["archive"]["backend"] == "local" and c["archive"]["batch_runs"] == 4
    assert c["transfer"]["rsync"] == ["rsync", "-a", "--partial"]
    assert c["tick"]["stages"] == ["transfer", "process", "compress", "archive"]
    assert c["clusters"]["local"]["profile"] == "profiles/local", "defaults inside additionalProperties too"


def test_the_default_config_file_says_what_the_schema_defaults_say():
    """config/config.yaml documents every key (tick is set by the wrapper, not by files)."""
    documented = fa_config.read(fa_config.DEFAULT_CONFIG)
    defaults = fa_config.validate({})
    defaults.pop("tick")
    missing = [k for k in defaults if k not in documented]
    missing += [
        f"{k}.{sub}"
        for k, v in defaults.items()
        if isinstance(v, dict) and k != "clusters"
        for sub in v
        if sub not in (documented.get(k) or {})
    ]
    assert missing == [], "keys of the schema missing from config/config.yaml"
    assert fa_config.validate(documented) == fa_config.validate({}), (
        "config.yaml values differ from the schema defaults"
    )


def test_a_partial_file_keeps_the_other_defaults(write):
    c = fa_config.load(write({"archive": {"batch_runs": 7}}))
    assert c["archive"]["batch_runs"] == 7
    assert c["archive"]["max_wait_days"] == 2
    assert c["compression"]["level"] == 3


def test_defaults_are_not_shared_between_configs():
    a, b = fa_config.validate({}), fa_config.validate({})
    a["transfer"]["rsync"].append("--bwlimit=1")
    assert b["transfer"]["rsync"] == ["rsync", "-a", "--partial"]


@pytest.mark.parametrize(
    "data, key",
    [
        ({"archve": {}}, "config key archve: unknown key"),
        ({"archive": {"batchruns": 2}}, "config key archive.batchruns: unknown key"),
        ({"clusters": {"big": {"scratch": "/s", "queue": "x"}}}, "config key clusters.big.queue: unknown key"),
        ({"archive": {"batch_runs": "four"}}, "config key archive.batch_runs:"),
        ({"archive": {"batch_runs": 0}}, "config key archive.batch_runs:"),
        ({"runs_db": {"timeout_seconds": "soon"}}, "config key runs_db.timeout_seconds:"),
        ({"runs_db": "mongodb://x"}, "config key runs_db:"),
        ({"transfer": {"checksum": "md5"}}, "config key transfer.checksum:"),
        ({"transfer": {"purge": "always"}}, "config key transfer.purge:"),
        ({"archive": {"backend": "s3"}}, "config key archive.backend:"),
        ({"transfer": {"rsync": "rsync -a"}}, "config key transfer.rsync:"),
        ({"tick": {"stages": ["transfer", "tape"]}}, "config key tick.stages.1:"),
        ({"clusters": {"big": {"host": "big"}}}, "config key clusters.big:"),
        ({"processing": {"version": "v 1; rm"}}, "config key processing.version:"),
        ({"run_name_pattern": "([0-9"}, "config key run_name_pattern:"),
    ],
)
def test_a_bad_key_type_or_value_names_the_key(write, data, key):
    with pytest.raises(ConfigError) as err:
        fa_config.load(write(data))
    msg = str(err.value)
    assert msg.startswith(key), msg
    assert "\n" not in msg, "one line"


def test_unknown_key_lists_the_known_ones(write):
    with pytest.raises(ConfigError, match="known here: .*batch_runs"):
        fa_config.load(write({"archive": {"batchruns": 2}}))


@pytest.mark.parametrize(
    "text, words", [("runs_db: [unclosed", "not valid YAML"), ("- a\n- b\n", "must hold a mapping")]
)
def test_unreadable_files(write, text, words):
    with pytest.raises(ConfigError, match=words):
        fa_config.load(write(text))


def test_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        fa_config.load(tmp_path / "nope.yaml")


def test_an_empty_file_is_the_default_config(write):
    assert fa_config.load(write("")) == fa_config.load(None)


def test_env_overrides_the_runs_db_uri(write, monkeypatch):
    path = write({"runs_db": {"uri": "mongodb://from-file:27017/"}})
    assert fa_config.load(path)["runs_db"]["uri"] == "mongodb://from-file:27017/"
    monkeypatch.setenv(fa_config.DB_ENV, "mongodb://from-env:27018/")
    c = fa_config.load(path)
    assert c["runs_db"]["uri"] == "mongodb://from-env:27018/"
    assert c["runs_db"]["database"] == "asterix", "only the URI is overridden"


def test_an_empty_env_value_does_not_override(write, monkeypatch):
    monkeypatch.setenv(fa_config.DB_ENV, "")
    assert fa_config.load(write({}))["runs_db"]["uri"] == "embedded"


def test_relative_paths_become_absolute_under_the_project_root(write, tmp_path):
    c = fa_config.load(
        write(
            {
                "work_dir": "rel/work",
                "log_dir": "rel/logs",
                "daq": {"raw_dir": "rel/daq"},
                "clusters": {"local": {"scratch": "rel/scratch", "profile": "profiles/local"}},
                "archive": {"location": "rel/archive"},
            }
        )
    )
    root = fa_config.ROOT
    assert c["work_dir"] == str(root / "rel/work")
    assert c["log_dir"] == str(root / "rel/logs")
    assert c["daq"]["raw_dir"] == str(root / "rel/daq")
    assert c["clusters"]["local"]["scratch"] == str(root / "rel/scratch")
    assert c["clusters"]["local"]["profile"] == str(root / "profiles/local")
    assert c["archive"]["location"] == str(root / "rel/archive")
    assert fa_config.state_dir(c) == root / "rel/work/state"


def test_absolute_and_home_paths(write, tmp_path):
    c = fa_config.load(write({"work_dir": str(tmp_path / "w"), "log_dir": "~/fa-logs"}))
    assert c["work_dir"] == str(tmp_path / "w")
    assert c["log_dir"] == str(Path(os.path.expanduser("~/fa-logs")).resolve())


def test_remote_paths_are_left_as_the_remote_host_names_them(write):
    c = fa_config.load(
        write(
            {
                "daq": {"host": "daq", "raw_dir": "data/daq"},
                "clusters": {"big": {"host": "login.big", "scratch": "scratch/fa"}},
                "cluster": "big",
            }
        )
    )
    assert c["daq"]["raw_dir"] == "data/daq"
    assert c["clusters"]["big"]["scratch"] == "scratch/fa"


def test_finalize_is_idempotent(write):
    c = fa_config.load(write({"work_dir": "rel/work"}))
    assert fa_config.finalize(yaml.safe_load(yaml.safe_dump(c))) == c


def test_the_cluster_is_chosen_by_option_then_config(write):
    path = write({"clusters": {"big": {"scratch": "/scratch/fa", "username": "asterix"}}})
    c = fa_config.load(path)
    assert c["tick"]["cluster"] == "local"
    assert c["clusters"]["local"]["username"], "empty username: the user running fulliautomatix"
    c = fa_config.load(path, {"tick": {"cluster": "big"}})
    chosen = fa_config.cluster(c)
    assert {k: chosen[k] for k in ("name", "host", "scratch", "username", "profile")} == {
        "name": "big",
        "host": "local",
        "scratch": "/scratch/fa",
        "username": "asterix",
        "profile": str(fa_config.ROOT / "profiles/local"),
    }
    assert chosen["ssh"][0] == "ssh" and chosen["from_daq"]["host"] == "", "ssh keys filled from the schema"


@pytest.mark.parametrize(
    "overrides, data",
    [
        ({"tick": {"cluster": "nope"}}, {}),  # --cluster nope
        ({}, {"cluster": "nope"}),  # cluster: nope in the file
    ],
)
def test_an_unknown_cluster_is_refused_naming_the_known_ones(write, overrides, data):
    with pytest.raises(ConfigError) as err:
        fa_config.load(write(data), overrides)
    assert "'nope'" in str(err.value) and "local" in str(err.value)


def test_hpss_with_the_clusters_scratch_on_a_remote_host_is_refused_naming_the_limitation(write):
    path = write(
        {
            "archive": {"backend": "hpss", "location": "/home/asterix/batches"},
            "clusters": {"big": {"host": "login.big", "scratch": "/scratch/fa"}},
        }
    )
    assert fa_config.load(path)["archive"]["backend"] == "hpss", "a local cluster is fine"
    with pytest.raises(ConfigError) as err:
        fa_config.load(path, {"tick": {"cluster": "big"}})
    assert "archive.backend" in str(err.value) and "login.big" in str(err.value) and "htar" in str(err.value)


def test_deep_update_merges_nested_keys_and_copies():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    extra = {"a": {"c": [9]}, "e": 4}
    fa_config.deep_update(base, extra)
    assert base == {"a": {"b": 1, "c": [9]}, "d": 3, "e": 4}
    extra["a"]["c"].append(10)
    assert base["a"]["c"] == [9]


def test_the_resource_root_is_this_checkout_unless_fulliautomatix_home_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv(fa_config.HOME_ENV, raising=False)
    assert fa_config.resource_root() == Path(__file__).resolve().parents[2]
    monkeypatch.setenv(fa_config.HOME_ENV, str(tmp_path))
    assert fa_config.resource_root() == tmp_path


def test_installed_relative_paths_resolve_beside_the_config_file_else_in_the_current_dir(write, tmp_path, monkeypatch):
    """An installed package (ROOT is the copy inside it) never resolves paths into the package."""
    monkeypatch.setattr(fa_config, "ROOT", fa_config.PACKAGED)
    (tmp_path / "profiles" / "mine").mkdir(parents=True)
    path = write(
        {
            "work_dir": "rel/work",
            "clusters": {"local": {"profile": "profiles/mine"}, "big": {"scratch": "/s", "profile": "profiles/conte"}},
        }
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    c = fa_config.load(path)
    assert c["work_dir"] == str(tmp_path / "rel/work")
    assert c["log_dir"] == str(tmp_path / "data/logs"), "the default config's paths too"
    assert c["clusters"]["local"]["profile"] == str(tmp_path / "profiles/mine"), "a profile of the user's"
    assert c["clusters"]["big"]["profile"] == str(fa_config.PACKAGED / "profiles/conte"), "else a shipped one"
    assert fa_config.load()["work_dir"] == str(elsewhere / "data/work"), "no --config: the current directory"


def test_a_relative_archive_staging_becomes_absolute(write):
    c = fa_config.load(write({"archive": {"staging": "rel/staging"}}))
    assert c["archive"]["staging"] == str(fa_config.ROOT / "rel/staging")


@pytest.mark.parametrize(
    "command, words",
    [("", "processing.command"), ("   ", "empty"), ("proc {raw} {nope}", "nope"), ("proc 'unbalanced", "split")],
)
def test_a_processing_command_that_cannot_run_is_refused_at_load(write, command, words):
    with pytest.raises(ConfigError) as err:
        fa_config.load(write({"processing": {"command": command}}))
    assert "config key processing.command" in str(err.value) and words in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "uri",
    [
        "mongodb://fa:secret@h/x",
        "mongodb://fa:sec/ret@h:99999/",
        "mongodb:/fa:secret@h",
        "mongodb://fa:p@ss@h/x",
        "runs DB URI 'mongodb://u:secret@h' is not usable",
    ],
)
def test_credentials_are_masked_in_any_uri(uri):
    from fulliautomatix.runsdb import redact

    assert "secret" not in redact(uri) and "sec/ret" not in redact(uri) and "ss@h" not in redact(uri)
    assert "***@" in redact(uri)
    assert redact("mongodb://host:27017/x") == "mongodb://host:27017/x"


def test_schema_json_twin_is_the_yaml_schema():
    """Validation reads config.schema.json: it must say exactly what the YAML source says (`make schema`)."""
    import json

    import yaml

    from fulliautomatix import config as cfg

    assert cfg.SCHEMA_JSON.name == "config.schema.json"
    assert json.loads(cfg.SCHEMA_JSON.read_text()) == yaml.safe_load(cfg.SCHEMA.read_text()), "run `make schema`"


@pytest.mark.parametrize(
    "data, keys",
    [
        # The reviewer's case: each DAQ run directory was moved into scratch/raw/.incoming/.
        ({"daq": {"raw_dir": "{t}/cluster/raw"}, "clusters": {"local": {"scratch": "{t}/cluster"}}}, "scratch"),
        ({"daq": {"raw_dir": "{t}/same"}, "clusters": {"local": {"scratch": "{t}/same"}}}, "scratch"),
        ({"daq": {"raw_dir": "{t}/daq"}, "clusters": {"local": {"scratch": "{t}/daq/scratch"}}}, "scratch"),
        ({"daq": {"raw_dir": "{t}/daq"}, "clusters": {"big": {"scratch": "{t}/daq/./big/"}}}, "big"),
        ({"daq": {"raw_dir": "{t}/daq"}, "archive": {"location": "{t}/daq"}}, "archive.location"),
        ({"daq": {"raw_dir": "{t}/work/daq"}, "work_dir": "{t}/work"}, "work_dir"),
        ({"daq": {"raw_dir": "{t}/link/raw"}, "clusters": {"local": {"scratch": "{t}/real"}}}, "scratch"),
        (
            {"daq": {"host": "daq", "raw_dir": "/data/raw"}, "clusters": {"big": {"host": "daq", "scratch": "/data"}}},
            "clusters.big.scratch",
        ),
    ],
)
def test_a_daq_directory_overlapping_another_on_its_machine_is_refused_naming_both_keys(write, tmp_path, data, keys):
    """The transfer moves a run out of its staging directory: one inside the DAQ's would take the only copy."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    data = yaml.safe_load(yaml.safe_dump(data).replace("{t}", str(tmp_path)))
    with pytest.raises(ConfigError) as err:
        fa_config.load(write(data))
    msg = str(err.value)
    assert "\n" not in msg and "daq.raw_dir" in msg and keys in msg, msg
    assert "separate" in msg, "says how to fix it"


@pytest.mark.parametrize(
    "data",
    [
        # The DAQ on another machine: the same path string names another directory.
        {"daq": {"host": "daq", "raw_dir": "{t}/cluster/raw"}, "clusters": {"local": {"scratch": "{t}/cluster"}}},
        {"daq": {"raw_dir": "{t}/raw"}, "clusters": {"local": {"host": "big", "scratch": "{t}/raw"}}},
        {"daq": {"raw_dir": "{t}/raw"}, "archive": {"backend": "rsync", "location": "{t}/raw", "rsync": {"host": "a"}}},
        # Siblings that only share a prefix of their names.
        {"daq": {"raw_dir": "{t}/cluster2"}, "clusters": {"local": {"scratch": "{t}/cluster"}}},
    ],
)
def test_directories_on_different_machines_or_beside_each_other_may_share_a_path(write, tmp_path, data):
    data = yaml.safe_load(yaml.safe_dump(data).replace("{t}", str(tmp_path)))
    fa_config.load(write(data))


@pytest.mark.parametrize(
    "data, key",
    [
        ({"work_dir": ""}, "work_dir"),
        ({"log_dir": ""}, "log_dir"),
        ({"daq": {"raw_dir": ""}}, "daq.raw_dir"),
        ({"clusters": {"local": {"scratch": ""}}}, "clusters.local.scratch"),
        ({"clusters": {"local": {"profile": ""}}}, "clusters.local.profile"),
        ({"archive": {"location": ""}}, "archive.location"),
    ],
)
def test_an_empty_directory_is_refused_naming_the_key_and_the_fix(write, data, key):
    """Before, work_dir: "" put state/, logs/, a runs DB and benchmarks/ in the current directory (the source tree)."""
    with pytest.raises(ConfigError) as err:
        fa_config.load(write(data))
    msg = str(err.value)
    assert msg.startswith(f"config key {key}:") and "\n" not in msg, msg
    assert "give a path" in msg, "says how to fix it"
