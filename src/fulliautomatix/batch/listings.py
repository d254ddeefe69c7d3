"""The scheduler's job listings, read by field: ``qstat`` of every PBS flavour, and ``squeue``.

``qstat -f`` (Torque, PBS Pro/OpenPBS, Slurm's Torque wrapper slurm-wlm-torque)
prints every job as a ``Job Id:`` line and one ``key = value`` line per
attribute, a long value continued on lines that start with a tab; PBS Pro
>= 18 and OpenPBS print the same attributes as JSON with ``-F json``
(resources as objects: ``{"Resource_List": {"walltime": ...}}``)::

    Job Id: 4807.pbs01
        Job_Name = fa-261201_0001
        Job_Owner = asterix@login01
        job_state = R
        queue = standby
        Resource_List.walltime = 04:00:00
        Variable_List = PBS_O_HOME=/home/asterix,PBS_O_LOGNAME=asterix,
            PBS_O_WORKDIR=/scratch/asterix       (a tab, then the rest of the value)

Names are whole there (the point of it), and a finished job has its exit
status: Torque's ``exit_status`` and PBS Pro's ``Exit_status`` (see
:func:`walltime_killed`).  ``-f`` lists every user's jobs on PBS Pro (``-u``
turns it into the table below) and on the Slurm wrapper; :func:`ours` keeps
the jobs of our user (``Job_Owner``/``euser``) named with our prefix.
Which ``qstat -f`` a server answers is learned by :mod:`.qstatquery`.

``qstat -u USER`` prints the *alternative* format on Torque, PBS Pro/OpenPBS
and the Slurm wrapper, plain ``qstat`` the brief one (``status_query:
qstat-u``, and whatever a ``qstat -f`` query answers with a table).  Both are
tables: header lines, a rule of dashes, then one row per job::

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
submission, by name only where no id is known.  ``-x`` (finished jobs) is not
used: it means history on PBS Pro, XML on Torque and an error in the Slurm
wrapper; the exit-code file a job writes says how it ended.
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
    owner: str = ""  # user name (qstat -f: Job_Owner without its host, else euser)
    queue: str = ""
    exit_status: int | None = None  # as the scheduler reports it (qstat -f of a job that ended)
    walltime: str = ""  # requested (Resource_List.walltime)
    walltime_used: str = ""  # resources_used.walltime
    timed_out: bool = False  # the scheduler says its walltime killed it (see walltime_killed)


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


def parse_listing(text: str, kind: str, user: str = "", prefix: str = "") -> dict[str, Job]:
    """{id: Job} from `squeue -o %i|%j|%T|%k` (kind "squeue") or whatever qstat printed (kind "qstat").

    qstat's format is read from its output: JSON (``-F json``), the full
    format (``Job Id:`` lines) or a table.  Full and JSON listings keep only
    the jobs :func:`ours` (by user and name prefix, where given).
    """
    if kind == "squeue":
        return parse_squeue(text)
    if text.lstrip().startswith("{"):
        return ours(parse_json(text), user, prefix)
    if any(line.startswith("Job Id:") for line in text.splitlines()):
        return ours(parse_full(text), user, prefix)
    return parse_qstat(text)


def parse_squeue(text: str) -> dict[str, Job]:
    jobs = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0]:
            state = parts[2].split()[0]
            jobs[parts[0]] = Job(
                parts[0], parts[1], state, parts[3] if len(parts) > 3 else "", timed_out=state == "TIMEOUT"
            )
    return jobs


# -- qstat -f and qstat -f -F json ------------------------------------------------------

ATTRIBUTE = re.compile(r"^(\s+)([A-Za-z_][\w.-]*) =(?: (.*))?$")


def parse_full(text: str) -> dict[str, Job]:
    """{id: Job} from ``qstat -f`` (see :func:`full_attributes`)."""
    return {job.id: job for job in (job_of(jid, a) for jid, a in full_attributes(text)) if job.id}


def full_attributes(text: str) -> list[tuple[str, dict[str, str]]]:
    """[(job id, {attribute: value})] from ``qstat -f``: ``Job Id: ID`` then ``<indent>key = value`` lines.

    The first attribute's indent (four blanks on Torque and PBS Pro, a tab in
    the Slurm wrapper) is the job's; any other indented line continues the
    value before it (PBS breaks long values with a newline and a tab, after a
    comma or in the middle of a word, so the pieces join without a blank).
    """
    blocks: list[tuple[str, dict]] = []
    attrs: dict | None = None
    indent = last = None
    for line in text.splitlines():
        if line.startswith("Job Id:"):
            attrs, indent, last = {}, None, None
            blocks.append((line.split(":", 1)[1].strip(), attrs))
            continue
        if not line.strip():
            continue
        if attrs is None:
            raise ListingError(f"qstat printed a line before any 'Job Id:' line: {line.strip()[:80]!r}")
        m = ATTRIBUTE.match(line)
        if m and indent in (None, m.group(1)):
            indent, last = m.group(1), m.group(2)
            attrs[last] = m.group(3) or ""
        elif line[0].isspace() and last is not None:
            attrs[last] += line[1:] if line[0] == "\t" else line.lstrip()
        else:
            raise ListingError(f"qstat printed a line that is no job attribute: {line.strip()[:80]!r}")
    return blocks


def parse_json(text: str) -> dict[str, Job]:
    """{id: Job} from ``qstat -f -F json`` (PBS Pro >= 18, OpenPBS): {"Jobs": {id: {attribute: value}}}."""
    import json

    try:
        data = json.loads(text)
    except ValueError as exc:  # older PBS Pro escaped some values wrongly (openpbs#1255, #2049)
        raise ListingError(f"qstat printed JSON that does not parse ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("Jobs", {}), dict):
        raise ListingError(f"qstat printed JSON without a Jobs object: {text.strip()[:80]!r}")
    jobs = {}
    for jid, attributes in data.get("Jobs", {}).items():
        flat = {}
        for key, value in (attributes or {}).items():
            if isinstance(value, dict):  # resources: Resource_List.walltime as in -f
                flat.update({f"{key}.{k}": _text(v) for k, v in value.items()})
            else:
                flat[key] = _text(value)
        job = job_of(jid, flat)
        if job.id:
            jobs[job.id] = job
    return jobs


def _text(value) -> str:
    """A JSON value as qstat -f prints it (numbers without a fraction, not 1.0)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def job_of(job_id: str, a: dict[str, str]) -> Job:
    """A Job from one job's attributes, as ``qstat -f`` names them."""
    owner = a.get("Job_Owner", "").split("@")[0] or a.get("euser", "").split("(")[0]
    exit_status = a.get("exit_status", a.get("Exit_status", ""))
    job = Job(
        short_id(job_id),
        a.get("Job_Name", ""),
        a.get("job_state", ""),
        owner=owner,
        queue=a.get("queue", ""),
        exit_status=int(exit_status) if _integer(exit_status) else None,
        walltime=a.get("Resource_List.walltime", ""),
        walltime_used=a.get("resources_used.walltime", ""),
    )
    job.timed_out = walltime_killed(job, a)
    return job


