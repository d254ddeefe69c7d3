"""Running commands on the DAQ, the cluster or here, always as argv lists.

A host is "local" or an ssh destination with its user, port and ssh argv
(from the config: ``daq`` and ``clusters.<name>``).  A remote command is the
same argv, quoted word by word with :func:`shlex.quote` into the one command
string ssh hands to the remote shell, so a value can never be read as shell
syntax there.  Every run name is checked against the configured pattern
before it reaches any command (:func:`check_run_name`).

Long commands (rsync, checksums) run under a *hang-up guard* on the far side:
it stops the command when its standard input reaches end-of-file, which
happens when the ssh client, or the process that started it, dies.  Without
it a killed tick would leave rsync running on the DAQ (no pty, so no SIGHUP).

Commands that read a run's data or delete a copy first *confine* themselves
(:data:`CONFINE`, on the far side, in the same command): the directory must be
a real directory, not a symbolic link, whose physical path is inside its
configured root, and hold nothing but regular files and directories.  A
refusal exits with :data:`UNSAFE_EXIT` and one ``fa-unsafe:`` line, raised
here as :class:`Unsafe`.  Deletion never follows a link (:func:`remove_tree`,
:func:`remove_files`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Checksum tools by algorithm name; all print "<hex>  <path>" lines.
CHECKSUM_TOOLS = {"xxh128": "xxh128sum", "blake2b": "b2sum", "sha256": "sha256sum"}
# What transfer.checksum = auto tries, best first (sha256sum is in coreutils).
AUTO_CHECKSUMS = ("xxh128", "sha256")

DEFAULT_SSH = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30")

# Runs "$@" and stops it when stdin reaches EOF (the controlling side is gone).
# Prints "fa-guard-start <epoch>" on stderr first: the far side's clock when
# the command started.  Nothing polls: a watcher blocks reading stdin and
# stops the command at EOF, while the guard waits for the command itself
# (`wait PID`, never `wait -n`, which bash 5.2 can miss for a job that ended
# early), so the guard returns the moment the command ends.
GUARD = r"""
t=${EPOCHREALTIME:-}
printf 'fa-guard-start %s\n' "${t:-$(date +%s.%N)}" >&2
exec 3<&0   # an asynchronous command's stdin is /dev/null unless given explicitly
"$@" </dev/null 3<&- &
job=$!
{ while IFS= read -r _; do :; done; kill -TERM "$job" 2>/dev/null; exit 7; } <&3 3<&- &
watcher=$!
exec 3<&-
wait "$job"
st=$?
kill "$watcher" 2>/dev/null
wait "$watcher"
if [ "$?" -eq 7 ]; then
  echo "fa-guard: the controlling side went away; stopped $1" >&2
  exit 129
