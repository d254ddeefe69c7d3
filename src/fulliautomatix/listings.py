"""The scheduler's job listings, read by column name: ``qstat`` (every PBS flavour) and ``squeue``.

``qstat -u USER`` prints the *alternative* format on Torque, PBS Pro/OpenPBS
and Slurm's Torque wrapper (slurm-wlm-torque), plain ``qstat`` the brief one.
Both are tables: header lines, a rule of dashes, then one row per job::

                                                                   Req'd  Req'd   Elap
    Job ID          Username Queue    Jobname    SessID NDS TSK Memory Time  S Time
    --------------- -------- -------- ---------- ------ --- --- ------ ----- - -----
    1234.pbs01      asterix  standby  fa-261201*  40123   1   1    2gb 04:00 R 00:10

Columns are found by the header line right above the rule (``Job ID``,
``Name``/``Jobname``, ``S``), wherever a flavour puts them; indented lines (the
``Req'd``/``Elap`` line above, ``-n``/``-s`` lines below a job), the server's
``name:`` line and blank lines are not jobs.  Job ids lose their server part
(``1234.pbs01`` -> ``1234``).  qstat cuts job names to its column: PBS Pro to
10 characters ending in ``*``, Torque's ``-a`` format to 16, the Slurm wrapper
to 20, Torque's brief format keeps the tail after ``...``; such a name is
marked ``partial`` and is only ever matched as the part of a name it is
(:func:`name_fits`).  Jobs are therefore recognised by the job id recorded at
submission, by name only where no id is known.

Why not ``qstat -f`` (every attribute, full names) or ``-x`` (finished jobs)?
``-f`` cannot be limited to one user on Torque or PBS Pro (``-u`` belongs to
the alternative format; the Slurm wrapper even answers ``-f -u`` in it), so it
would list every user's jobs in ~20 lines each; and ``-x`` means finished jobs
on PBS Pro, XML on Torque, and an error in the Slurm wrapper.  Finished jobs
are not needed: the exit-code file a job writes says how it ended.  So the one
query per poll round is ``qstat -u USER``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ListingError(ValueError):
    """Output the parser cannot read: never taken for "no jobs"."""


@dataclass
class Job:
    id: str
    name: str
    state: str
    comment: str = ""
    partial: bool = False  # the listing may have cut the name (see name_fits)


def short_id(job_id: str) -> str:
    """'123.server' -> '123' (PBS ids carry the server name; a cut one ends in '*')."""
    return str(job_id).strip().rstrip("*").split(".")[0]


def name_fits(job: Job, name: str) -> bool:
    """Whether a listed job's name is `name`, or could be it cut to the listing's column."""
    if not job.partial:
        return job.name == name
    if job.name.startswith("..."):  # Torque's brief format keeps the tail
        return len(job.name) > 3 and name.endswith(job.name[3:])
    shown = job.name.rstrip("*")
    return bool(shown) and name.startswith(shown)


def parse_listing(text: str, kind: str) -> dict[str, Job]:
    """{id: Job} from `squeue -o %i|%j|%T|%k` (kind "squeue") or any qstat table (kind "qstat")."""
    return parse_squeue(text) if kind == "squeue" else parse_qstat(text)


def parse_squeue(text: str) -> dict[str, Job]:
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0]:
            jobs[parts[0]] = Job(parts[0], parts[1], parts[2].split()[0], parts[3] if len(parts) > 3 else "")
    return jobs


RULE = re.compile(r"^-+( +-+)+ *$")
# Column titles of two words (the header is split on blanks).
TWO_WORD_TITLES = {("job", "id"), ("time", "use"), ("%", "done")}
ID_TITLES, NAME_TITLES, STATE_TITLES = {"job id"}, {"name", "jobname"}, {"s"}


@dataclass
class Table:
    """One header block of a qstat listing: where its columns are."""

    spans: list[tuple[int, int]]  # each column's dashes: [start, end)
    id: int
    name: int | None
    state: int

    @classmethod
    def read(cls, header: str, rule: str) -> Table:
        spans = [(m.start(), m.end()) for m in re.finditer(r"-+", rule)]
        titles = column_titles(header, spans)
        index = {t.lower(): i for i, t in reversed(list(enumerate(titles)))}

        def find(names):
            return next((index[n] for n in names if n in index), None)

        jid, name, state = find(ID_TITLES), find(NAME_TITLES), find(STATE_TITLES)
        if jid is None or state is None:
            raise ListingError(f"qstat printed a table without a job id and a state column: {header.strip()!r}")
        return cls(spans, jid, name, state)

    def job(self, line: str) -> Job | None:
        values = line.split()
        if len(values) != len(self.spans):  # a value with blanks in it: cut the row at the rule's columns
            starts = [s for s, _ in self.spans[1:]] + [None]
            values = [line[s:e].strip() for (s, _), e in zip(self.spans, starts)]
        jid = short_id(values[self.id])
        if not jid:
            return None
        name = values[self.name] if self.name is not None else ""
        width = self.spans[self.name][1] - self.spans[self.name][0] if self.name is not None else 0
        partial = name.endswith("*") or name.startswith("...") or len(name) >= width
        return Job(jid, name.rstrip("*"), values[self.state], partial=partial)


def column_titles(header: str, spans: list[tuple[int, int]]) -> list[str]:
    """The header's titles, one per column of the rule below it.

    Titles are words, or two words where a flavour names a column so
    (``Job ID``, ``Time Use``): matched in order, since the Slurm wrapper's
    ``Time Use`` overflows its column and shifts the titles after it.  Where
    that does not give one title per column, each word belongs to the column
    it starts in.
    """
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", header)]
    titles, i = [], 0
    while i < len(words):
        pair = tuple(w.lower() for _, w in words[i:i + 2])
        take = 2 if pair in TWO_WORD_TITLES else 1
        titles.append(" ".join(w for _, w in words[i:i + take]))
        i += take
    if len(titles) == len(spans):
        return titles
    by_column = [[] for _ in spans]
    for start, word in words:
        column = max([k for k, (s, _) in enumerate(spans) if s <= start] or [0])
        by_column[column].append(word)
    return [" ".join(w) for w in by_column]


def parse_qstat(text: str) -> dict[str, Job]:
    """{id: Job} from qstat's brief or alternative (-a, -u, -i, -r) format, of any flavour."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if i > 0 and RULE.match(line)]
    headers = set()
    for r in rules:  # the title line, and the indented lines above it (Req'd, Elap, Est)
        k = r - 1
        headers.add(k)
        while k > 0 and lines[k - 1].strip() and lines[k - 1][0].isspace():
            k -= 1
            headers.add(k)
    jobs, table = {}, None
    for i, line in enumerate(lines):
        if i in rules:
            table = Table.read(lines[i - 1], line)
        elif i in headers or not line.strip() or line[0].isspace() or line.split()[0].endswith(":"):
            continue  # titles, blank lines, a job's node or comment lines, the server's "name:" line
        elif table is None:
            raise ListingError(f"qstat printed a job line before any column header: {line.strip()[:80]!r}")
        elif (job := table.job(line)) is not None:
            jobs[job.id] = job
    return jobs
