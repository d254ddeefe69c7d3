"""Stage 4: archive one batch of compressed runs, verified (restore is in restore.py).

:func:`archive_batch` is the body of the ``archive_batch`` rule:

1. the batch's runs go ``compressed -> archiving`` (``archive.batch`` names
   the batch, so a retry keeps the same members and name);
2. a tarball already at the batch's location (left by an earlier attempt) is
   used only if it verifies; otherwise it is deleted and replaced;
3. the compressed copies on scratch are checked against their recorded
   sha256 (on the host scratch is on: here, or the cluster's over ssh),
   uploaded by the backend, and the upload read back from the
   archive: every member's size and sha256 must equal the run documents;
4. only then do the runs become ``archived`` with ``raw_location``
   ``<backend>:<tarball>#<run>.tar.zst``, and only after that are the
   compressed copies purged (``archive.purge_compressed``).

Any failure sends the runs back to ``compressed`` with ``archive.error`` set,
keeps every compressed copy, and raises :class:`ArchiveError`; the next tick
retries the same batch.  A tarball that holds runs already archived is never
deleted or overwritten.

Bringing a run back is :func:`fulliautomatix.archive.restore.restore`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import hosts, recovery, stage, states
from ..runsdb import RunsDB
from .backend import ArchiveError, Member, compare, member_name, staging_dir
from .choose import make


def expected_member(doc: dict) -> Member:
    """A run's member as the runs DB recorded it at compression."""
    c = doc.get("compressed") or {}
    if not c.get("hash") or "bytes" not in c:
        raise ArchiveError(f"run {doc['name']}: no compressed size and checksum in the runs DB")
    return Member(int(c["bytes"]), c["hash"])


def verify(be, location: str, expected: dict[str, Member], log) -> dict:
    """Read the tarball back from the archive and compare it with the runs DB.

    Returns what the backend measured (sizes, checks); raises ArchiveError
    naming every difference.
    """
    actual, facts = be.read_back(location, log)
    problems = compare(expected, actual)
    if problems:
        raise ArchiveError(f"{be.url(location)} does not verify: {'; '.join(problems[:3])}")
    if any(m.sha256 is None for m in actual.values()):
        facts["checks"].append("member checksums not read back (archive.hpss.read_back is off)")
    log.write(f"verified {be.url(location)}: {len(actual)} members, " + "; ".join(facts["checks"]) + "\n")
    return facts


# Prints "H <size> <sha256> <path>" for each file argument, "X <path>" where it is missing,
# or "L <path>" where it is a symbolic link (not read: nothing outside scratch is archived).
SOURCES = r"""
for f; do
  if [ -L "$f" ]; then
    printf 'L %s\n' "$f"
  elif [ -f "$f" ]; then
    s=$(sha256sum < "$f") || exit 4
    printf 'H %s %s %s\n' "$(stat -c %s -- "$f")" "${s%% *}" "$f"
  else
    printf 'X %s\n' "$f"
  fi
done
"""


def source_cluster(config: dict, docs: list[dict]) -> str:
    """The cluster holding the compressed copies of these runs (as compress recorded it)."""
    names = {(d.get("compressed") or {}).get("cluster") or config["tick"]["cluster"] for d in docs}
    if len(names) > 1:
        raise ArchiveError(
            f"the runs' compressed copies are on different clusters ({', '.join(sorted(names))}); "
            "a batch is built on one"
        )
    name = names.pop() if names else config["tick"]["cluster"]
    if name not in config["clusters"]:
        raise ArchiveError(f"cluster {name} of the compressed copies is not in the config")
    return name


def source_host(config: dict, docs: list[dict]) -> hosts.Host:
    """The host holding the compressed copies of these runs (their cluster's)."""
    return hosts.Host.from_config(config["clusters"][source_cluster(config, docs)], hosts.control_dir(config))


def check_sources(source: hosts.Host, files: dict[str, Path], expected: dict[str, Member], log) -> dict[str, str]:
    """Which compressed copies on scratch are no longer what the runs DB recorded: {member: why}.

    Checked on their host.  A copy that is a symbolic link is refused for the whole batch (ArchiveError).
    """
    try:
        res = source.run(["bash", "-c", SOURCES, "fa-check-sources", *map(str, files.values())], log=log)
    except (hosts.CommandFailed, OSError) as exc:
        raise ArchiveError(f"cannot check the compressed copies on {source.name}: {exc}") from None
    found, links = {}, set()
    for line in res.stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "H":
            size, digest, path = rest.split(" ", 2)
            found[path] = (int(size), digest)
        elif kind == "L":
            links.add(rest)
    bad = {}
    for member, path in files.items():
        if str(path) in links:
            raise ArchiveError(
                f"compressed copy {path} is a symbolic link: refused, nothing outside scratch is "
                "archived as run data; replace the link by the real file"
            )
        if str(path) not in found:
            bad[member] = f"its compressed copy {source.path(str(path))} is gone"
        elif found[str(path)] != (expected[member].size, expected[member].sha256):
            bad[member] = f"its compressed copy {source.path(str(path))} differs from its recorded sha256"
    log.write(
        f"checked {len(files)} compressed copies against their recorded sha256 on {source.name}: {len(bad)} bad\n"
    )
    return bad


