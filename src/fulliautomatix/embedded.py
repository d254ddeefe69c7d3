"""The embedded runs DB: a private nx-27017 server on loopback.

nx-27017 speaks MongoDB's wire protocol over a SQLite file, so the embedded
default and a production MongoDB are used through exactly the same pymongo
code.  One server serves one work directory: its address is written to
``<state>/runsdb.addr`` and reused by every process of a tick (Snakemake jobs,
``fulliautomatix status``) while it answers.

Every process using it holds a shared ``flock`` on ``<state>/runsdb.users``
(:func:`using`).  The process that starts a server names its *owner* (the
cron wrapper, or a hand-run Snakemake), and a small watcher
(``python -m fulliautomatix.embedded``) stops the server once the owner is
gone and nobody uses it any more: a wrapper killed with -9 leaves no server
behind, and jobs of a killed tick that still run keep theirs until they end.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pymongo
import pymongo.errors

from . import claims


class EmbeddedError(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(uri: str, timeout: float = 1.0) -> bool:
    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(timeout * 1000))
        try:
            client.admin.command("ping")
        finally:
            client.close()
        return True
    except pymongo.errors.PyMongoError:
        return False


def paths(state_dir: Path) -> dict[str, Path]:
    return {
        "db": state_dir / "runsdb.sqlite",
        "addr": state_dir / "runsdb.addr",
        "pid": state_dir / "runsdb.pid",
        "log": state_dir / "runsdb.log",
        "lock": state_dir / "runsdb.lock",
        "users": state_dir / "runsdb.users",
    }


_users: list = []  # this process's shared locks on runsdb.users (one per open connection)


def using(state_dir: Path):
    """Declare this process a user of the work dir's server until :func:`done_using` (a shared flock)."""
    p = paths(state_dir)
    p["users"].parent.mkdir(parents=True, exist_ok=True)
    fh = open(p["users"], "a+")  # created by the first user; never written
    fcntl.flock(fh, fcntl.LOCK_SH)  # waits only while a watcher is stopping the server
    _users.append(fh)
    return fh


def serves(state_dir: Path, uri: str) -> bool:
    """Whether uri is the address of this work dir's embedded server (its runsdb.addr).

    The wrapper hands its Snakemake the server's address, not "embedded"
    (config.DB_ENV); a job connecting to it is a user like any other, so a
    job orphaned by a killed tick keeps the server until it is done.
    """
    recorded = _recorded(state_dir)
    return recorded is not None and recorded[0] == uri


def done_using(fh) -> None:
    if fh in _users:
        _users.remove(fh)
    fh.close()


def stop_if_unused(state_dir: Path, pid: int) -> bool:
    """Stop the server `pid` if no process uses it (nor this one); True when it is gone."""
    p = paths(state_dir)
    if not _pid_alive(pid):
        return True
    with open(p["users"], "a+") as users:
        try:
            fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        stop_pid(state_dir, pid)
        return True


def _pid_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _watch(state_dir: Path, server: int, owner: int, since: float | None, poll: float = 0.5) -> None:
    """Wait until the owner is gone, then stop the server as soon as nobody uses it."""
    import psutil

    try:
        proc = psutil.Process(owner)
        if since is None or abs(proc.create_time() - since) < 1:
            while proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE and _pid_alive(server):
                time.sleep(poll)
    except psutil.Error:
        pass
    while not stop_if_unused(state_dir, server):
        time.sleep(poll)


