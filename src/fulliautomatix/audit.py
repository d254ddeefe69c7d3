"""`fulliautomatix audit`: the archive's fixity check, and what no run document accounts for.

* **Fixity.** Archived runs are read back from the archive (one read-back per
  tarball, through the run's own backend: local, rsync or hpss), oldest
  audits first, and each member's sha256 is compared with the one recorded
  when it was archived.  Every run checked records ``archive.audited``
  (``{at, ok, error}``); a member that no longer verifies also sets
  ``archive.copy_ok`` false with the reason, so ``status`` lists it as
  ``LOST-COPY`` until an audit or a restore verifies it again.
* **Strays.** Entries in the DAQ directory, in ``<scratch>/raw``,
  ``<scratch>/compressed`` and ``<scratch>/processed``, and tarballs in the
  archive's location that no run document claims; and run documents whose
  recorded copy is missing (a kept DAQ copy, a copy on scratch, a compressed
  copy, an archived tarball).  They are listed, never deleted.
* **Each tick** (the ``audit_archive`` rule, :func:`tick_audit`) reads back
  ``audit.per_tick`` archived runs, the ones checked longest ago first.  They
  are picked by walking the run numbers round-robin from a cursor kept in
  ``<state>/audit_cursor.json``: one range query on the ``number`` index,
  sorted on that index and limited (1 ms on nx-27017 at 30,000 runs, where an
  equality on ``raw_status: archived`` reads every archived run: 1.8 s).
  Every audit moves the cursor on, so the runs just ahead of it are the ones
  audited longest ago (a run archived since is reached before the cursor
  wraps, so it waits at most one round).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from . import archive, hosts, markers, states, transfer
from .archive import hpss
from . import config as fa_config
from .runsdb import RunsDB

# Lists the entries of "$1" NUL-separated (nothing when it does not exist).
LIST = 'cd -- "$1" 2>/dev/null || exit 0; find . -mindepth 1 -maxdepth 1 -printf "%P\\0"'


@dataclass
class Findings:
    checked: int = 0  # runs whose archived member was read back
    bad: list[str] = field(default_factory=list)  # one line per run whose archived copy no longer verifies
    strays: list[str] = field(default_factory=list)  # entries no run document claims
    missing: list[str] = field(default_factory=list)  # run documents whose recorded copy is missing
    unreachable: list[str] = field(default_factory=list)  # tarballs the archive could not be asked about now

    def lines(self) -> list[str]:
        return (
            [f"LOST-COPY {ln}" for ln in self.bad]
            + [f"STRAY {ln}" for ln in self.strays]
            + [f"MISSING {ln}" for ln in self.missing]
            + [f"NOT-AUDITED {ln}" for ln in self.unreachable]
            + [
                f"audited {self.checked} archived runs: {len(self.bad)} do not verify; {len(self.strays)} "
                f"strays; {len(self.missing)} recorded copies missing"
            ]
        )


def _entries(host: hosts.Host, directory: str) -> list[str]:
    return [e for e in host.run(["bash", "-c", LIST, "fa-list", directory]).stdout.split("\0") if e]


def _audit_tarball(db: RunsDB, config: dict, docs: list[dict], found: Findings, log) -> None:
    """Read one tarball back and record each of its runs' audit."""
    a = docs[0]["archive"]
    be = archive.make(config, name=a.get("backend"), host=a.get("host"))
    try:
        members, _ = be.read_back(a["tarball"], log)
        error = None
    except archive.ArchiveError as exc:
        members, error = {}, f"cannot be read back: {exc}"
        if _archive_unreachable(be, a["tarball"], log):
            # An archive that is down (an HPSS outage) says nothing about the copy: no LOST-COPY alarm
            # (a false critical one would teach operators to ignore it); a later audit reads them.
            found.unreachable.append(
                f"{be.url(a['tarball'])} ({', '.join(d['name'] for d in docs)}): {exc}; "
                "the archive did not answer, so the next audit tries again"
            )
            return
    for doc in docs:
        rec = doc["archive"]
        got = members.get(rec.get("member"))
        why = error or (
            "its member is missing"
            if got is None
            else None
            if got.sha256 in (None, rec.get("hash")) and got.size == rec.get("bytes")
            else "its member differs from the recorded size and sha256"
        )
        fields = {"archive.audited": {"at": states.now(), "ok": why is None, "error": why}}
        if why:
            line = f"run {doc['name']}: the archived copy {be.url(rec['tarball'])}#{rec.get('member')} {why}"
            fields.update({"archive.copy_ok": False, "archive.copy_error": f"audit: {line}"})
            found.bad.append(line)
        elif rec.get("copy_ok") in (False,):  # (nx-27017 gives a false it stored back as 0)
            fields.update({"archive.copy_ok": True, "archive.copy_error": None})
        db.update(doc["name"], fields, doc=doc)
        found.checked += 1


