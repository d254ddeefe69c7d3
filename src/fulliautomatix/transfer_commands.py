"""The commands of a transfer (stage 1, :mod:`fulliautomatix.transfer`): rsync on the DAQ, the staging directory.

Built here as argument lists; :mod:`fulliautomatix.transfer` runs them and
decides what their results mean for the run.  ``planning`` shows the rsync
command of a planned transfer (``--dry-run``).
"""

from __future__ import annotations

from . import hosts
from .places import cluster_from_daq, cluster_host, daq_host, locations


def rsync_argv(config: dict, run: str) -> list[str]:
    """The rsync command, run on the DAQ host, pushing the run to the cluster's staging."""
    t = config["transfer"]
    loc = locations(config, run)
    target = cluster_from_daq(config)
    argv = [*t["rsync"]]
    argv += [] if "--partial" in argv else ["--partial"]
    argv += ["--info=progress2", "--no-inc-recursive", f"--chmod=D{t['dir_mode']},F{t['file_mode']}"]
    if t["timeout_seconds"]:
        argv.append(f"--timeout={int(t['timeout_seconds'])}")
    if t["group"]:
        argv.append(f"--chown=:{t['group']}")
    if not target.is_local:
        argv += ["-e", hosts.rsync_shell(target)]
    return [*argv, "--", loc["source"] + "/", target.path(loc["staging"]) + "/"]


# Makes <scratch>/raw/.incoming with the configured group and modes (only the
# directories it creates), and puts back into staging a copy that a killed
# tick renamed into place before the runs DB heard of it, so the same
# verification decides about it.
PREPARE = r"""
umask "$1"; group=$2; mode=$3; scratch=$4; final=$5; staging=$6
mk() {
  [ -d "$1" ] && return 0
  mkdir -- "$1" 2>/dev/null || { [ -d "$1" ] && return 0; mkdir -- "$1"; return 1; }   # a concurrent transfer may win
  if [ -n "$group" ]; then chgrp -- "$group" "$1" || return 1; fi
  chmod -- "$mode" "$1"
}
mkdir -p -- "$(dirname -- "$scratch")" && mk "$scratch" && mk "$scratch/raw" && mk "$scratch/raw/.incoming" || exit 1
if [ -d "$final" ]; then
  rm -rf -- "$staging" && mv -T -- "$final" "$staging" || exit 1
fi
"""


def umask_for(dir_mode: str, file_mode: str) -> str:
    """The umask that lets nothing more than the configured modes through."""
    allowed = (int(dir_mode, 8) | int(file_mode, 8)) & 0o777
    return f"{0o777 & ~allowed:03o}"


def prepare_argv(config: dict, run: str) -> list[str]:
    t = config["transfer"]
    loc = locations(config, run)
    return [
        "bash",
        "-c",
        PREPARE,
        "fa-prepare",
        umask_for(t["dir_mode"], t["file_mode"]),
        t["group"],
        t["dir_mode"],
        loc["scratch"],
        loc["final"],
        loc["staging"],
    ]


# rsync on the DAQ, from inside the run's directory once CONFINE accepted it ("$1"/"$2"):
# a run that is a symbolic link, leaves daq.raw_dir, or holds a link, fifo, socket or
# device is refused before anything is read.  rsync's source is "./" (the directory entered).
CONFINED_RSYNC = (
    hosts.CONFINE
    + r"""
confine "$1" "$2" || exit
shift 2
exec "$@"
"""
)


def confined_rsync_argv(config: dict, run: str) -> list[str]:
    """rsync_argv, run from inside the run's DAQ directory after the confinement check."""
    argv = rsync_argv(config, run)
    argv[-2] = "./"
    return ["bash", "-c", CONFINED_RSYNC, "fa-rsync", config["daq"]["raw_dir"], run, *argv]


def rsync_failure(config: dict, run: str, returncode: int, stderr: str) -> str:
    """What a failed rsync means, in words: a missing DAQ directory, a full disk, else rsync's own cause."""
    loc = locations(config, run)
    why = hosts.cause(stderr)
    if returncode == 3 and f"{loc['source']}: no such directory" in stderr:
        return f"the DAQ has no directory {loc['source']} on {daq_host(config).name}"
    if "No space left on device" in why or "Disk quota exceeded" in why:
        full = "No space left on device" if "No space" in why else "Disk quota exceeded"
        return (
            f"{full} on the cluster's scratch {loc['scratch']} ({cluster_host(config).name}), copying into "
            f"{loc['staging']}; free space there, the next tick resumes the copy (rsync: {why})"
        )
    return f"rsync exited with {returncode}: {why}"