def _sound_members(
    db: RunsDB, config: dict, batch: str, current: dict[str, dict], source: hosts.Host, files: dict[str, Path], log
) -> list[str]:
    """The batch's runs whose compressed copy still verifies; the others leave it (a warning line each).

    Also makes archive.staging with the transfer's group and mode.  Raises
    ArchiveError when no run is left.
    """
    try:
        hosts.make_dirs(source, [str(staging_dir(config))], config["transfer"], log=log)
    except hosts.CommandFailed as exc:
        raise ArchiveError(f"cannot make archive.staging {source.path(str(staging_dir(config)))}: {exc}") from None
    expected = {member_name(run): expected_member(d) for run, d in current.items()}
    try:
        bad = check_sources(source, files, expected, log)
    except ArchiveError as exc:  # a copy that is a link, or scratch unreachable: the whole batch waits
        for run, doc in current.items():
            db.update(run, {"archive.error": str(exc)}, doc=doc)
        raise ArchiveError(
            f"batch {batch} ({', '.join(current)}): {exc}; the runs stay compressed, their "
            "compressed copies are kept, and the next tick retries"
        ) from None
    dropped = _drop_bad_copies(db, config, current, bad, log)
    members = [run for run in current if run not in dropped]
    if not members:
        raise ArchiveError(f"batch {batch}: " + "; ".join(dropped.values()))
    for line in dropped.values():
        print(f"fulliautomatix warning: {line}", file=sys.__stderr__)
    return members


def _drop_bad_copies(db: RunsDB, config: dict, docs: dict[str, dict], bad: dict[str, str], log) -> dict[str, str]:
    """Take the runs whose compressed copy went bad out of the batch (recovery.recover); {run: its line}."""
    lines = {}
    for run, doc in docs.items():
        why = bad.get(member_name(run))
        if why is None:
            continue
        leave = {"archive.batch": None}
        line = recovery.recover(db, config, doc, why, log, reprocess=False, fields=leave)
        if line is None:
            attempts = int((doc.get("compressed") or {}).get("attempts") or 0) + 1
            db.update(run, {**leave, "compressed.error": why, "compressed.attempts": attempts}, doc=doc)
            line = (
                f"run {run}: {why}, and its DAQ copy cannot be checked now; it leaves the batch and a later "
                f"tick tries again ({attempts} of {config['compression']['max_attempts']} attempts)"
            )
        lines[run] = line
        log.write(f"{line}\n")
    return lines


def _members_now(db: RunsDB, config: dict, members: list[str], compressed_markers: list[str]) -> dict[str, dict]:
    """{run: its newest document}: the tick's snapshots, brought up to their compressed markers (a lost write)."""
    for run in members:
        hosts.check_run_name(run, config["run_name_pattern"])
    current = {run: stage.take(db, config, run) for run in members}
    for m in compressed_markers:
        run = Path(m).stem
        if run in current:
            current[run] = stage.replay(db, config, m, current[run])
    return current


def _archived_earlier(db: RunsDB, batch: str, members: list[str]) -> list[dict]:
    """The batch's runs archived by an earlier attempt (a tick that died half way): part of its tarball too.

    A run assigned to the batch, not archived and not in this tick's plan, is an error.
    """
    earlier = [d for d in db.in_batch(batch) if d["name"] not in members]
    stray = [d["name"] for d in earlier if d.get(states.RAW) != "archived"]
    if stray:
        raise ArchiveError(
            f"batch {batch}: runs {', '.join(stray)} belong to it but are not in this tick's "
            "plan; run a tick without --run"
        )
    return earlier


def archive_batch(
    db: RunsDB, config: dict, batch: str, members: list[str], compressed_markers: list[str], marker_path: str, log
) -> dict:
    """Archive one batch; write its marker; return the marker.  See the module docstring.

    The skeleton of every stage (fulliautomatix.stage), for a batch: the
    runs' snapshots, one bulk write claiming them, the upload verified, the
    marker, one bulk write recording them.
    """
    current = _members_now(db, config, members, compressed_markers)
    be = make(config)
    earlier = _archived_earlier(db, batch, members)
    expected = {member_name(d["name"]): expected_member(d) for d in earlier}
    source = source_host(config, list(current.values()))
    files = {member_name(run): Path((d.get("compressed") or {}).get("path") or "") for run, d in current.items()}
    if not earlier:  # (a batch with archived runs has its tarball already: it is verified, not rebuilt)
        members = _sound_members(db, config, batch, current, source, files, log)
        files = {m: f for m, f in files.items() if m in {member_name(r) for r in members}}
    for run in members:
        expected[member_name(run)] = expected_member(current[run])
    docs = db.transition_many(
        {run: current[run] for run in members},
        states.RAW,
        "archiving",
        {
            run: {
                "archive.batch": batch,
                "archive.error": None,
                "archive.attempts": stage.attempt_of(current[run], "archive"),
            }
            for run in members
        },
        expect=("compressed", "archiving"),
    )
    stage.keep_all(config, docs.values())
    try:
        location, facts = _store(be, batch, expected, earlier, source, files, log)
    except ArchiveError as exc:
        for run in members:
            stage.give_back(
                db, config, docs[run], states.RAW, "compressed", {"archive.error": str(exc)}, "archive failed"
            )
        raise ArchiveError(
            f"batch {batch} ({', '.join(members)}): {exc}; the runs stay compressed, their "
            "compressed copies are kept, and the next tick retries"
        ) from None
    marker = _batch_marker(be, batch, location, facts, expected, docs)
    newest = stage.record(db, config, marker, marker_path, docs, "archived and verified", log)
    # The marker records the verified tarball, so the compressed copies may go now.
    if config["archive"]["purge_compressed"]:
        purged = purge_compressed(db, config, members, files, source, log, docs=newest or docs)
        log.write(f"batch {batch} verified at {be.url(location)}; purged {len(purged)} compressed copies\n")
    return marker


