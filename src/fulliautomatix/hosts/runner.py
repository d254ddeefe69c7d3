"""Running commands on the DAQ, the cluster or here, always as argv lists.

A host is "local" or an ssh destination with its user, port and ssh argv
(from the config: ``daq`` and ``clusters.<name>``).  A remote command is the
same argv, quoted word by word with :func:`shlex.quote` into the one command
string ssh hands to the remote shell, so a value can never be read as shell
syntax there.

Long commands (rsync, checksums) run under a *hang-up guard* on the far side:
it stops the command when its standard input reaches end-of-file, which
happens when the ssh client, or the process that started it, dies.  Without
it a killed tick would leave rsync running on the DAQ (no pty, so no SIGHUP).
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .confine import UNSAFE_EXIT, Unsafe, failure
from .control import CONTROL_PERSIST, private_dir, socket_name

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
        host = cls(
            section.get("host") or "local",
            tuple(section.get("ssh") or DEFAULT_SSH),
            section.get("user") or "",
            section.get("port"),
        )
        if controls is None or host.is_local or not private_dir(Path(controls)):
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
            argv += [
                "-o",
                "ControlMaster=auto",
                "-o",
                f"ControlPath={self.control.replace('%', '%%')}",
                "-o",
                f"ControlPersist={CONTROL_PERSIST}",
            ]
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

    def run(
        self, argv: list[str], *, check: bool = True, timeout: float | None = None, input: str | None = None, log=None
    ) -> subprocess.CompletedProcess:
        """Run a short command; output captured."""
        full = self.argv(argv)
        if log is not None:
            log.write(f"$ {self.shown(argv)}\n")
            log.flush()
        proc = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
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
