"""The ``local`` and ``rsync`` backends: batch tarballs in a directory on a disk.

``local``: ``archive.location`` is a directory on this machine (the embedded
default).  ``rsync``: it is a directory on ``archive.rsync.host``, any ssh host
with a disk (a group server, another site), reached with ``archive.rsync.ssh``.
Both work the same way, the local one simply without ssh:

1. ``tar -cf`` builds the tarball in the staging directory on scratch and its
   sha256 is computed there;
2. ``archive.rsync.command`` copies it to ``<location>/.incoming/<batch>.tar``
   (with ``--partial``, a copy cut short stays there and the next attempt
   resumes it);
3. the copy is read back *on the archive host* (:data:`READ_BACK`): the sha256
   of the whole file, which must equal the staged one, and the size and
   sha256 of every member, in one pass of GNU tar;
4. only a copy that verified is renamed to ``<location>/<batch>.tar``.  A copy
   that failed verification is deleted, so it is never trusted.

The archive host needs bash, GNU tar and sha256sum; nothing else is installed
there.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from .. import hosts
from .backend import ArchiveError, Member
from ..checksums import file_hash

# Run on the archive host with the tarball's path as $1.  Prints "B <bytes>",
# "F <sha256 of the file>" and one "M <size> <sha256> <name>" per member.
READ_BACK = r"""
f=$1
[ -f "$f" ] || { echo "no such file: $f" >&2; exit 3; }
printf 'B %s\n' "$(stat -c %s -- "$f")" || exit 4
sum=$(sha256sum < "$f") || exit 4
printf 'F %s\n' "${sum%% *}"
d=$(mktemp -d) || exit 4
trap 'rm -rf "$d"' EXIT
cd "$d" && tar -xf "$f" --to-command='s=$(sha256sum) && printf "M %s %s %s\n" "$TAR_SIZE" "${s%% *}" "$TAR_FILENAME"'
"""


def parse_read_back(text: str) -> tuple[dict[str, Member], dict]:
    """({member: Member}, {tarball_bytes, tarball_sha256}) from READ_BACK's output."""
    members: dict[str, Member] = {}
    facts: dict = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "B":
            facts["tarball_bytes"] = int(rest)
        elif kind == "F":
            facts["tarball_sha256"] = rest.strip()
        elif kind == "M":
            size, digest, name = rest.split(" ", 2)
            members[name] = Member(int(size), digest)
    if "tarball_bytes" not in facts or "tarball_sha256" not in facts:
        raise ArchiveError("read-back printed no size or checksum of the tarball")
    return members, facts