def _start_watcher(state_dir: Path, server: int, owner: int) -> None:
    import psutil

    try:
        since = psutil.Process(owner).create_time()
    except psutil.Error:
        since = 0.0
    argv = [
        sys.executable,
        "-m",
        "fulliautomatix.embedded",
        "--state",
        str(state_dir),
        "--server",
        str(server),
        "--owner",
        str(owner),
        "--since",
        repr(since),
    ]
    _watchers[server] = subprocess.Popen(
        argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


_watchers: dict[int, subprocess.Popen] = {}  # server pid -> the watcher this process started for it


def _end_watcher(server: int) -> None:
    """The owner stopped its server itself: its watcher has nothing left to do."""
    watcher = _watchers.pop(server, None)
    if watcher is not None and watcher.poll() is None:
        watcher.terminate()
        watcher.wait()


def _command(p: dict[str, Path], port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "nx_27017.nx_27017",
        "--db",
        str(p["db"]),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-file",
        str(p["log"]),
        "--pid-file",
        str(p["pid"]),
    ]


def _recorded(state_dir: Path) -> tuple[str, int] | None:
    """(uri, server pid) of runsdb.addr; None when it is missing or does not parse.

    `db serve` writes the file before it becomes the server (execv), and a server
    killed with -9 cannot remove it: a file naming no server is stale, not an error.
    """
    try:
        uri, pid = paths(state_dir)["addr"].read_text().split()
        port = int(uri.removeprefix("mongodb://127.0.0.1:").rstrip("/"))
        pid = int(pid)
    except (OSError, ValueError):
        return None
    return (uri, pid) if 0 < port < 65536 and pid > 0 else None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists (cheaper than psutil for `status`)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_uri(state_dir: Path) -> str | None:
    """URI of the embedded server of this work dir if one answers (its process still the one recorded)."""
    recorded = _recorded(state_dir)
    if recorded is None or not _pid_exists(recorded[1]):
        return None
    return recorded[0] if _alive(recorded[0]) else None


def ensure(state_dir: Path, timeout: float = 15.0, owner: int | None = None) -> tuple[str, subprocess.Popen | None]:
    """Return (uri, process) of the embedded server, starting one if needed.

    process is None when a running server was reused; the caller stops only
    a server it started itself (see :func:`stop`).  With `owner` (a pid), a
    server started here is also stopped by a watcher once the owner is gone
    and no process uses it (a killed owner cannot stop it itself).
    """
    p = paths(state_dir)
    with claims.locked(p["lock"]):
        uri = running_uri(state_dir)
        if uri:
            return uri, None
        port = _free_port()
        uri = f"mongodb://127.0.0.1:{port}/"
        p["pid"].unlink(missing_ok=True)
        log = open(p["log"], "ab")
        proc = subprocess.Popen(
            _command(p, port), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedError(f"embedded runs DB (nx-27017) exited with status {proc.returncode}; see {p['log']}")
            if _alive(uri, timeout=0.5):
                tmp = p["addr"].with_suffix(".tmp")
                tmp.write_text(f"{uri} {proc.pid}\n")
                os.replace(tmp, p["addr"])
                if owner is not None:
                    _start_watcher(state_dir, proc.pid, owner)
                return uri, proc
            time.sleep(0.1)
        proc.kill()
        raise EmbeddedError(f"embedded runs DB (nx-27017) did not answer within {timeout:.0f} s; see {p['log']}")


def release(state_dir: Path, proc: subprocess.Popen | None) -> None:
    """At the end of its owner: stop a server :func:`ensure` started, unless others still use it.

    Then its watcher stops it once they are done.  A reused server (proc
    None) is left alone.
    """
    if proc is not None and stop_if_unused(state_dir, proc.pid):
        proc.poll()  # reap it
        _end_watcher(proc.pid)


def stop(state_dir: Path, proc: subprocess.Popen | None) -> None:
    """Stop a server that :func:`ensure` started (no-op for a reused one)."""
    if proc is None:
        return
    p = paths(state_dir)
    with claims.locked(p["lock"]):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        addr = p["addr"]
        if addr.exists() and addr.read_text().split()[1:2] == [str(proc.pid)]:
            addr.unlink()


def stop_pid(state_dir: Path, pid: int) -> None:
    """Stop the server with this pid (started by a job of a tick that has ended)."""
    import psutil

    p = paths(state_dir)
    with claims.locked(p["lock"]):
        try:
            server = psutil.Process(pid)
            server.terminate()
            server.wait(timeout=10)
        except psutil.TimeoutExpired:
            server.kill()
        except psutil.Error:
            pass
        addr = p["addr"]
        if addr.exists() and addr.read_text().split()[1:2] == [str(pid)]:
            addr.unlink()


@contextmanager
def snapshot_uri(state_dir: Path):
    """A URI to read the runs DB of this work dir from, changing nothing there.

    The running server when there is one.  Otherwise a consistent copy of
    the SQLite file served by a
    private nx-27017 in a temporary directory, stopped on exit.  Yields None
    when the work dir has no runs DB yet.
    """
    import shutil
    import tempfile

    users = using(state_dir) if paths(state_dir)["users"].exists() else None  # the parse creates nothing
    try:
        uri = running_uri(state_dir)
        if uri:
            yield uri
            return
    finally:
        if users is not None:
            done_using(users)
    db = paths(state_dir)["db"]
    if not db.exists():
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="fa-runsdb-snapshot-"))
    proc = None
    try:
        # No server runs, so nothing writes the file: a copy (with a write-ahead log
        # a killed server left) is consistent, and opening it cannot touch the original.
        for suffix in ("", "-wal"):
            if Path(f"{db}{suffix}").exists():
                shutil.copyfile(f"{db}{suffix}", tmp / f"runsdb.sqlite{suffix}")
        uri, proc = ensure(tmp)
        yield uri
    finally:
        stop(tmp, proc)
        shutil.rmtree(tmp, ignore_errors=True)


def serve(state_dir: Path, port: int) -> int:
    """Run the embedded server in the foreground (``fulliautomatix db serve``)."""
    p = paths(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with claims.locked(p["lock"]):
        uri = running_uri(state_dir)
        if uri:
            raise EmbeddedError(f"an embedded runs DB already serves this work dir at {uri}")
        p["addr"].write_text(f"mongodb://127.0.0.1:{port}/ {os.getpid()}\n")
    try:
        os.execv(sys.executable, _command(p, port))
    finally:
        p["addr"].unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """The watcher a server's starter leaves behind (see the module docstring)."""
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m fulliautomatix.embedded",
        description="stop an embedded runs DB once its owner is gone and nobody uses it",
    )
    ap.add_argument("--state", type=Path, required=True, help="the work dir's state/ directory")
    ap.add_argument("--server", type=int, required=True, help="pid of the nx-27017 server")
    ap.add_argument("--owner", type=int, required=True, help="pid of the process the server serves")
    ap.add_argument("--since", type=float, help="the owner's start time (guards against a reused pid)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _watch(args.state, args.server, args.owner, args.since)
    return 0


if __name__ == "__main__":
    sys.exit(main())