def _integer(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+", text.strip()))


def ours(jobs: dict[str, Job], user: str = "", prefix: str = "") -> dict[str, Job]:
    """The jobs of `user` (by Job_Owner or euser, where listed) named ``<prefix>-...``."""
    return {
        k: j
        for k, j in jobs.items()
        if (not user or not j.owner or j.owner == user) and (not prefix or j.name.startswith(prefix + "-"))
    }


# -- walltime kills ----------------------------------------------------------------------

# Exit statuses that mean "killed at its walltime", by the attribute's name (it differs):
#   Torque ``exit_status = -11``: JOB_EXEC_OVERLIMIT_WT, src/include/pbs_job.h, set by the mom's
#     job_over_limit() (src/resmom/mom_main.c); github.com/adaptivecomputing/torque 34ff845.
#   PBS Pro/OpenPBS ``Exit_status = -29``: JOB_EXEC_KILL_WALLTIME, src/include/job.h, set in
#     mom_over_limit() (src/resmom/mom_main.c) since OpenPBS 92b159dd3 (2020-12-01, "Exceeded
#     resources notification"); github.com/openpbs/openpbs cd7ab5e.  There -11 is JOB_EXEC_RERUN.
WALLTIME_EXIT = {"exit_status": -11, "Exit_status": -29}

# What a walltime kill writes to the job's stderr.
#   Slurm: "slurmstepd-<node>: error: *** JOB N ON <node> CANCELLED AT <time> DUE TO TIME LIMIT ***"
#   Torque and PBS Pro/OpenPBS: "=>> PBS: job killed: walltime N exceeded limit M" (the mom's
#     message_job(StdErr) in src/resmom/mom_main.c of both, after "walltime %ld exceeded limit %ld").
WALLTIME_TEXT = re.compile(r"DUE TO TIME LIMIT|PBS: job killed: walltime -?\d+ exceeded limit \d+")


def walltime_killed(job: Job | None, attributes: dict[str, str] | None = None, stderr: str = "") -> bool:
    """Whether the scheduler killed a job at its walltime: by its listing or the job's stderr."""
    if job is not None and (job.timed_out or job.state == "TIMEOUT"):
        return True
    for key, code in WALLTIME_EXIT.items():
        if attributes and _integer(attributes.get(key, "")) and int(attributes[key]) == code:
            return True
    return bool(WALLTIME_TEXT.search(stderr))


# -- tables: qstat -u, -a and the brief format -----------------------------------------------

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
        pair = tuple(w.lower() for _, w in words[i : i + 2])
        take = 2 if pair in TWO_WORD_TITLES else 1
        titles.append(" ".join(w for _, w in words[i : i + take]))
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
