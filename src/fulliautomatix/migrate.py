"""`fulliautomatix db migrate`: the string times of existing run documents become BSON dates, in place.

Documents written before dates were dates hold ISO 8601 strings in
``history[].at`` and every other field of :data:`dates.DATE_FIELDS`; those
written before ``updated_day`` existed lack that integer (the report's index,
:func:`dates.day_number` of ``updated_at``).  The
migration walks the collection in ``_id`` order, a page at a time
(:meth:`RunsDB.page_by_id`: from the ``_id`` index on MongoDB, the ``_id`` key
on nx-27017), converts each document with :func:`dates.migrated` and writes
back only those that changed, each only if no one wrote it since it was read.
It is idempotent and resumable: a document converted once is never written
again, so a second run, or a run after an interrupted one, reads everything
and changes only what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import dates
from .runsdb import RunsDB

ATTEMPTS = 3  # writes per document when other writers keep changing it


@dataclass
class Progress:
    read: int = 0  # documents read
    converted: int = 0  # documents written with their dates as dates
    left: int = 0  # documents changed by another writer at every attempt (run db migrate again)


def _convert(db: RunsDB, docs: list[dict]) -> tuple[int, int]:
    """Write back the documents of one page that hold string dates; (converted, left)."""
    todo = _to_convert(docs)
    converted = 0
    for _ in range(ATTEMPTS):
        if not todo:
            break
        if db.replace_unchanged(todo) == len(todo):
            return converted + len(todo), 0
        # Another writer changed some of them since they were read: read those again.
        still = _to_convert(db.by_ids([doc["_id"] for doc in todo]))
        converted += len(todo) - len(still)
        todo = still
    return converted, len(todo)


def _to_convert(docs: list[dict]) -> list[dict]:
    """The converted form of each document that still holds a date as a string, or lacks its updated_day."""
    return [new for new, old in ((dates.migrated(doc), doc) for doc in docs) if new != old]


def migrate_dates(db: RunsDB, out=print, batch: int = 1000, every: int = 10_000) -> Progress:
    """Convert every run document's string dates (and add its updated_day).

    Prints a line per `every` runs read and a final count.
    """
    progress = Progress()
    next_line = every
    while True:
        page = db.page_by_id(progress.read, batch)
        if not page:
            break
        converted, left = _convert(db, page)
        progress.read += len(page)
        progress.converted += converted
        progress.left += left
        while progress.read >= next_line:
            out(f"db migrate: {progress.read:,} runs read, {progress.converted:,} converted so far")
            next_line += every
    left = (
        f"; {progress.left:,} kept changing under other writers: run `fulliautomatix db migrate` again"
        if progress.left
        else ""
    )
    out(
        f"db migrate: done: {progress.read:,} runs read, {progress.converted:,} converted to BSON dates, "
        f"{progress.read - progress.converted - progress.left:,} already were{left}"
    )
    return progress
