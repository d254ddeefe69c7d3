"""The ``hpss`` backend: batch tarballs on an HPSS tape archive (Purdue's Fortress).

``htar`` writes the tarball and its index (``<tarball>.idx``) straight into
HPSS, reading the compressed copies where they are on scratch; ``hsi`` lists,
checks and deletes.  The commands are ``archive.hpss.htar`` and
``archive.hpss.hsi`` (argv lists), so a site can use a wrapper.

**In the test suite these tools are stand-ins:** ``tests/standins/hpss/htar``
and ``hsi`` are small Python scripts that accept the command lines used here
and keep the "HPSS" files in a directory (see tests/standins/hpss/README.md).
The tests point ``archive.hpss.htar``/``hsi`` at them; nothing in this module
knows whether it talks to the real tools or to the stand-ins.

How a batch is written and verified:

* ``hsi -q mkdir -p <location>`` then, with the compressed directory as the
  working directory, ``htar -cvf <tarball> -Hverify=<archive.hpss.verify>
  <run>.tar.zst ...``.  htar writes the final name directly (HPSS has no
  cheap rename here) and a failed re-create can leave an *older* index next
  to a truncated tarball, so an old tarball and index are deleted first, and
  only exit status 0 together with ``HTAR: HTAR SUCCESSFUL`` counts.
* Read-back: ``hsi -q ls -l`` must show the tarball and its index;
  ``htar -tvf`` must list exactly the expected members with their sizes
  (htar's own consistency file ``/tmp/HTAR_CF_CHK_*`` is ignored);
  and with ``archive.hpss.read_back`` (default) every member is extracted
  again, one at a time, into the staging directory (htar checks its CRC on
  the way) and its sha256 computed, so the checksums in the run documents
  are compared with bytes that came back out of HPSS.  Without read_back,
  ``htar -Kf`` re-checks the archived data against the index CRCs instead,
  and member checksums are not compared (the run documents record that).
* Restore extracts only the run's member (``htar -xf <tarball> <member>``);
  htar seeks to it through the index.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from .backend import ArchiveError, Member
from ..checksums import file_hash

CONSISTENCY_FILE = "/tmp/HTAR_CF_CHK_"  # htar's own last member, never ours
SUCCESS = "HTAR: HTAR SUCCESSFUL"
# hsi splits its command line on spaces and ';': paths must not contain them.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./+-]*$")


def parse_listing(stdout: str) -> dict[str, int]:
    """{member: size} from ``htar -tvf`` output, without htar's consistency file."""
    members = {}
    for line in stdout.splitlines():
        fields = line.split()
        # HTAR: <mode> <user/group> <size> <date> <time> <name>
        if len(fields) >= 7 and fields[0] == "HTAR:" and fields[1][:1] in "-dl" and fields[3].isdigit():
            name = line.split(None, 6)[6]
            if fields[1].startswith("-") and not name.startswith(CONSISTENCY_FILE):
                members[name] = int(fields[3])
    return members


def parse_ls(output: str) -> dict[str, int]:
    """{file name: size} from ``hsi ls -l`` output (which hsi writes to stderr)."""
    sizes = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 9 and fields[0].startswith("-") and fields[4].isdigit():
            sizes[fields[-1].rsplit("/", 1)[-1]] = int(fields[4])
    return sizes


def _last_error(proc: subprocess.CompletedProcess) -> str:
    """The first and the last error line of htar or hsi (the cause, and the summary)."""
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("ERROR", "***"))] or lines[-1:] or ["no message"]
    return errors[0] if len(errors) == 1 else f"{errors[0]} ... {errors[-1]}"