def _archive_unreachable(be, location: str, log) -> bool:
    """True when the archive cannot say whether `location` exists (as opposed to: it is gone, or unreadable)."""
    try:
        be.exists(location, log)
    except archive.ArchiveError:
        return True
    return False


def fixity(db: RunsDB, config: dict, limit: int, found: Findings, log, runs: list[dict] = ()) -> None:
    """Read back up to `limit` archived runs (the documents `runs`, else the ones audited longest ago first)."""
    docs = list(runs) or db.by_status(states.RAW, ["archived"], {"history": 0})
    docs = sorted(docs, key=lambda d: str(((d.get("archive") or {}).get("audited") or {}).get("at") or ""))[:limit]
    by_tarball: dict[tuple, list[dict]] = {}
    for d in docs:
        a = d.get("archive") or {}
        if a.get("tarball"):
            by_tarball.setdefault((a.get("backend"), a.get("host"), a["tarball"]), []).append(d)
    for group in by_tarball.values():
        _audit_tarball(db, config, group, found, log)


def strays(db: RunsDB, config: dict, found: Findings) -> None:
    """What is on the DAQ, scratch and archive that no run document claims, and recorded copies that are gone."""
    docs = {d["name"]: d for d in db.copies() if isinstance(d.get("name"), str)}
    daq, cluster = transfer.daq_host(config), transfer.cluster_host(config)
    scratch = fa_config.cluster(config)["scratch"].rstrip("/")
    places = [
        (daq, config["daq"]["raw_dir"], lambda e: e),
        (cluster, f"{scratch}/raw", lambda e: e),
        (cluster, f"{scratch}/processed", lambda e: e),
        (cluster, f"{scratch}/compressed", lambda e: e[: -len(".tar.zst")] if e.endswith(".tar.zst") else e),
    ]
    for host, directory, run_of in places:
        for entry in _entries(host, directory):
            if entry.startswith("."):
                continue  # work in progress (.incoming, .<run>.writing, partial files)
            if run_of(entry) not in docs:
                found.strays.append(f"{host.path(directory.rstrip('/') + '/' + entry)}: no run document claims it")
    _archive_strays(config, docs, found)
    _missing_copies(config, docs, daq, cluster, found)


def _archive_listing(be) -> set[str]:
    """The file names in the archive's location: ``hsi ls -l`` for hpss, else ``find`` on its host."""
    if be.name != "hpss":
        return set(_entries(be.host, be.root))
    proc = be.hsi(["ls", "-l", be.root], archive.DebugLog())
    if proc.returncode != 0 and "HPSS_ENOENT" in proc.stderr:
        return set()  # nothing archived yet
    if proc.returncode != 0:
        raise archive.ArchiveError(
            f"hsi cannot list {be.root} (exit {proc.returncode}): "
            f"{(proc.stderr.strip().splitlines() or ['no message'])[0]}"
        )
    return set(hpss.parse_ls(proc.stderr + proc.stdout))


def _archive_strays(config: dict, docs: dict[str, dict], found: Findings) -> None:
    """Tarballs in archive.location that no run records, and recorded tarballs there that are gone
    (every backend: local and rsync through find on the archive host, hpss through hsi)."""
    be = archive.make(config)
    try:
        listed = _archive_listing(be)
    except (archive.ArchiveError, hosts.CommandFailed) as exc:
        found.unreachable.append(
            f"{be.url(be.root)}: cannot be listed ({exc}); strays and missing tarballs "
            "there are not checked; the next audit tries again"
        )
        return
    recorded = {}
    for name, d in docs.items():
        a = d.get("archive") or {}
        if a.get("tarball") and (a.get("backend") or "local") == be.name and a["tarball"].rsplit("/", 1)[0] == be.root:
            recorded.setdefault(a["tarball"].rsplit("/", 1)[1], []).append((name, d))
    for entry in sorted(listed):
        if entry.endswith(".tar") and entry not in recorded and not entry.startswith("."):
            found.strays.append(f"{be.url(be.root + '/' + entry)}: no run document records this tarball")
    for entry, runs in sorted(recorded.items()):
        for name, d in runs:
            if entry not in listed and d.get(states.RAW) == "archived":
                found.missing.append(f"run {name}: its archived tarball {be.url(be.root + '/' + entry)} is missing")


