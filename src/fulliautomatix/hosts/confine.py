"""Confinement: commands that read a run's data or delete a copy first confine themselves.

:data:`CONFINE` runs on the far side, in the same command: the directory must
be a real directory, not a symbolic link, whose physical path is inside its
configured root, and hold nothing but regular files and directories.  A
refusal exits with :data:`UNSAFE_EXIT` and one ``fa-unsafe:`` line, raised
here as :class:`Unsafe`.  Deletion never follows a link (:func:`remove_tree`,
:func:`remove_files`).  Every run name is checked against the configured
pattern before it reaches any command (:func:`check_run_name`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import CommandFailed

if TYPE_CHECKING:
    from .runner import Host


# The exit status of a command that refused a path (see CONFINE); its stderr holds one
# "fa-unsafe: <kind> <what>" line.
UNSAFE_EXIT = 97

# Shell functions prepended to the commands that read run data or delete it.
#   confine ROOT NAME   enter ROOT/NAME (cd -P) if it is a real directory, not a symbolic link, whose
#                       physical path is ROOT's plus /NAME, holding only regular files and directories
#   only_regular LABEL  the current directory holds only regular files and directories (LABEL names it)
# A refusal prints "fa-unsafe: <kind> <what>" on stderr and returns 97 (UNSAFE_EXIT); other failures 3.
CONFINE = r"""
unsafe() { local kind=$1; shift; printf 'fa-unsafe: %s %s\n' "$kind" "$*" >&2; return 97; }
only_regular() {
  local odd
  odd=$(find . -mindepth 1 -name "*"$'\n'"*" -printf '%P' -quit) ||
    { echo "cannot list everything in $1" >&2; return 3; }
  if [ -n "$odd" ]; then unsafe newline "$1/$(printf %q "$odd") has a line break in its name"; return; fi
  odd=$(find . -mindepth 1 ! -type f ! -type d -printf '%y/%P\n' -quit) ||
    { echo "cannot list everything in $1" >&2; return 3; }
  [ -z "$odd" ] && return 0
  local p=${odd:2}
  case ${odd:0:1} in
    l) unsafe link "$1/$p is a symbolic link (to $(readlink -- "$p"))" ;;
    p) unsafe special "$1/$p is a fifo" ;;
    s) unsafe special "$1/$p is a socket" ;;
    b|c) unsafe special "$1/$p is a device file" ;;
    *) unsafe special "$1/$p is not a regular file" ;;
  esac
}
confine() {
  local root=${1%/} name=$2 top here
  local dir=$root/$name
  if [ -L "$dir" ]; then unsafe dirlink "$dir is a symbolic link (to $(readlink -- "$dir"))"; return; fi
  [ -e "$dir" ] || { echo "$dir: no such directory" >&2; return 3; }
  [ -d "$dir" ] || { unsafe notdir "$dir is not a directory"; return; }
  top=$(cd -P -- "${root:-/}" && pwd -P) && cd -P -- "$dir" && here=$(pwd -P) || return 3
  [ "$here" = "${top%/}/$name" ] || { unsafe outside "$dir resolves to $here, outside ${root:-/}"; return; }
  only_regular "$dir"
}
"""

# What to do about each kind of refusal (Unsafe.kind), for the operator's one line.
ADVICE = {
    "dirlink": "replace the link by the real directory",
    "notdir": "replace it by the real directory",
    "outside": "move the real directory into place",
    "link": "replace the link by the file it points to, or remove it",
    "special": "remove it or move it out of the directory",
    "name": "fix the recorded path",
    "newline": "rename it without the line break",
}


class BadRunName(ValueError):
    pass


class Unsafe(CommandFailed):
    """A confined command refused a path: a symbolic link, a special file, or a path leaving its root.

    ``what`` names the offending path (e.g. "/daq/261201_0002 is a symbolic
    link (to /tmp/elsewhere/victim)"), ``advice`` what to do about it.
    """

    def __init__(self, argv: list[str], returncode: int, stderr: str):
        super().__init__(argv, returncode, stderr)
        line = next(ln for ln in stderr.splitlines() if ln.startswith("fa-unsafe: "))
        self.kind, _, self.what = line[len("fa-unsafe: ") :].partition(" ")

    @property
    def advice(self) -> str:
        return ADVICE.get(self.kind, "fix it")

    def __str__(self) -> str:
        return f"refused: {self.what}"


def failure(argv: list[str], returncode: int, stderr: str) -> CommandFailed:
    """The exception for a failed command: Unsafe when it refused a path."""
    if returncode == UNSAFE_EXIT and any(ln.startswith("fa-unsafe: ") for ln in stderr.splitlines()):
        return Unsafe(argv, returncode, stderr)
    return CommandFailed(argv, returncode, stderr)


def check_run_name(name: str, pattern: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(pattern, name):
        raise BadRunName(f"run name {name!r} does not match the run name pattern {pattern}")
    return name


def split_confined(directory: str, root: str) -> list[str]:
    """[root, name] of a directory that must be the entry `name` of `root`."""
    parent, _, name = directory.rstrip("/").rpartition("/")
    if not name or name in (".", "..") or parent.rstrip("/") != root.rstrip("/"):
        raise ValueError(f"{directory} is not a directory directly inside {root}")
    return [root, name]


# -- deleting, never through a link ---------------------------------------------

# Deletes "$1/$2" if it is confined (CONFINE; with "$3" = links-ok, links in it may be
# deleted too): rm -rf of the entry by its name in the physical parent, so neither a link
# in it nor one put in its place meanwhile is followed.  Prints REMOVED or ABSENT.
REMOVE_TREE = (
    CONFINE
    + r"""
if [ "$3" = links-ok ]; then only_regular() { return 0; }; fi
if [ ! -e "$1/$2" ] && [ ! -L "$1/$2" ]; then echo ABSENT; exit 0; fi
confine "$1" "$2" || exit
cd -P .. && rm -rf -- "./$2" || exit 8
echo REMOVED
"""
)

# Deletes the files "$1/$2", "$1/$3", ... (plain names in the root "$1"), only if every one
# is a regular file or absent, none a link: else nothing is deleted.
REMOVE_FILES = (
    CONFINE
    + r"""
root=${1%/}; shift
for name; do
  f=$root/$name
  case $name in ''|.|..|*/*) unsafe name "$f is not a file name directly in ${root:-/}"; exit ;; esac
  if [ -L "$f" ]; then unsafe link "$f is a symbolic link (to $(readlink -- "$f"))"; exit; fi
  if [ -e "$f" ] && [ ! -f "$f" ]; then unsafe special "$f is not a regular file"; exit; fi
done
if [ ! -e "${root:-/}" ] && [ ! -L "${root:-/}" ]; then exit 0; fi  # no directory: no file to remove
cd -P -- "${root:-/}" || exit 3
rm -f -- "$@"
"""
)


def remove_tree(host: Host, root: str, name: str, *, links_ok: bool = False, log=None) -> bool:
    """Delete the directory root/name on `host`, never following a link; False if it was absent.

    It must be a real directory whose physical path is inside `root`, holding
    only regular files and directories (with links_ok, links in it are
    deleted as links); otherwise Unsafe is raised and nothing is deleted.
    """
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{name!r} is not a name directly in {root}")
    argv = ["bash", "-c", REMOVE_TREE, "fa-remove", root, name, "links-ok" if links_ok else ""]
    return "REMOVED" in host.run(argv, log=log).stdout


def remove_files(host: Host, root: str, names: list[str], *, log=None) -> None:
    """Delete the regular files root/<name> on `host` (absent ones, or an absent root, are fine); a link
    refuses them all."""
    if names:
        host.run(["bash", "-c", REMOVE_FILES, "fa-remove-files", root, *names], log=log)
