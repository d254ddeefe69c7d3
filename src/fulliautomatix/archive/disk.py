"""The ``local`` and ``rsync`` backends: batch tarballs in a directory on a disk.

``local``: ``archive.location`` is a directory on this machine (the embedded
default).  ``rsync``: it is a directory on ``archive.rsync.host``, any ssh host
with a disk (a group server, another site), reached with ``archive.rsync.ssh``.
Both work the same way, the local one simply without ssh:

1. ``tar -cf`` builds the tarball in the staging directory on scratch and its
   sha256 is computed there, on the host scratch is on (this machine, or the
   cluster's host over ssh: the compressed copies never cross the network
   for this);
2. ``archive.rsync.command`` copies it to ``<location>/.incoming/<batch>.tar``
   (with ``--partial``, a copy cut short stays there and the next attempt
   resumes it): pushed from here; pulled from the cluster's host when scratch
   is remote and the archive is here; run on the cluster's host when both are
   remote (a plain local copy when the archive is on that host, else its own
   ssh must reach ``archive.rsync.host``);
3. the copy is read back *on the archive host* (:func:`tarsums.read_back`): one
   read of the file gives its sha256, which must equal the staged one, and
   the size and sha256 of every member;
4. only a copy that verified is renamed to ``<location>/<batch>.tar``.  A copy
   that failed verification is deleted, so it is never trusted.

The archive host needs bash and python3 (the one-pass reader,
:mod:`fulliautomatix.tarstream`, sent with each command); without python3,
GNU tar and sha256sum do the same in two passes.  Nothing is installed there.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from .. import hosts, tarsums
from .backend import ArchiveError, Member


class DiskBackend:
    """Tarballs in a directory, on this machine (`local`) or on an ssh host (`rsync`)."""

    def __init__(
        self, name: str, host: hosts.Host, location: str, command: list[str], staging: Path, upload_timeout: int = 86400
    ):
        self.name = name
        self.host = host
        self.root = location.rstrip("/") or "/"
        self.command = list(command)
        self.staging = Path(staging)
        self.upload_timeout = int(upload_timeout)  # seconds; older leftovers of uploads in .incoming are deleted
        self._uploaded: dict[str, str] = {}  # location of an upload -> sha256 of the staged tarball

    @classmethod
    def local(cls, location: str, command: list[str], staging: Path, upload_timeout: int = 86400) -> DiskBackend:
        return cls("local", hosts.Host("local"), location, command, staging, upload_timeout)

    @classmethod
    def remote(
        cls,
        section: dict,
        location: str,
        command: list[str],
        staging: Path,
        upload_timeout: int = 86400,
        controls: Path | None = None,
    ) -> DiskBackend:
        """The rsync backend; `section` has host, user, port and ssh (archive.rsync); `controls`: the
        tick's ssh control sockets (hosts.control_dir)."""
        if not section.get("host") or section["host"] == "local":
            raise ArchiveError("config key archive.rsync.host: the rsync backend needs an ssh destination")
        return cls("rsync", hosts.Host.from_config(section, controls), location, command, staging, upload_timeout)

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

    def upload(self, batch: str, files: list[Path], log, source: hosts.Host | None = None) -> str:
        """Build the tarball on the scratch's host (`source`) and copy it into .incoming on the archive host.

        `source` is where the compressed copies and the staging directory
        are: this machine, or the cluster's host over ssh.
        """
        source = source or hosts.Host()
        staging = str(self.staging)
        staged, partial = f"{staging}/{batch}.tar", f"{staging}/.{batch}.tar.partial"
        try:
            source.run(["mkdir", "-p", "--", staging], log=log)
            res = source.run(
                ["tar", "-cf", partial, "-C", str(files[0].parent), "--", *[f.name for f in files]],
                check=False,
                log=log,
            )
            if res.returncode != 0:
                source.run(["rm", "-f", "--", partial], check=False)
                raise ArchiveError(
                    f"tar could not build {source.path(staged)} in archive.staging (exit "
                    f"{res.returncode}): {hosts.cause(res.stderr)}"
                )
            source.run(["mv", "-f", "-T", "--", partial, staged], log=log)
            proc = source.run(["sha256sum", "--", staged], log=log)
            digest = proc.stdout.split()[0]
        except hosts.CommandFailed as exc:
            raise ArchiveError(f"building the tarball on {source.name}: {exc}") from None
        except OSError as exc:
            raise ArchiveError(f"building the tarball: {exc}") from None
        try:
            incoming = self._incoming(batch)
            self._run(["mkdir", "-p", "--", incoming.rsplit("/", 1)[0]], log, "creating the archive directory")
            self._tidy_incoming(log)
            where, argv = self._copy_argv(source, staged, incoming)
            try:
                res = where.run(argv, check=False, log=log)
            except OSError as exc:
                raise ArchiveError(f"cannot run {argv[0]}: {exc}") from None
            log.write(res.stdout + res.stderr)
            if res.returncode != 0:
                raise ArchiveError(
                    f"upload of {batch}.tar to {self.url(incoming)} failed "
                    f"(exit {res.returncode}: {hosts.cause(res.stderr)}); the partial copy stays "
                    "there for the next attempt to resume"
                )
        finally:
            source.run(["rm", "-f", "--", staged], check=False)
        self._uploaded[incoming] = digest
        return incoming

    # Deletes what uploads killed with -9 left in "$1" (rsync's temporary ".<batch>.tar.XXXXXX"),
    # older than "$2" minutes; nothing else.  Prints each path it deleted.
    TIDY = r"""
[ -d "$1" ] || exit 0
find "$1" -mindepth 1 -maxdepth 1 -type f -regextype posix-extended \
  -regex '.*/\.[0-9A-Za-z_]+\.tar\.[0-9A-Za-z]{6}' -mmin "+$2" -print -delete
"""

    def _tidy_incoming(self, log) -> None:
        """Delete leftovers of uploads that died (older than archive.upload_timeout_seconds) from .incoming."""
        minutes = str(max(1, -(-self.upload_timeout // 60)))
        res = self._run(
            ["bash", "-c", self.TIDY, "fa-tidy", f"{self.root}/.incoming", minutes],
            log,
            "tidying the archive's .incoming",
            check=False,
        )
        for path in res.stdout.split("\n"):
            if path.strip():
                log.write(f"deleted {self.host.path(path)}, left by an upload that died\n")

    def _copy_argv(self, source: hosts.Host, staged: str, incoming: str) -> tuple[hosts.Host, list[str]]:
        """(where to run it, the rsync argv) copying the staged tarball into .incoming."""
        if source.is_local:  # push from here
            ssh = [] if self.host.is_local else ["-e", hosts.rsync_shell(self.host)]
            return hosts.Host(), [*self.command, *ssh, staged, self.host.path(incoming)]
        if self.host.is_local:  # the archive is here, the tarball on the cluster: pull it
            return hosts.Host(), [*self.command, "-e", hosts.rsync_shell(source), source.path(staged), incoming]
        if (self.host.dest, self.host.user, self.host.port) == (source.dest, source.user, source.port):
            return source, [*self.command, staged, incoming]  # the archive is on the cluster's host
        # Pushed by the cluster's host, whose own ssh (keys, ssh_config) reaches the archive host.
        route = hosts.Host(self.host.dest, hosts.DEFAULT_SSH, self.host.user, self.host.port)
        return source, [*self.command, "-e", hosts.rsync_shell(route), staged, route.path(incoming)]

    def read_back(self, location: str, log) -> tuple[dict[str, Member], dict]:
        """Checksums of the file and of every member, computed on the archive host.

        Guarded (hosts.Host.run_guarded): if this tick dies, the remote read stops too.
        """
        try:
            sums = tarsums.read_back(self.host, location, "sha256", log=log)
        except tarsums.ReadBackError as exc:
            raise ArchiveError(str(exc)) from None
        members = {name: Member(size, digest) for name, (size, digest) in sums.members.items()}
        facts = {"tarball_bytes": sums.bytes, "tarball_sha256": sums.sha256}
        staged = self._uploaded.get(location)
        if staged is not None and facts["tarball_sha256"] != staged:
            raise ArchiveError(
                f"{self.url(location)}: sha256 of the archived file differs from the tarball built on scratch"
            )
        facts["checks"] = [
            "sha256 of the archived file" + (" = staged tarball" if staged else ""),
            "size and sha256 of every member, on the archive host",
        ]
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
            raise ArchiveError(
                f"cannot fetch {member} from {self.url(location)} (exit {proc.returncode}): {err[-1] if err else ''}"
            )
        return out
