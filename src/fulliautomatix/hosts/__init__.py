"""Commands on the DAQ, the cluster or here: where they run, what confines them, what they report.

    runner.py     Host: a command as an argv list, here or over ssh, under the hang-up guard
    control.py    one ssh master connection per host per tick (ControlMaster)
    confine.py    CONFINE and Unsafe: no run data read or deleted through a link or outside its root
    manifests.py  per-file sizes and checksums of a directory, computed on its host, compared
    errors.py     CommandFailed and the stderr line that names a failure's cause

Every name is re-exported here: callers say ``hosts.Host``, ``hosts.scan``, ``hosts.Unsafe``.
"""

from .confine import (
    ADVICE,
    CONFINE,
    REMOVE_FILES,
    REMOVE_TREE,
    UNSAFE_EXIT,
    BadRunName,
    Unsafe,
    check_run_name,
    failure,
    remove_files,
    remove_tree,
    split_confined,
)
from .control import CONTROL_PERSIST, SOCKET_PATH_MAX, close_masters, control_dir, private_dir, socket_name
from .errors import CAUSES, CommandFailed, cause, short
from .manifests import (
    AUTO_CHECKSUMS,
    CHECKSUM_TOOLS,
    CONFINED_MANIFEST,
    MANIFEST,
    MANIFEST_BODY,
    Manifest,
    bad_paths,
    compare_manifests,
    manifest,
    manifest_argv,
    parse_listing,
    parse_manifest,
    scan,
)
from .runner import DEFAULT_SSH, GUARD, MAKE_DIRS, Host, Result, elapsed, make_dirs, rsync_shell

__all__ = [
    "ADVICE",
    "AUTO_CHECKSUMS",
    "CAUSES",
    "CHECKSUM_TOOLS",
    "CONFINE",
    "CONFINED_MANIFEST",
    "CONTROL_PERSIST",
    "DEFAULT_SSH",
    "GUARD",
    "MAKE_DIRS",
    "MANIFEST",
    "MANIFEST_BODY",
    "REMOVE_FILES",
    "REMOVE_TREE",
    "SOCKET_PATH_MAX",
    "UNSAFE_EXIT",
    "BadRunName",
    "CommandFailed",
    "Host",
    "Manifest",
    "Result",
    "Unsafe",
    "bad_paths",
    "cause",
    "check_run_name",
    "close_masters",
    "compare_manifests",
    "control_dir",
    "elapsed",
    "failure",
    "make_dirs",
    "manifest",
    "manifest_argv",
    "parse_listing",
    "parse_manifest",
    "private_dir",
    "remove_files",
    "remove_tree",
    "rsync_shell",
    "scan",
    "short",
    "socket_name",
    "split_confined",
]