def _batch_marker(
    be, batch: str, location: str, facts: dict, expected: dict[str, Member], docs: dict[str, dict]
) -> dict:
    """The archived batch's marker: each run's archive sub-document and raw_location."""
    verified_at = states.now()
    runs = {}
    for run, doc in docs.items():
        m = member_name(run)
        runs[run] = {
            "raw_location": f"{be.url(location)}#{m}",
            "archive": {
                "batch": batch,
                "backend": be.name,
                "host": be.host_name,
                "tarball": location,
                "member": m,
                "bytes": expected[m].size,
                "hash": expected[m].sha256,
                "tarball_bytes": facts.get("tarball_bytes"),
                "tarball_sha256": facts.get("tarball_sha256"),
                "checks": facts["checks"],
                "verified": verified_at,
                "error": None,
                "attempts": doc["archive"]["attempts"],
            },
        }
    return {"batch": batch, "location": location, "backend": be.name, "runs": runs, "verified": verified_at}


def _store(
    be, batch: str, expected: dict[str, Member], earlier: list[dict], source: hosts.Host, files: dict[str, Path], log
) -> tuple[str, dict]:
    """The batch's verified tarball: one an earlier attempt left, or a new upload; (location, facts)."""
    location = be.tarball(batch)
    if be.exists(location, log):
        try:
            facts = verify(be, location, expected, log)
            log.write(f"an earlier attempt left {be.url(location)} and it verifies: using it\n")
            return location, facts
        except ArchiveError as exc:
            if earlier:
                raise ArchiveError(
                    f"{exc}, and it holds archived runs "
                    f"({', '.join(d['name'] for d in earlier)}): left untouched for a human"
                ) from None
            log.write(f"not trusted, replacing it: {exc}\n")
            be.discard(location, log)
    elif earlier:
        raise ArchiveError(
            f"{be.url(location)} is missing, but runs {', '.join(d['name'] for d in earlier)} were archived in it"
        )
    upload = be.upload(batch, list(files.values()), log, source=source)
    try:
        facts = verify(be, upload, expected, log)
    except ArchiveError:
        try:
            be.discard(upload, log)  # never trusted, replaced by the next attempt
        except ArchiveError as exc:
            log.write(f"could not delete the untrusted tarball: {exc}\n")
        raise
    return be.promote(upload, batch, log), facts


def purge_compressed(
    db: RunsDB,
    config: dict,
    members: list[str],
    files: dict[str, Path],
    source: hosts.Host,
    log,
    docs: dict[str, dict] | None = None,
) -> list[str]:
    """Delete the archived runs' compressed copies on scratch; the runs whose copy went.

    Only <scratch>/compressed/<run>.tar.zst of the copies' cluster, each a
    regular file there and not a link (hosts.remove_files); a copy recorded
    anywhere else, or a link, is kept and the log says why.  `docs`: the
    runs' newest documents ({run: document}; read here without them).
    """
    docs = docs or {run: db.get(run) for run in members}
    cluster = source_cluster(config, list(docs.values()))
    root = str(Path(config["clusters"][cluster]["scratch"]) / "compressed")  # as compress.paths makes it
    runs = [run for run in members if str(files[member_name(run)]) == f"{root}/{member_name(run)}"]
    for run in set(members) - set(runs):
        log.write(f"kept the compressed copy {files[member_name(run)]}: it is not in {root} of cluster {cluster}\n")
    try:
        hosts.remove_files(source, root, [member_name(run) for run in runs], log=log)
    except hosts.CommandFailed as exc:
        advice = f"; {exc.advice}, then delete them by hand" if isinstance(exc, hosts.Unsafe) else ""
        log.write(f"kept the compressed copies on {source.name}: {exc}{advice}\n")
        return []
    if runs:
        try:
            db.update_many({run: docs[run] for run in runs}, {"archive.purged": states.now()})  # one bulk write
            stage.keep_all(config, [docs[run] for run in runs])
        except Exception as exc:  # noqa: BLE001 - the copies are gone; the log says the DB did not hear it
            log.write(f"runs {', '.join(runs)}: could not record the purge ({exc})\n")
    return runs