class DiskBackend:
    """Tarballs in a directory, on this machine (`local`) or on an ssh host (`rsync`)."""

    def __init__(self, name: str, host: hosts.Host, location: str, command: list[str], staging: Path):
        self.name = name
        self.host = host
        self.root = location.rstrip("/") or "/"
        self.command = list(command)
        self.staging = Path(staging)
        self._uploaded: dict[str, str] = {}  # location of an upload -> sha256 of the staged tarball

    @classmethod
    def local(cls, location: str, command: list[str], staging: Path) -> DiskBackend:
        return cls("local", hosts.Host("local"), location, command, staging)

    @classmethod
    def remote(cls, section: dict, location: str, command: list[str], staging: Path) -> DiskBackend:
        """The rsync backend; `section` has host, user, port and ssh (archive.rsync)."""
        if not section.get("host") or section["host"] == "local":
            raise ArchiveError("config key archive.rsync.host: the rsync backend needs an ssh destination")
        return cls("rsync", hosts.Host.from_config(section), location, command, staging)

    # -- where things are -------------------------------------------------
    def tarball(self, batch: str) -> str:
        return f"{self.root}/{batch}.tar"

    def _incoming(self, batch: str) -> str:
        return f"{self.root}/.incoming/{batch}.tar"

    def url(self, location: str) -> str:
        return f"{self.name}:{self.host.path(location)}"

    @property
    def host_name(self) -> str | None:
        return None if self.host.is_local else self.host.dest

    # -- commands ----------------------------------------------------------
    def _run(self, argv: list[str], log, what: str, check: bool = True) -> subprocess.CompletedProcess:
        try:
            return self.host.run(argv, check=check, log=log)
        except hosts.CommandFailed as exc:
            raise ArchiveError(f"{what} failed on {self.host.dest}: {exc}") from None
        except OSError as exc:
            raise ArchiveError(f"{what}: cannot run {argv[0]}: {exc}") from None

    def exists(self, location: str, log) -> bool:
        rc = self._run(["test", "-e", location], log, "checking for the tarball", check=False).returncode
        if rc not in (0, 1):
            raise ArchiveError(f"cannot reach archive host {self.host.dest} (exit {rc})")
        return rc == 0

    def upload(self, batch: str, files: list[Path], log) -> str:
        """Build the tarball on scratch and copy it into .incoming on the archive host."""
        self.staging.mkdir(parents=True, exist_ok=True)
        staged = self.staging / f"{batch}.tar"
        partial = self.staging / f".{batch}.tar.partial"
        argv = ["tar", "-cf", str(partial), "-C", str(files[0].parent), "--", *[f.name for f in files]]
        log.write(f"$ {shlex.join(argv)}\n")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ArchiveError(f"tar could not build {staged} (exit {proc.returncode}): {proc.stderr.strip()}")
        partial.rename(staged)
        try:
            digest = file_hash(staged)
            incoming = self._incoming(batch)
            self._run(["mkdir", "-p", "--", incoming.rsplit("/", 1)[0]], log, "creating the archive directory")
            ssh = [] if self.host.is_local else ["-e", hosts.rsync_shell(self.host)]
            argv = [*self.command, *ssh, str(staged), self.host.path(incoming)]
            log.write(f"$ {shlex.join(argv)}\n")
            log.flush()
            try:
                proc = subprocess.run(argv, capture_output=True, text=True)
            except OSError as exc:
                raise ArchiveError(f"cannot run {argv[0]}: {exc}") from None
            log.write(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or [""])[-1]
                raise ArchiveError(f"upload of {batch}.tar to {self.url(incoming)} failed "
                                   f"(exit {proc.returncode}: {last}); the partial copy stays there for the "
                                   "next attempt to resume")
        finally:
            staged.unlink(missing_ok=True)
        self._uploaded[incoming] = digest
        return incoming

    def read_back(self, location: str, log) -> tuple[dict[str, Member], dict]:
        """Checksums of the file and of every member, computed on the archive host.

        Guarded (hosts.Host.run_guarded): if this tick dies, the remote read stops too.
        """
        try:
            proc = self.host.run_guarded(["bash", "-c", READ_BACK, "read-back", location], check=False, log=log)
        except OSError as exc:
            raise ArchiveError(f"reading the tarball back: {exc}") from None
        if proc.returncode != 0:
            raise ArchiveError(f"cannot read {self.url(location)} back (exit {proc.returncode}): "
                               f"{(proc.stderr.strip().splitlines() or [''])[-1]}")
        members, facts = parse_read_back(proc.stdout)
        staged = self._uploaded.get(location)
        if staged is not None and facts["tarball_sha256"] != staged:
            raise ArchiveError(f"{self.url(location)}: sha256 of the archived file differs from the tarball "
                               "built on scratch")
        facts["checks"] = ["sha256 of the archived file" + (" = staged tarball" if staged else ""),
                           "size and sha256 of every member, on the archive host"]
        return members, facts

    def promote(self, location: str, batch: str, log) -> str:
        final = self.tarball(batch)
        if location != final:
            self._run(["mv", "-f", "-T", "--", location, final], log, "renaming the verified tarball")
        return final

    def discard(self, location: str, log) -> None:
        self._run(["rm", "-f", "--", location], log, "deleting an untrusted tarball")
        self._uploaded.pop(location, None)

    def fetch(self, location: str, member: str, dest: Path, log) -> Path:
        """Stream one member out of the tarball (only its bytes cross the network)."""
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / member
        argv = self.host.argv(["tar", "-xOf", location, "--", member])
        log.write(f"$ {shlex.join(argv)}\n")
        with open(out, "wb") as fh:
            proc = subprocess.run(argv, stdout=fh, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            out.unlink(missing_ok=True)
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ArchiveError(f"cannot fetch {member} from {self.url(location)} (exit {proc.returncode}): "
                               f"{err[-1] if err else ''}")
        return out
