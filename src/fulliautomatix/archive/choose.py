"""Choosing the archive backend the config names (archive.backend) and setting it up."""

from __future__ import annotations

from .. import hosts
from . import disk, hpss
from .backend import ArchiveError, staging_dir


def make(config: dict, name: str | None = None, host: str | None = None):
    """The backend named `name` (default: archive.backend), set up from the config.

    `host` overrides archive.rsync.host; restore passes the host a run was
    archived to, so a later change of the config cannot lose it.
    """
    a = config["archive"]
    name = name or a["backend"]
    staging = staging_dir(config)
    if name == "local":
        return disk.DiskBackend.local(a["location"], a["rsync"]["command"], staging, a["upload_timeout_seconds"])
    if name == "rsync":
        section = {**a["rsync"], "host": host or a["rsync"]["host"]}
        return disk.DiskBackend.remote(
            section,
            a["location"],
            a["rsync"]["command"],
            staging,
            a["upload_timeout_seconds"],
            hosts.control_dir(config),
        )
    if name == "hpss":
        h = a["hpss"]
        return hpss.HpssBackend(a["location"], h["htar"], h["hsi"], h["verify"], h["read_back"], staging)
    raise ArchiveError(f"archive backend {name!r} is not known (local, rsync, hpss)")
