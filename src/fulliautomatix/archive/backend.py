"""The small interface every archive backend offers (:mod:`.choose` picks one from the config).

A backend keeps one tarball per batch, whose members are the runs'
compressed copies (``<run>.tar.zst``).  It offers:

    tarball(batch)              where the batch's tarball lives (a location)
    url(location)               the location as recorded in raw_location, e.g.
                                "hpss:/home/asterix/batches/B.tar"
    exists(location, log)       is anything stored there (trusted or not)?
    upload(batch, files, log, source)  store a new tarball of `files`, which
                                are on host `source` (hosts.Host: this machine,
                                or the cluster's host); returns the location
                                of the copy, which nobody trusts yet
    read_back(location, log)    list the stored tarball and checksum its
                                members from the archived copy itself:
                                ({member: Member}, facts); raises ArchiveError
                                when the backend's own checks fail
    promote(location, batch, log)  make a verified upload the batch's tarball
    discard(location, log)      delete a tarball that is not trusted
    fetch(location, member, dest, log)  bring one member back into dest

Backends do not decide what to trust: :mod:`.stage` compares what
``read_back`` found with the run documents, and only a full match lets runs
become ``archived``.  ``log`` is the job's log file; every command a backend
runs is written to it first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .. import config as fa_config


class ArchiveError(Exception):
    """Archiving or restoring failed; the message says what and what happens next."""


@dataclass(frozen=True)
class Member:
    """One member of a batch tarball."""

    size: int  # bytes
    sha256: str | None  # None: this check could not read the member's bytes back


def member_name(run: str) -> str:
    """A run's member in its batch tarball: its compressed copy."""
    return f"{run}.tar.zst"


def compare(expected: dict[str, Member], actual: dict[str, Member]) -> list[str]:
    """Differences between a tarball read back and the run documents; empty when they agree."""
    problems = [f"member {m} is missing" for m in sorted(expected.keys() - actual.keys())]
    problems += [f"unexpected member {m}" for m in sorted(actual.keys() - expected.keys())]
    for m in sorted(expected.keys() & actual.keys()):
        exp, act = expected[m], actual[m]
        if act.size != exp.size:
            problems.append(f"member {m} has {act.size} bytes, the runs DB recorded {exp.size}")
        elif act.sha256 is not None and act.sha256 != exp.sha256:
            problems.append(f"member {m} differs from its recorded sha256")
    return problems


def staging_dir(config: dict) -> Path:
    """Local directory for building tarballs and reading members back."""
    staging = config["archive"]["staging"]
    if not staging:
        return Path(fa_config.cluster(config)["scratch"]) / "archive-staging"
    p = Path(staging).expanduser()
    return p if p.is_absolute() else fa_config.ROOT / p


class DebugLog:
    """A log file for backends, when no job log is open, that sends their lines to the debug log."""

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if line.strip():
                logging.getLogger("fulliautomatix").debug("%s", line)

    def flush(self) -> None:
        pass