def _missing_copies(config: dict, docs: dict[str, dict], daq: hosts.Host, cluster: hosts.Host, found: Findings) -> None:
    checks = []  # (host, path, line)
    for name, d in sorted(docs.items()):
        raw = d.get(states.RAW)
        t, c = d.get("transfer") or {}, d.get("compressed") or {}
        if t.get("daq_copy") == "kept":
            checks.append((daq, transfer.locations(config, name)["source"], f"run {name}: its DAQ copy"))
        if raw == "ondeck" and t.get("destination"):
            checks.append((cluster, t["destination"], f"run {name}: its copy on scratch"))
        if raw in ("compressed", "archiving") and c.get("path"):
            checks.append((cluster, c["path"], f"run {name}: its compressed copy"))
    script = 'for p; do [ -e "$p" ] || printf "%s\\0" "$p"; done'
    for host in {h for h, _, _ in checks}:
        paths = [(p, line) for h, p, line in checks if h == host]
        for i in range(0, len(paths), 500):  # within any command line's length
            chunk = paths[i : i + 500]
            gone = set(host.run(["bash", "-c", script, "fa-exists", *[p for p, _ in chunk]]).stdout.split("\0"))
            found.missing += [f"{line} {host.path(p)} is missing" for p, line in chunk if p in gone]


def audit(db: RunsDB, config: dict, limit: int, log, runs: list[dict] = ()) -> Findings:
    """The fixity check of `runs` (archived runs' documents, as the operator named them), else of the runs
    audited longest ago and the strays."""
    found = Findings()
    fixity(db, config, limit, found, log, runs)
    if not runs:
        strays(db, config, found)
    return found


def _cursor_path(config: dict) -> Path:
    return Path(fa_config.state_dir(config)) / "audit_cursor.json"


def _read_cursor(config: dict) -> int:
    try:
        return int(json.loads(_cursor_path(config).read_text())["number"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0  # none yet, or unreadable: start a round from the first run


def due_for_audit(db: RunsDB, config: dict, count: int, page: int = 50) -> list[dict]:
    """Up to `count` archived runs, the ones audited longest ago first (round-robin on run numbers).

    Pages of :meth:`RunsDB.after_number <fulliautomatix.queries.RunsQueries.after_number>`
    (a range on the number index; see the module's docstring); runs not
    archived are skipped here.
    """
    start = cursor = _read_cursor(config)
    picked: dict[str, dict] = {}
    wrapped = False
    while len(picked) < count:
        docs = db.after_number(cursor, page)
        if not docs:
            if wrapped or start == 0:
                break
            cursor, wrapped = 0, True
            continue
        for doc in docs:
            if wrapped and doc["number"] > start:
                break  # a whole round: every archived run is picked already
            cursor = doc["number"]
            if doc.get(states.RAW) == "archived" and (doc.get("archive") or {}).get("tarball"):
                picked.setdefault(str(doc.get("name")), doc)
                if len(picked) == count:
                    break
        else:
            continue
        break
    markers.write(_cursor_path(config), {"number": cursor})
    return list(picked.values())


def tick_audit(db: RunsDB, config: dict, record_path: str, log) -> list[str]:
    """The audit_archive rule: read back audit.per_tick archived runs; their LOST-COPY lines (warnings)."""
    found = Findings()
    docs = due_for_audit(db, config, int(config["audit"]["per_tick"]))
    by_tarball: dict[tuple, list[dict]] = {}
    for d in docs:
        a = d["archive"]
        by_tarball.setdefault((a.get("backend"), a.get("host"), a["tarball"]), []).append(d)
    for group in by_tarball.values():
        _audit_tarball(db, config, group, found, log)
    markers.write(record_path, {"audited": [d["name"] for d in docs], "bad": found.bad})
    log.write(
        f"audited {found.checked} archived runs: {', '.join(d['name'] for d in docs) or 'none'}; "
        f"{len(found.bad)} do not verify\n"
    )
    for line in found.unreachable:
        log.write(f"not audited: {line}\n")
    return found.bad
