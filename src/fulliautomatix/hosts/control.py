"""One ssh connection per host per tick (OpenSSH ControlMaster).

Every command of a tick to a remote host goes through one OpenSSH master
connection (ControlMaster=auto: the first command opens it, the others ride
on it; ControlPersist keeps it after that command ends).  The sockets are in
a directory of their own per user under work_dir (mode 0700, and ssh's master
accepts only its own user), named by a hash of the host's ssh settings; the
tick closes them all at its end (close_masters: `ssh -O exit`).  A master
left by a tick that was killed exits by itself after CONTROL_PERSIST idle
seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import Host

CONTROL_PERSIST = 300  # seconds an idle master outlives its last command (a tick that died)
# ssh binds "<ControlPath>.<16 random characters>" first, and a unix socket's path holds 107 bytes.
SOCKET_PATH_MAX = 88


def socket_name(host: Host) -> str:
    """A short name for the host's control socket: a hash of everything that picks the connection."""
    key = repr((os.getuid(), host.dest, host.user, host.port, host.ssh))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def private_dir(path: Path) -> bool:
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
            subprocess.run(
                [
                    "ssh",
                    "-F",
                    "/dev/null",
                    "-o",
                    f"ControlPath={entry.path.replace('%', '%%')}",
                    "-O",
                    "exit",
                    "fa-tick",
                ],
                capture_output=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
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