fi
exit "$st"
"""


# The exit status of a command that refused a path (see CONFINE); its stderr holds one
# "fa-unsafe: <kind> <what>" line.
UNSAFE_EXIT = 97

# Shell functions prepended to the commands that read run data or delete it.
#   confine ROOT NAME   enter ROOT/NAME (cd -P) if it is a real directory, not a symbolic link, whose
#                       physical path is ROOT's plus /NAME, holding only regular files and directories
#   only_regular LABEL  the current directory holds only regular files and directories (LABEL names it)
# A refusal prints "fa-unsafe: <kind> <what>" on stderr and returns 97 (UNSAFE_EXIT); other failures 3.
CONFINE = r'''
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
'''

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


def short(argv: list[str]) -> str:
    """A command on one short line: an inline script by its name (``bash -c SCRIPT NAME ARGS``), even in the
    one command string ssh runs remotely."""
    words = list(argv)
    if words and "\n" in words[-1]:
        try:
            words = words[:-1] + shlex.split(words[-1])
        except ValueError:
            pass
    for i in range(len(words) - 2):
        if words[i:i + 2] == ["bash", "-c"]:
            return shlex.join(words[:i] + words[i + 3:i + 6]) + ("..." if len(words) > i + 6 else "")
    return shlex.join(words[:3]) + "..."


class CommandFailed(RuntimeError):
    def __init__(self, argv: list[str], returncode: int, stderr: str):
        self.argv, self.returncode, self.stderr = argv, returncode, stderr
        super().__init__(f"{short(argv)} exited with {returncode}: {cause(stderr)}")


class Unsafe(CommandFailed):
    """A confined command refused a path: a symbolic link, a special file, or a path leaving its root.

    ``what`` names the offending path (e.g. "/daq/261201_0002 is a symbolic
    link (to /tmp/elsewhere/victim)"), ``advice`` what to do about it.
    """

    def __init__(self, argv: list[str], returncode: int, stderr: str):
        super().__init__(argv, returncode, stderr)
        line = next(ln for ln in stderr.splitlines() if ln.startswith("fa-unsafe: "))
        self.kind, _, self.what = line[len("fa-unsafe: "):].partition(" ")

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


@dataclass
class Result:
    """What a command did: exit status, output, and (guarded) its start time."""

    returncode: int
    stdout: str
    stderr: str
    started: float | None = None  # the far side's clock (epoch seconds) when it started


@dataclass(frozen=True)
class Host:
    """Where a command runs: 'local', or an ssh destination with options."""

    dest: str = "local"
    ssh: tuple[str, ...] = field(default=DEFAULT_SSH)
    user: str = ""
    port: int | None = None
    control: str = ""  # the tick's ssh control socket for this host ("": a connection per command)

    @classmethod
    def from_config(cls, section: dict, controls: Path | None = None) -> "Host":
        """A host from a config section with host, user, port and ssh keys.

        `controls`: the tick's directory of ssh control sockets
        (:func:`control_dir`); commands then share one connection per host.
        """
        host = cls(section.get("host") or "local", tuple(section.get("ssh") or DEFAULT_SSH),
                   section.get("user") or "", section.get("port"))
        if controls is None or host.is_local or not _private_dir(Path(controls)):
            return host
        return cls(host.dest, host.ssh, host.user, host.port, str(Path(controls) / socket_name(host)))

    @property
    def is_local(self) -> bool:
        return self.dest == "local"

    @property
    def name(self) -> str:
        return self.dest if self.is_local else (f"{self.user}@{self.dest}" if self.user else self.dest)

    def ssh_argv(self) -> list[str]:
        """ssh with this host's options, up to (not including) the destination."""
        argv = list(self.ssh)
        if self.port:
            argv += ["-p", str(int(self.port))]
        if self.user:
            argv += ["-l", self.user]
        if self.control:
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self.control.replace('%', '%%')}",
                     "-o", f"ControlPersist={CONTROL_PERSIST}"]
        return argv

    def argv(self, argv: list[str]) -> list[str]:
        """The argv that runs `argv` on this host."""
        if self.is_local:
            return list(argv)
        return [*self.ssh_argv(), "--", self.dest, shlex.join(argv)]

    def shown(self, argv: list[str]) -> str:
        """The command as the job log shows it: an inline script by its name.

        ``bash -c SCRIPT NAME ARGS`` (or ``python3 -c SCRIPT NAME ARGS``)
        appears as ``NAME ARGS``; the scripts are constants in the package,
        named by NAME.
        """
        if len(argv) > 3 and argv[1] == "-c":
            argv = argv[3:]
        return shlex.join(self.argv(argv))

    def path(self, path: str) -> str:
        """A path on this host as rsync names it (host:path when remote)."""
        return path if self.is_local else f"{self.name}:{path}"

    def run(self, argv: list[str], *, check: bool = True, timeout: float | None = None,
            input: str | None = None, log=None) -> subprocess.CompletedProcess:
        """Run a short command; output captured."""
        full = self.argv(argv)
        if log is not None:
            log.write(f"$ {self.shown(argv)}\n")
            log.flush()
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if proc.returncode == UNSAFE_EXIT or (check and proc.returncode != 0):
            err = failure(full, proc.returncode, proc.stderr)
            if check or isinstance(err, Unsafe):  # a refusal is never ignored
                raise err
        return proc

    def run_guarded(self, argv: list[str], *, check: bool = True, log=None, on_stdout=None) -> Result:
        """Run a long command under the hang-up guard.

        Standard input stays open (and empty) until the command ends, so the
        guard on the far side sees EOF only when this process or its ssh
        client dies.  stdout is passed to on_stdout in chunks as it arrives
        (e.g. rsync progress); otherwise it is collected.
        """
        full = self.argv(["bash", "-c", GUARD, "fa-guard", *argv])
        if log is not None:
            log.write(f"$ {self.shown(argv)}\n")
            log.flush()
        proc = subprocess.Popen(full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out: list[bytes] = []
        err: list[bytes] = []

        def drain_stderr():
            for chunk in iter(lambda: proc.stderr.read1(65536), b""):
                err.append(chunk)

        t = threading.Thread(target=drain_stderr, daemon=True)
        t.start()
        try:
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                if on_stdout is not None:
                    on_stdout(chunk.decode(errors="replace"))
                else:
                    out.append(chunk)
            rc = proc.wait()
            t.join()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdin.close()
        stderr = b"".join(err).decode(errors="replace")
        started = None
        kept = []
        for line in stderr.splitlines(keepends=True):
            if line.startswith("fa-guard-start ") and started is None:
                try:
                    started = float(line.split()[1].replace(",", "."))
                except (IndexError, ValueError):
                    pass
            else:
                kept.append(line)
        result = Result(rc, b"".join(out).decode(errors="replace"), "".join(kept), started)
        if rc == UNSAFE_EXIT or (check and rc != 0):
            err = failure(full, rc, result.stderr)
            if check or isinstance(err, Unsafe):  # a refusal is never ignored
                raise err
        return result


def rsync_shell(host: Host) -> str:
    """rsync's -e value reaching `host` (its ssh argv, port and user)."""
    return shlex.join(host.ssh_argv())


# -- one ssh connection per host per tick -----------------------------------------
#
# Every command of a tick to a remote host goes through one OpenSSH master
# connection (ControlMaster=auto: the first command opens it, the others ride
# on it; ControlPersist keeps it after that command ends).  The sockets are in
# a directory of their own per user under work_dir (mode 0700, and ssh's master
# accepts only its own user), named by a hash of the host's ssh settings; the
# tick closes them all at its end (close_masters: `ssh -O exit`).  A master
# left by a tick that was killed exits by itself after CONTROL_PERSIST idle
# seconds.

CONTROL_PERSIST = 300  # seconds an idle master outlives its last command (a tick that died)
# ssh binds "<ControlPath>.<16 random characters>" first, and a unix socket's path holds 107 bytes.
SOCKET_PATH_MAX = 88


def socket_name(host: Host) -> str:
    """A short name for the host's control socket: a hash of everything that picks the connection."""
    key = repr((os.getuid(), host.dest, host.user, host.port, host.ssh))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _private_dir(path: Path) -> bool:
    """Make `path` (mode 0700) if missing; True if it is a real directory of ours that only we can use."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def control_dir(config: dict) -> Path | None:
    """This user's directory of the tick's ssh control sockets; None: a connection per command.

    ``<work_dir>/state/ssh-<uid>``; when that path is too long for a unix
    socket, ``<tmp>/fa-ssh-<uid>-<hash of work_dir>`` instead.  None when
    ``ssh_multiplex`` is off.  The directory is made (mode 0700) only when a
    remote host is to use it (:meth:`Host.from_config`), and not used unless
    it is a directory of this user's that nobody else may enter.
    """
    if not config.get("ssh_multiplex", True):
        return None
    uid = os.getuid()
    work = Path(config["work_dir"]).absolute()
    path = work / "state" / f"ssh-{uid}"
    if len(str(path)) + 17 > SOCKET_PATH_MAX or re.search(r"[\s\"'\\]", str(path)):
        digest = hashlib.sha256(str(work).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"fa-ssh-{uid}-{digest}"
    return path


def close_masters(directory: Path | None, timeout: float = 10) -> list[str]:
    """End every master connection whose socket is in `directory` (`ssh -O exit`), then remove the
    directory if it is empty; the names of the sockets closed."""
    closed = []
    try:
        entries = list(os.scandir(directory)) if directory else []
    except OSError:
        return closed
    for entry in entries:
        try:
            if not stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                continue
            subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={entry.path.replace('%', '%%')}",
                            "-O", "exit", "fa-tick"], capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.unlink(entry.path)  # a master that had died leaves its socket behind
        except FileNotFoundError:
            pass
        except OSError:
            continue
        closed.append(entry.name)
    if directory:
        try:
            os.rmdir(directory)  # the next tick makes it again; a temp-dir fallback leaves nothing behind
        except OSError:
            pass
    return closed


# -- per-file checksums --------------------------------------------------------

# Lists every regular file under "$1": first "A <algorithm>", then one
# "<hex>  ./<path>" line per file from the first available checksum tool of
# the "<algorithm>:<tool>" arguments, then "S <size> <mtime> <path>" lines.
# The sizes and mtimes are listed *after* hashing, so a file changed while it
# was hashed shows a newer mtime.
MANIFEST_BODY = r"""
for pair; do
  if command -v "${pair#*:}" >/dev/null 2>&1; then
    echo "A ${pair%%:*}"
    find . -type f -print0 | xargs -0 -r -n 8 -P 4 "${pair#*:}" -- || exit 4
    find . -type f -printf 'S %s %T@ %P\n' || exit 4
    exit 0
  fi
done
echo "none of these checksum tools is installed on $(hostname): $*" >&2
exit 5
"""
MANIFEST = 'cd -- "$1" || exit 3\nshift\n' + MANIFEST_BODY
# The same for "$1/$2" confined to the root "$1" (a run's DAQ copy): refused unless it is a
# real directory inside it holding only regular files and directories.
CONFINED_MANIFEST = CONFINE + 'confine "$1" "$2" || exit\nshift 2\n' + MANIFEST_BODY


@dataclass
class Manifest:
    """Per-file sizes and checksums of a directory, as computed on its host."""

    algorithm: str
    files: list[dict]  # [{path, size, hash}], sorted by path
    newest_mtime: float | None  # newest file modification time (that host's clock)
    started: float | None = None  # that host's clock when the listing started


def split_confined(directory: str, root: str) -> list[str]:
    """[root, name] of a directory that must be the entry `name` of `root`."""
    parent, _, name = directory.rstrip("/").rpartition("/")
    if not name or name in (".", "..") or parent.rstrip("/") != root.rstrip("/"):
        raise ValueError(f"{directory} is not a directory directly inside {root}")
    return [root, name]


def manifest_argv(directory: str, algorithm: str | list[str] | tuple[str, ...], parallel: int = 4,
                  confined_to: str | None = None) -> list[str]:
    """The command listing every file's checksum, size and mtime.

    `algorithm` is one name or a list in order of preference: the first one
    whose tool is installed on the host is used (and reported).  With
    `confined_to` (a root directory) the directory must be a real directory
    directly inside it, holding nothing but regular files and directories
    (CONFINE), or the command refuses it (exit UNSAFE_EXIT).
    """
    names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
    pairs = [f"{a}:{CHECKSUM_TOOLS[a]}" for a in names]
    script = MANIFEST if confined_to is None else CONFINED_MANIFEST
    script = script if parallel == 4 else script.replace("-P 4", f"-P {int(parallel)}")
    where = [directory] if confined_to is None else split_confined(directory, confined_to)
    return ["bash", "-c", script, "fa-manifest", *where, *pairs]


def parse_listing(text: str) -> Manifest:
    sizes: dict[str, int] = {}
    hashes: dict[str, str] = {}
    algorithm = ""
    newest = None
    for line in text.splitlines():
        if line.startswith("A "):
            algorithm = line[2:].strip()
        elif line.startswith("S "):
            _, size, mtime, path = line.split(" ", 3)
            sizes[path] = int(size)
            newest = float(mtime) if newest is None else max(newest, float(mtime))
        elif line.strip():
            digest, path = line.split(None, 1)
            path = path.strip()
            hashes[path[2:] if path.startswith("./") else path] = digest.lstrip("\\")
    if sizes.keys() != hashes.keys():
        raise ValueError("checksum listing incomplete: " + ", ".join(sorted(sizes.keys() ^ hashes.keys()))[:200])
    files = [{"path": p, "size": sizes[p], "hash": hashes[p]} for p in sorted(sizes)]
    return Manifest(algorithm, files, newest)


def parse_manifest(text: str) -> list[dict]:
    return parse_listing(text).files


def scan(host: Host, directory: str, algorithms, *, log=None, confined_to: str | None = None) -> Manifest:
    """Checksums of a directory computed on its own host (guarded).

    With `confined_to`, see manifest_argv; a refusal raises Unsafe.
    """
    res = host.run_guarded(manifest_argv(directory, algorithms, confined_to=confined_to), log=log)
    try:
        m = parse_listing(res.stdout)
    except ValueError as exc:
        raise CommandFailed(host.argv(["fa-manifest", directory]), 0, str(exc)) from None
    m.started = res.started
    return m


def manifest(host: Host, directory: str, algorithm: str) -> list[dict]:
    """Per-file sizes and checksums of a directory, computed on its host."""
    return parse_manifest(host.run(manifest_argv(directory, algorithm)).stdout)


def compare_manifests(expected: list[dict], actual: list[dict]) -> list[str]:
    """Human-readable differences; empty when the copies match exactly."""
    exp = {f["path"]: f for f in expected}
    act = {f["path"]: f for f in actual}
    problems = [f"missing {p}" for p in sorted(exp.keys() - act.keys())]
    problems += [f"unexpected {p}" for p in sorted(act.keys() - exp.keys())]
    for p in sorted(exp.keys() & act.keys()):
        if exp[p]["size"] != act[p]["size"]:
            problems.append(f"size of {p}: {act[p]['size']} != {exp[p]['size']}")
        elif exp[p]["hash"] != act[p]["hash"]:
            problems.append(f"checksum of {p} differs")
    return problems


def bad_paths(expected: list[dict], actual: list[dict]) -> list[str]:
    """Paths in `actual` that are not byte-identical to `expected` (to delete)."""
    exp = {f["path"]: f for f in expected}
    return [f["path"] for f in actual
            if f["path"] not in exp or (exp[f["path"]]["size"], exp[f["path"]]["hash"]) != (f["size"], f["hash"])]


def elapsed(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


# -- directories with the configured group and mode --------------------------------

# Makes each missing directory of "${@:3}" (its parent must exist, or is made with mkdir -p)
# with the group "$1" (none if empty) and the mode "$2"; directories that exist are left alone.
MAKE_DIRS = r"""
group=$1; mode=$2; shift 2
for d; do
  [ -d "$d" ] && continue
  mkdir -p -- "$(dirname -- "$d")" || exit 1
  mkdir -- "$d" 2>/dev/null || { [ -d "$d" ] && continue; mkdir -- "$d"; exit 1; }   # a concurrent job may win
  if [ -n "$group" ]; then chgrp -- "$group" "$d" || exit 1; fi
  chmod -- "$mode" "$d" || exit 1
done
"""


def make_dirs(host: Host, dirs: list[str], transfer: dict, *, log=None) -> None:
    """Create missing directories on `host` as the transfer creates its own: transfer.group, transfer.dir_mode."""
    host.run(["bash", "-c", MAKE_DIRS, "fa-mkdir", transfer["group"], transfer["dir_mode"], *dirs], log=log)


# Lines naming a cause better than a command's last line (rsync's "error in file IO (code 11)",
# "write error: Broken pipe (32)", tar's "Error is not recoverable").
CAUSES = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Permission denied")


def cause(stderr: str) -> str:
    """The line of a failed command's stderr that names the cause (CAUSES first), else its last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("fa-guard-start ")]
    for known in CAUSES:
        for line in lines:
            if known in line:
                return line
    return lines[-1] if lines else ""


# -- deleting, never through a link ---------------------------------------------

# Deletes "$1/$2" if it is confined (CONFINE; with "$3" = links-ok, links in it may be
# deleted too): rm -rf of the entry by its name in the physical parent, so neither a link
# in it nor one put in its place meanwhile is followed.  Prints REMOVED or ABSENT.
REMOVE_TREE = CONFINE + r"""
if [ "$3" = links-ok ]; then only_regular() { return 0; }; fi
if [ ! -e "$1/$2" ] && [ ! -L "$1/$2" ]; then echo ABSENT; exit 0; fi
confine "$1" "$2" || exit
cd -P .. && rm -rf -- "./$2" || exit 8
echo REMOVED
"""

# Deletes the files "$1/$2", "$1/$3", ... (plain names in the root "$1"), only if every one
# is a regular file or absent, none a link: else nothing is deleted.
REMOVE_FILES = CONFINE + r"""
root=${1%/}; shift
for name; do
  f=$root/$name
  case $name in ''|.|..|*/*) unsafe name "$f is not a file name directly in ${root:-/}"; exit ;; esac
  if [ -L "$f" ]; then unsafe link "$f is a symbolic link (to $(readlink -- "$f"))"; exit; fi
  if [ -e "$f" ] && [ ! -f "$f" ]; then unsafe special "$f is not a regular file"; exit; fi
done
cd -P -- "${root:-/}" || exit 3
rm -f -- "$@"
"""


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
    """Delete the regular files root/<name> on `host` (absent ones are fine); a link refuses them all."""
    if names:
        host.run(["bash", "-c", REMOVE_FILES, "fa-remove-files", root, *names], log=log)
