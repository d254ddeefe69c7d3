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
"""

from __future__ import annotations

import re
import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field

# Checksum tools by algorithm name; all print "<hex>  <path>" lines.
CHECKSUM_TOOLS = {"xxh128": "xxh128sum", "blake2b": "b2sum", "sha256": "sha256sum"}
# What transfer.checksum = auto tries, best first (sha256sum is in coreutils).
AUTO_CHECKSUMS = ("xxh128", "sha256")

DEFAULT_SSH = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30")

# Runs "$@" and stops it when stdin reaches EOF (the controlling side is gone).
# Prints "fa-guard-start <epoch>" on stderr first: the far side's clock when
# the command started.  It polls (read -t on stdin, no fork) rather than
# using `wait -n`: bash 5.2's wait -n can miss a job that ended before it was
# called and then wait forever (seen within a dozen fast local commands).
GUARD = r"""
printf 'fa-guard-start %s\n' "$(date +%s.%N)" >&2
"$@" </dev/null &
job=$!
t=0.002
while kill -0 "$job" 2>/dev/null; do
  IFS= read -r -t "$t" _
  st=$?
  case $t in 0.002) t=0.01 ;; *) t=0.02 ;; esac   # a builtin read every 20 ms: cheap, and adds little to any command
  if [ "$st" -ne 0 ] && [ "$st" -le 128 ]; then
    if kill -0 "$job" 2>/dev/null; then
      kill -TERM "$job" 2>/dev/null
      wait "$job"
      echo "fa-guard: the controlling side went away; stopped $1" >&2
      exit 129
    fi
    break
  fi
done
wait "$job"
"""


class BadRunName(ValueError):
    pass


class CommandFailed(RuntimeError):
    def __init__(self, argv: list[str], returncode: int, stderr: str):
        self.argv, self.returncode, self.stderr = argv, returncode, stderr
        tail = [ln for ln in stderr.strip().splitlines() if not ln.startswith("fa-guard-start ")][-1:] or [""]
        super().__init__(f"{shlex.join(argv[:3])}... exited with {returncode}: {tail[0]}")


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

    @classmethod
    def from_config(cls, section: dict) -> "Host":
        """A host from a config section with host, user, port and ssh keys."""
        return cls(section.get("host") or "local", tuple(section.get("ssh") or DEFAULT_SSH),
                   section.get("user") or "", section.get("port"))

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
        return argv

    def argv(self, argv: list[str]) -> list[str]:
        """The argv that runs `argv` on this host."""
        if self.is_local:
            return list(argv)
        return [*self.ssh_argv(), "--", self.dest, shlex.join(argv)]

    def shown(self, argv: list[str]) -> str:
        """The command as the job log shows it: an inline script by its name.

        ``bash -c SCRIPT NAME ARGS`` appears as ``NAME ARGS``; the scripts are
        constants in the package, named by NAME.
        """
        if len(argv) > 3 and argv[:2] == ["bash", "-c"]:
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
        if check and proc.returncode != 0:
            raise CommandFailed(full, proc.returncode, proc.stderr)
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
                    started = float(line.split()[1])
                except (IndexError, ValueError):
                    pass
            else:
                kept.append(line)
        result = Result(rc, b"".join(out).decode(errors="replace"), "".join(kept), started)
        if check and rc != 0:
            raise CommandFailed(full, rc, result.stderr)
        return result


def rsync_shell(host: Host) -> str:
    """rsync's -e value reaching `host` (its ssh argv, port and user)."""
    return shlex.join(host.ssh_argv())


# -- per-file checksums --------------------------------------------------------

# Lists every regular file under "$1": first "A <algorithm>", then one
# "<hex>  ./<path>" line per file from the first available checksum tool of
# the "<algorithm>:<tool>" arguments, then "S <size> <mtime> <path>" lines.
# The sizes and mtimes are listed *after* hashing, so a file changed while it
# was hashed shows a newer mtime.
MANIFEST = r"""
cd -- "$1" || exit 3
shift
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


@dataclass
class Manifest:
    """Per-file sizes and checksums of a directory, as computed on its host."""

    algorithm: str
    files: list[dict]  # [{path, size, hash}], sorted by path
    newest_mtime: float | None  # newest file modification time (that host's clock)
    started: float | None = None  # that host's clock when the listing started


def manifest_argv(directory: str, algorithm: str | list[str] | tuple[str, ...], parallel: int = 4) -> list[str]:
    """The command listing every file's checksum, size and mtime.

    `algorithm` is one name or a list in order of preference: the first one
    whose tool is installed on the host is used (and reported).
    """
    names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
    pairs = [f"{a}:{CHECKSUM_TOOLS[a]}" for a in names]
    script = MANIFEST if parallel == 4 else MANIFEST.replace("-P 4", f"-P {int(parallel)}")
    return ["bash", "-c", script, "fa-manifest", directory, *pairs]


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


def scan(host: Host, directory: str, algorithms, *, log=None) -> Manifest:
    """Checksums of a directory computed on its own host (guarded)."""
    res = host.run_guarded(manifest_argv(directory, algorithms), log=log)
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
