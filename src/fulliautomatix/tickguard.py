"""The tick lock, and the guard that holds it for as long as a Snakemake runs.

One tick at a time works on a work directory: ``state/tick.lock`` is an
``flock``, so a process killed with -9 never leaves it stale.  Parsing the
Snakefile never takes it (the parse only reads); the first job of a tick
does, through :func:`begin`:

* under the cron wrapper, the wrapper already holds the lock (it names itself
  in ``FULLIAUTOMATIX_TICK_LOCK``) and has started the runs DB: nothing to do;
* under ``snakemake`` run by hand, the job takes the lock and hands it to a
  small guard process (``python -m fulliautomatix.tickguard``) that keeps it
  until that Snakemake exits, then ends the tick's ssh master connections
  (:func:`hosts.close_masters`); an embedded runs DB the job starts for it is
  stopped by the server's own watcher once that Snakemake and every process
  using the server are gone (:mod:`fulliautomatix.embedded`), so nothing is
  left running after the tick (under the wrapper, the wrapper closes the
  ssh masters).

Per-run claims (:mod:`fulliautomatix.claims`) keep a later tick off runs
that jobs of an earlier, killed tick still work on.

The Snakefile's main process names itself in ``FULLIAUTOMATIX_SNAKEMAKE``;
every local job inherits it, so jobs of one Snakemake share one guard.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

LOCK_ENV = "FULLIAUTOMATIX_TICK_LOCK"  # "<lock path>:<pid of the wrapper holding it>"
SNAKEMAKE_ENV = "FULLIAUTOMATIX_SNAKEMAKE"  # pid of the Snakemake main process of this tick


def name_this_snakemake() -> None:
    """Called by the Snakefile's main process (an environment change only, nothing written).

    Its local jobs inherit its pid (SNAKEMAKE_ENV), so the jobs of one
    Snakemake share one guard; and the profiles' submit/status/cancel commands
    (``fulliautomatix-scheduler``, installed beside this Python) are found even
    when Snakemake was started by its full path, with its bin/ not on PATH.
    """
    os.environ.setdefault(SNAKEMAKE_ENV, str(os.getpid()))
    os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])


class TickBusy(Exception):
    """Another tick holds the lock."""


def lock_path(state_dir: Path) -> Path:
    return Path(state_dir) / "tick.lock"


def _holder(path: Path) -> str:
    try:
        return path.read_text().split()[0]
    except (OSError, IndexError):
        return "unknown"


def busy_message(holder: str) -> str:
    return f"another tick is running (pid {holder}); this one does nothing"


def _is_ancestor(pid: int) -> bool:
    """Whether pid is this process or one of its ancestors."""
    import psutil

    try:
        proc = psutil.Process()
        while proc is not None:
            if proc.pid == pid:
                return True
            proc = proc.parent()
    except psutil.Error:
        return False
    return False


def held_by_wrapper(state_dir: Path) -> bool:
    """Whether the cron wrapper that started this process tree holds the lock."""
    value = os.environ.get(LOCK_ENV, "")
    path, _, pid = value.rpartition(":")
    return path == str(lock_path(state_dir)) and pid.isdigit() and _is_ancestor(int(pid))


_wrapper_lock = None  # the wrapper's open lock file, held until it exits


def acquire_for_wrapper(state_dir: Path) -> None:
    """The cron wrapper's lock, held until it exits; raise TickBusy when another tick has it."""
    global _wrapper_lock
    fh = _open_locked(lock_path(state_dir))
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    _wrapper_lock = fh


def wrapper_fds() -> tuple[int, ...]:
    """The wrapper's lock, for its Snakemake to inherit: the lock outlives a killed wrapper."""
    return (_wrapper_lock.fileno(),) if _wrapper_lock else ()


def _open_locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise TickBusy(busy_message(_holder(path))) from None
    fh.seek(0)
    fh.truncate()
    return fh


@contextmanager
def _setup_lock(state_dir: Path):
    """Serializes the jobs of one Snakemake that start the guard at the same moment."""
    path = Path(state_dir) / "tick.setup.lock"
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def begin(config: dict) -> str | None:
    """Make sure this job's tick holds the lock and has its runs DB; return the DB's URI.

    Raises TickBusy when another tick holds the lock.  Returns None when the
    config's URI is to be used as it is (not the embedded server).
    """
    from . import config as fa_config
    from . import embedded, hosts

    state = fa_config.state_dir(config)
    state.mkdir(parents=True, exist_ok=True)
    embedded_db = config["runs_db"]["uri"] == "embedded"
    snakemake_pid = os.environ.get(SNAKEMAKE_ENV, "")
    if held_by_wrapper(state) or not snakemake_pid.isdigit():
        # The wrapper's tick, or a batch job on a compute node (the host's tick holds the lock).
        return embedded.running_uri(state) if embedded_db else None
    with _setup_lock(state):
        path = lock_path(state)
        words = path.read_text().split() if path.exists() else []
        if words[1:2] == [snakemake_pid] and _locked(path):
            return embedded.running_uri(state) if embedded_db else None
        fh = _open_locked(path)
        try:
            # A server started here is stopped by its watcher once this Snakemake is gone and unused.
            uri = embedded.ensure(state, owner=int(snakemake_pid))[0] if embedded_db else None
            argv = [
                sys.executable,
                "-m",
                "fulliautomatix.tickguard",
                "--watch",
                snakemake_pid,
                "--state",
                str(state),
                "--fd",
                str(fh.fileno()),
            ]
            controls = hosts.control_dir(config)
            if controls is not None:
                argv += ["--ssh-controls", str(controls)]
            guard = subprocess.Popen(
                argv,
                pass_fds=(fh.fileno(),),
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            fh.write(f"{guard.pid} {snakemake_pid}\n")
            fh.flush()
        finally:
            fh.close()  # the guard holds the lock from here on
        return uri


def _locked(path: Path) -> bool:
    """Whether some process holds the flock on path."""
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


def guard(watch: int, poll: float = 0.5, controls: Path | None = None) -> None:
    """Hold the inherited lock until process `watch` exits; then end the tick's ssh master
    connections (sockets in `controls`; the embedded server has its own watcher)."""
    import psutil

    try:
        watched = psutil.Process(watch)
        while watched.is_running() and watched.status() != psutil.STATUS_ZOMBIE:
            time.sleep(poll)
    except psutil.Error:
        pass
    if controls:
        from . import hosts

        hosts.close_masters(controls)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fulliautomatix.tickguard",
        description="hold a tick's lock while its Snakemake runs (started by jobs)",
    )
    ap.add_argument("--watch", type=int, required=True, help="pid of the tick's Snakemake")
    ap.add_argument("--state", type=Path, required=True, help="the work dir's state/ directory")
    ap.add_argument("--fd", type=int, required=True, help="the inherited, locked tick.lock")
    ap.add_argument("--ssh-controls", type=Path, help="the tick's ssh control sockets, closed at the end")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    guard(args.watch, controls=args.ssh_controls)
    os.close(args.fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
