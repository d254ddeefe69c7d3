"""Per-run claims: no process of a later tick works on a run that one of an earlier tick still works on.

The tick lock serializes ticks, but only while their Snakemake lives: kill
the wrapper and its Snakemake by pid (not their process group) and their
jobs run on, lockless.  So every local job also holds an ``flock`` on
``<work_dir>/state/claims/<run>.lock`` (or ``<batch>.lock``) while it works
(:func:`claim`, from :func:`fulliautomatix.jobs.run`), and the processor it
starts inherits it (:func:`held_fds`), so the claim lasts as long as any
process of that job.  A later tick's plan leaves claimed runs alone with one
line (:func:`busy`); a job that meets a claim anyway refuses in one line.

A claim's file exists only while it is held: the holder deletes it before it
lets go, and :func:`busy` deletes the files of holders that died; a claim
is taken only on the file that is still at its path.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from . import config as fa_config

_held: dict[str, object] = {}  # name -> this process's open, locked claim file


class Busy(Exception):
    """Another process holds the claim; the message names it."""


@contextmanager
def locked(path: str | Path, timeout: float | None = None, poll: float = 0.05):
    """Hold an exclusive flock on path (created, with its folder) for the with-block.

    The package's one lock helper for short critical sections (the submit
    lock, purging, the notification state, starting and stopping the embedded
    runs DB): waits for the lock, or raises
    TimeoutError naming the file after timeout seconds.  Per-run claims
    (:func:`claim`) outlive a with-block, so they keep their own files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | (fcntl.LOCK_NB if timeout is not None else 0))
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {timeout:.0f} s") from None
                time.sleep(poll)
        try:
            yield fh
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def directory(config: dict) -> Path:
    return fa_config.state_dir(config) / "claims"


def _lock_current(path: Path):
    """The claim file at path, opened and locked (LOCK_EX, non-blocking); None when another holds it."""
    while True:
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fh
        fh.close()  # its holder deleted it meanwhile: take the one at the path now


def _holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "a process"
    except OSError:
        return "a process"


def busy_line(name: str, holder: str) -> str:
    what = "batch" if "_to_" in name else "run"
    return (
        f"{what} {name}: {holder} still works on it; this tick leaves it alone (a later tick goes on once it is done)"
    )


def claim(config: dict, name: str, what: str) -> None:
    """Hold the claim on `name` until this process ends or :func:`release`; raise Busy if another has it."""
    if name in _held:
        return
    folder = directory(config)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.lock"
    fh = _lock_current(path)
    if fh is None:
        raise Busy(busy_line(name, _holder(path)))
    fh.seek(0)
    fh.truncate()
    fh.write(f"{what} (pid {os.getpid()})\n")
    fh.flush()
    _held[name] = fh


def release(config: dict, name: str) -> None:
    """Let a claim go (its file first, so no later claimant locks a file about to vanish)."""
    fh = _held.pop(name, None)
    if fh is not None:
        (directory(config) / f"{name}.lock").unlink(missing_ok=True)
        fh.close()


def names_held() -> list[str]:
    """What this process holds claims on."""
    return list(_held)


def held_fds() -> tuple[int, ...]:
    """This process's claims, for a long-running child to inherit (subprocess pass_fds)."""
    return tuple(fh.fileno() for fh in _held.values())


def busy(config: dict) -> dict[str, str]:
    """{name: one line} for the claims other processes hold now; files of dead holders are deleted."""
    folder = directory(config)
    if not folder.is_dir():
        return {}
    out = {}
    for path in sorted(folder.glob("*.lock")):
        name = path.name[: -len(".lock")]
        if name in _held:
            continue
        fh = _lock_current(path)
        if fh is None:
            out[name] = busy_line(name, _holder(path))
        else:
            path.unlink(missing_ok=True)  # nobody holds it: a holder that died
            fh.close()
    return out
