"""The embedded runs DB: a private nx-27017 server on loopback.

nx-27017 speaks MongoDB's wire protocol over a SQLite file, so the embedded
default and a production MongoDB are used through exactly the same pymongo
code.  One server serves one work directory: its address is written to
``<state>/runsdb.addr`` and reused by every process of a tick (Snakemake jobs,
``fulliautomatix status``) while it answers.  A server left behind by a killed
tick is simply reused by the next one.
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


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def paths(state_dir: Path) -> dict[str, Path]:
    return {
        "db": state_dir / "runsdb.sqlite",
        "addr": state_dir / "runsdb.addr",
        "pid": state_dir / "runsdb.pid",
        "log": state_dir / "runsdb.log",
        "lock": state_dir / "runsdb.lock",
    }


def _command(p: dict[str, Path], port: int) -> list[str]:
    return [
        sys.executable, "-m", "nx_27017.nx_27017",
        "--db", str(p["db"]), "--host", "127.0.0.1", "--port", str(port),
        "--log-file", str(p["log"]), "--pid-file", str(p["pid"]),
    ]


def running_uri(state_dir: Path) -> str | None:
    """URI of the embedded server of this work dir if one answers."""
    addr = paths(state_dir)["addr"]
    if addr.exists():
        uri = addr.read_text().split()[0]
        if _alive(uri):
            return uri
    return None


def ensure(state_dir: Path, timeout: float = 15.0) -> tuple[str, subprocess.Popen | None]:
    """Return (uri, process) of the embedded server, starting one if needed.

    process is None when a running server was reused; the caller stops only
    a server it started itself (see :func:`stop`).
    """
    p = paths(state_dir)
    with _locked(p["lock"]):
        uri = running_uri(state_dir)
        if uri:
            return uri, None
        port = _free_port()
        uri = f"mongodb://127.0.0.1:{port}/"
        p["pid"].unlink(missing_ok=True)
        log = open(p["log"], "ab")
        proc = subprocess.Popen(
            _command(p, port), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedError(
                    f"embedded runs DB (nx-27017) exited with status {proc.returncode}; see {p['log']}"
                )
            if _alive(uri, timeout=0.5):
                tmp = p["addr"].with_suffix(".tmp")
                tmp.write_text(f"{uri} {proc.pid}\n")
                os.replace(tmp, p["addr"])
                return uri, proc
            time.sleep(0.1)
        proc.kill()
        raise EmbeddedError(f"embedded runs DB (nx-27017) did not answer within {timeout:.0f} s; see {p['log']}")


def stop(state_dir: Path, proc: subprocess.Popen | None) -> None:
    """Stop a server that :func:`ensure` started (no-op for a reused one)."""
    if proc is None:
        return
    p = paths(state_dir)
    with _locked(p["lock"]):
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
    with _locked(p["lock"]):
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

    uri = running_uri(state_dir)
    if uri:
        yield uri
        return
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
    with _locked(p["lock"]):
        uri = running_uri(state_dir)
        if uri:
            raise EmbeddedError(f"an embedded runs DB already serves this work dir at {uri}")
        p["addr"].write_text(f"mongodb://127.0.0.1:{port}/ {os.getpid()}\n")
    try:
        os.execv(sys.executable, _command(p, port))
    finally:
        p["addr"].unlink(missing_ok=True)
