"""Stage 4: batches of compressed runs, tarred, archived, verified; and restore.

    backend.py  the interface every backend offers
    choose.py   choosing one from the config (make)
    disk.py     ``local`` (a directory here) and ``rsync`` (a directory on an ssh host)
    hpss.py     ``hpss`` (htar/hsi into an HPSS tape archive such as Fortress)
    stage.py    archive_batch (the rule's body), the same for every backend
    restore.py  restore: one run back from the archive, verified

A batch becomes ``archived`` only after its tarball has been read back from
the archive and every member's size and checksum matched the run documents;
only then may the compressed copies on scratch be purged.
"""

from .backend import ArchiveError, DebugLog, Member, compare, member_name
from .choose import make
from .restore import restore
from .stage import archive_batch, verify

backend = make  # the name planning.describe uses

__all__ = [
    "ArchiveError",
    "DebugLog",
    "Member",
    "archive_batch",
    "backend",
    "compare",
    "make",
    "member_name",
    "restore",
    "verify",
]