class HpssBackend:
    name = "hpss"
    host_name = None

    def __init__(self, location: str, htar: list[str], hsi: list[str], verify: str, read_back: bool, staging: Path):
        self.root = location.rstrip("/") or "/"
        if not SAFE_PATH.match(self.root):
            raise ArchiveError(
                f"config key archive.location: HPSS path {location!r} must be absolute and "
                "hold only letters, digits and _./+-"
            )
        self.htar_argv = list(htar)
        self.hsi_argv = list(hsi)
        self.verify = verify
        self.read_back_members = read_back
        self.staging = Path(staging)

    def tarball(self, batch: str) -> str:
        return f"{self.root}/{batch}.tar"

    def url(self, location: str) -> str:
        return f"hpss:{location}"

    # -- the two tools -----------------------------------------------------
    def _call(self, argv: list[str], log, cwd: Path | None = None) -> subprocess.CompletedProcess:
        log.write(f"$ {shlex.join(argv)}" + (f"   (in {cwd})" if cwd else "") + "\n")
        log.flush()
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise ArchiveError(f"cannot run {argv[0]}: {exc}; check archive.hpss in the config") from None
        log.write(proc.stdout + proc.stderr)
        return proc

    def htar(self, args: list[str], log, cwd: Path | None = None, what: str = "htar") -> subprocess.CompletedProcess:
        """Run htar; success is exit 0 *and* the HTAR SUCCESSFUL status line."""
        proc = self._call([*self.htar_argv, *args], log, cwd)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines or lines[-1].strip() != SUCCESS:
            raise ArchiveError(f"{what} failed (htar exit {proc.returncode}): {_last_error(proc)}")
        return proc

    def hsi(self, command: list[str], log) -> subprocess.CompletedProcess:
        return self._call([*self.hsi_argv, "-q", *command], log)

    # -- the interface -----------------------------------------------------
    def exists(self, location: str, log) -> bool:
        proc = self.hsi(["ls", "-l", location], log)
        if proc.returncode == 0:
            return True
        if "HPSS_ENOENT" in proc.stderr:
            return False
        raise ArchiveError(f"hsi cannot list {location} (exit {proc.returncode}): {_last_error(proc)}")

    def upload(self, batch: str, files: list[Path], log, source=None) -> str:
        if source is not None and not source.is_local:  # config.finalize refuses this; never htar a remote path
            raise ArchiveError(f"the hpss backend runs htar here and cannot read compressed copies on {source.name}")
        location = self.tarball(batch)
        self.discard(location, log)  # never leave an old index next to a new tarball
        proc = self.hsi(["mkdir", "-p", self.root], log)
        if proc.returncode != 0:
            raise ArchiveError(f"hsi mkdir -p {self.root} failed (exit {proc.returncode}): {_last_error(proc)}")
        try:
            self.htar(
                ["-cvf", location, f"-Hverify={self.verify}", *[_member(f.name) for f in files]],
                log,
                cwd=files[0].parent,
                what=f"writing {location}",
            )
        except ArchiveError:
            try:  # whatever a failed htar left there is never trusted
                self.discard(location, log)
            except ArchiveError as exc:
                log.write(f"could not delete what the failed htar left ({exc}); the next attempt will\n")
            raise
        return location

    def read_back(self, location: str, log) -> tuple[dict[str, Member], dict]:
        checks = [f"htar -Hverify={self.verify} when written"]
        proc = self.hsi(["ls", "-l", location, location + ".idx"], log)
        sizes = parse_ls(proc.stderr + proc.stdout)
        name = location.rsplit("/", 1)[-1]
        if proc.returncode != 0 or name not in sizes or name + ".idx" not in sizes:
            raise ArchiveError(f"hsi does not list both {location} and its index: {_last_error(proc)}")
        checks.append("hsi ls -l: tarball and index present")
        listed = parse_listing(self.htar(["-tvf", location], log, what=f"listing {location}").stdout)
        checks.append("htar -tvf: members and sizes")
        members = {m: Member(size, None) for m, size in listed.items()}
        if not self.read_back_members:
            self.htar(["-Kvf", location], log, what=f"checking {location} against its index CRCs")
            checks.append("htar -K: archived data against the index CRCs")
        else:  # a superset of -K for our members: htar checks each CRC while extracting
            self.staging.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="read-back-", dir=self.staging))
            try:
                for m in listed:
                    self.htar(["-xf", location, _member(m)], log, cwd=work, what=f"reading {m} back from {location}")
                    got = work / m
                    members[m] = Member(got.stat().st_size, file_hash(got))
                    got.unlink()
            finally:
                shutil.rmtree(work, ignore_errors=True)
            checks.append("htar -xf: every member read back, size and sha256")
        return members, {"tarball_bytes": sizes[name], "checks": checks}

    def promote(self, location: str, batch: str, log) -> str:
        return location  # htar wrote the final name

    def discard(self, location: str, log) -> None:
        """Delete the tarball and its index, whichever exist."""
        for path in (location, location + ".idx"):
            if self.exists(path, log):
                proc = self.hsi(["rm", path], log)
                if proc.returncode != 0:
                    raise ArchiveError(f"hsi rm {path} failed (exit {proc.returncode}): {_last_error(proc)}")

    def fetch(self, location: str, member: str, dest: Path, log) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        self.htar(["-xf", location, _member(member)], log, cwd=dest, what=f"fetching {member} from {location}")
        out = dest / member
        if not out.is_file():
            raise ArchiveError(f"htar reported success but {member} did not appear in {dest}")
        return out


def _member(name: str) -> str:
    """A member name as an htar argument (htar has no "--" to end its options)."""
    if name.startswith("-") or not name:
        raise ArchiveError(f"member name {name!r} would be read by htar as an option")
    return name
