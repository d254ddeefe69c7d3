"""Which ``qstat -f`` a PBS server answers (``status_query: qstat``), learned once a day per work dir.

One query per poll round.  The queries, in the order they are tried; the
first answer that reads is the round's listing (:func:`listings.parse_listing`
reads any of the formats, and keeps our jobs):

1. ``qstat -f -F json``: PBS Pro >= 18 and OpenPBS print JSON (``-F json``
   cannot be combined with ``-u`` there: every user's jobs).  Torque and the
   Slurm wrapper refuse the option (``Unknown option: F`` and a usage text,
   exit 2); JSON that does not parse (older PBS Pro mis-escaped some values,
   openpbs#1255, openpbs#2049) is passed over as well.
2. ``qstat -f -u USER``: Torque >= 4.2.3 prints the full format of USER's
   jobs (its client filters by ``Job_Owner``; AC-4813).  PBS Pro and the
   Slurm wrapper print the alternative *table* for ``-u`` (names cut to their
   column): that answer is read, and the next rounds ask 3.
3. ``qstat -f``: every user's jobs in the full format.  The Slurm wrapper
   exits 153 and prints nothing when the cluster has no job at all: that is
   "no jobs", as every other flavour's empty answer is.

A query refused with a usage text is passed over (so is a JSON query that
printed nothing: PBS Pro prints its ``timestamp`` object even for no jobs); any
other failure ends the round (the scheduler is not answering: no job is taken for ended).  The query
that answered is remembered in ``state/qstat-query.json`` and tried first for
a day, then the order is tried again (a server may have been upgraded).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from .. import markers
from .listings import Job, ListingError, parse_listing

LEARNED = Path("state") / "qstat-query.json"
RELEARN_SECONDS = 86400
QUERIES = ("json", "full-user", "full")
NO_JOBS_EXIT = 153  # the Slurm wrapper's qstat when it printed no job (Torque's PBSE_UNKJOBID & 0xff)
REFUSED = re.compile(r"usage|option", re.IGNORECASE)


def argv(query: str, user: str) -> list[str]:
    return {"json": ["qstat", "-f", "-F", "json"], "full-user": ["qstat", "-f", "-u", user], "full": ["qstat", "-f"]}[
        query
    ]


def learned(work_dir: Path | str) -> tuple[str, bool]:
    """(the query to try first, whether that was learned less than a day ago)."""
    try:
        data = markers.read(Path(work_dir) / LEARNED)
        if data["query"] in QUERIES and time.time() - float(data["at"]) < RELEARN_SECONDS:
            return data["query"], True
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return QUERIES[0], False


def listing(
    run: Callable[[list[str]], subprocess.CompletedProcess], work_dir: Path | str, user: str, prefix: str
) -> dict[str, Job]:
    """Our jobs from the first query of QUERIES (from the learned one on) that answers readably."""
    first, fresh = learned(work_dir)
    passed_over: list[str] = []
    for query in QUERIES[QUERIES.index(first) :]:
        args = argv(query, user)
        proc = run(args)
        last = query == QUERIES[-1]
        if proc.returncode != 0 and not _no_jobs(proc):
            why = f"{shlex.join(args)} exited with {proc.returncode}: {_oneline(proc.stderr)}"
            if REFUSED.search(proc.stderr) and not last:
                passed_over.append(why)
                continue
            raise ListingError(why + _also(passed_over))
        if query == "json" and not proc.stdout.strip():  # PBS Pro prints {"timestamp": ...} even for no jobs
            passed_over.append(f"{shlex.join(args)} printed nothing")
            continue
        try:
            jobs = parse_listing(proc.stdout, "qstat", user, prefix)
        except ListingError as exc:
            if query == "json" and not last:
                passed_over.append(f"{shlex.join(args)}: {exc}")
                continue
            raise ListingError(f"{shlex.join(args)}: {exc}{_also(passed_over)}") from None
        answered = "full" if query == "full-user" and _table(proc.stdout) else query
        if answered != first or not fresh:
            markers.write(
                Path(work_dir) / LEARNED,
                {"query": answered, "at": time.time(), "argv": argv(answered, user), "passed_over": passed_over},
            )
        return jobs
    raise ListingError("no qstat query to try")  # not reached: the last query returns or raises


def _no_jobs(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == NO_JOBS_EXIT and not proc.stdout.strip() and not proc.stderr.strip()


def _table(text: str) -> bool:
    """Whether qstat answered with a table (not the full format, not JSON, not nothing)."""
    lines = text.splitlines()
    return (
        bool(text.strip())
        and not text.lstrip().startswith("{")
        and not any(line.startswith("Job Id:") for line in lines)
    )


def _oneline(text: str) -> str:
    return " ".join(text.split())[:200]


def _also(passed_over: list[str]) -> str:
    return f" (passed over: {'; '.join(passed_over)})" if passed_over else ""
