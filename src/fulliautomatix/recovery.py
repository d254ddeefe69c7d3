"""A copy that stopped verifying: transfer the run again from an intact DAQ copy, or hold it as lost.

Two stages find such a copy, and neither retries it forever:

* compression's read-back: the plain copy on scratch no longer matches the
  checksums recorded at its transfer (corrupted after it verified), or it is
  gone before any compressed copy exists;
* the archive stage's source check (and a compressed run whose marker was
  lost): the compressed copy on scratch is gone or differs from its sha256.

Then the DAQ copy is checked on the DAQ machine against the checksums recorded
at the transfer (:func:`daq_copy`).  If it still verifies, :func:`start_over`
deletes the bad copy, sets aside what was made from it (the processing output
is renamed ``<version>.untrusted-<time>`` and never trusted again), drops the
run's stage markers and sends it back to ``acquired`` (and, when processing
read the bad copy, ``processed_status`` back to ``none``): the next ticks
transfer, process, compress and archive it again without a human.  If the
DAQ copy is purged, gone or changed, no verified copy is left: the run is
marked ``lost`` with the reason and what to do (:func:`mark_lost`), nothing
more is deleted, and ``status`` lists it as ``LOST`` until
``fulliautomatix retry``.  A DAQ that cannot be asked leaves the ordinary
retry.  Each start-over counts (``recoveries``, bounded by
``compression.max_attempts``), so a disk that keeps corrupting copies ends
in a hold, not a loop.
"""

from __future__ import annotations

import time

from . import config as fa_config
from . import hosts, markers, states, transfer
from .runsdb import RunsDB


def daq_copy(config: dict, doc: dict, log) -> tuple[bool | None, str]:
    """(True: the DAQ copy still verifies; False: it is gone or changed; None: cannot tell), in words."""
    run = doc["name"]
    t = doc.get("transfer") or {}
    source = transfer.locations(config, run)["source"]
    daq = transfer.daq_host(config)
    where = f"{daq.path(source)}"
    try:
        copy = hosts.scan(
            daq, source, [t.get("checksum_algorithm") or "sha256"], log=log, confined_to=config["daq"]["raw_dir"]
        )
    except hosts.Unsafe as exc:
        return False, f"the DAQ copy {where} is refused ({exc})"
    except hosts.CommandFailed as exc:
        if exc.returncode == 3 and "no such directory" in exc.stderr:
            how = t.get("daq_copy")
            return False, (
                f"the DAQ copy {where} was {how} ({(t.get('daq_purge') or {}).get('at') or 'recorded'})"
                if how in ("purged", "absent")
                else f"the DAQ copy {where} is gone"
            )
        return None, f"the DAQ copy {where} cannot be checked now ({exc})"
    problems = hosts.compare_manifests(t.get("checksums") or [], copy.files)
    if problems:
        return False, f"the DAQ copy {where} differs from what was transferred ({problems[0]})"
    return True, f"the DAQ copy {where} still verifies"


def _set_aside(cluster: hosts.Host, doc: dict, log) -> str | None:
    """Rename the run's processing output (made from a bad copy) aside; its new path, or None."""
    out = (doc.get("processing") or {}).get("output")
    if not out:
        return None
    aside = f"{out}.untrusted-{time.strftime('%Y%m%dT%H%M%S')}"
    res = cluster.run(
        [
            "bash",
            "-c",
            '[ -d "$1" ] && [ ! -L "$1" ] || exit 0; mv -T -- "$1" "$2" && echo MOVED',
            "fa-set-aside",
            out,
            aside,
        ],
        log=log,
    )
    return aside if "MOVED" in res.stdout else None


def _drop_markers(config: dict, run: str, stages: tuple[str, ...]) -> None:
    state = fa_config.state_dir(config)
    for stage in stages:
        markers.path(state, stage, run).unlink(missing_ok=True)


def start_over(db: RunsDB, config: dict, doc: dict, why: str, log, *, reprocess: bool) -> str:
    """Send a run whose copy went bad back to ``acquired`` (its DAQ copy verified); the line saying so.

    Deletes the bad plain and compressed copies on scratch (real files only,
    never through a link), sets the processing output aside when `reprocess`
    (processing read the bad copy), drops the stage markers, then records it.
    """
    run = doc["name"]
    cluster = transfer.cluster_host(config)
    scratch = fa_config.cluster(config)["scratch"].rstrip("/")
    hosts.remove_tree(cluster, f"{scratch}/raw", run, log=log)
    hosts.remove_files(cluster, f"{scratch}/compressed", [f"{run}.tar.zst"], log=log)
    aside = _set_aside(cluster, doc, log) if reprocess and doc.get(states.PROCESSED) == "processed" else None
    note = f"copy went bad ({why}); transferred again from the DAQ copy"
    fields = {
        "transfer.attempts": 0,
        "transfer.error": None,
        "transfer.refused": None,
        "archive.batch": None,
        "recoveries": int(doc.get("recoveries") or 0) + 1,
        "compressed.error": why,
        "compressed.path": None,
        "compressed.hash": None,
    }
    doc = db.transition(run, states.RAW, "acquired", doc=doc, note=note, fields=fields)
    if aside:
        db.transition(
            run,
            states.PROCESSED,
            "none",
            doc=doc,
            note="its input copy went bad; output set aside",
            fields={"processing.attempts": 0, "processing.set_aside": {"at": states.now(), "to": aside, "why": why}},
        )
    # Every stage marker goes (a processed run's too: its job then only writes it again), so that
    # Snakemake builds the chain from the transfer on.
    _drop_markers(config, run, ("transfer", "process", "compress"))
    again = "transferred and processed again" if aside else "transferred and compressed again"
    kept = f"; its processing output was set aside in {aside}, never to be trusted" if aside else ""
    return f"run {run}: {why}; the DAQ copy still verifies, so the run is {again} by the next ticks{kept}"


def mark_lost(db: RunsDB, config: dict, doc: dict, why: str, daq_why: str, fields: dict | None = None) -> str:
    """Record that no verified copy of the run's raw data is left; the LOST line (with what to do)."""
    run = doc["name"]
    source = transfer.daq_host(config).path(transfer.locations(config, run)["source"])
    line = (
        f"run {run}: LOST: {why}, and {daq_why}: no verified copy of its raw data is left (what is left is "
        f"kept). If a copy exists elsewhere, put it back at {source} as it was transferred, then "
        f"`fulliautomatix retry {run}`"
    )
    db.update(run, {**(fields or {}), "lost": {"at": states.now(), "reason": line}}, doc=doc)
    return line


def too_many(config: dict, doc: dict) -> bool:
    """Whether the run has been started over compression.max_attempts times already."""
    return int(doc.get("recoveries") or 0) >= config["compression"]["max_attempts"]


def recover(
    db: RunsDB, config: dict, doc: dict, why: str, log, *, reprocess: bool, fields: dict | None = None
) -> str | None:
    """Start the run over, or mark it lost (setting `fields` too); the line saying which.  None: the DAQ
    cannot be asked now, or the run was started over too often (the caller's ordinary retry, bounded by
    its attempts, applies)."""
    intact, daq_why = daq_copy(config, doc, log)
    log.write(f"{daq_why}\n")
    if intact is None or (intact and too_many(config, doc)):
        return None
    if intact:
        return start_over(db, config, doc, why, log, reprocess=reprocess)
    return mark_lost(db, config, doc, why, daq_why, fields)


def copies(config: dict, doc: dict, scratch_copy: str) -> str:
    """Which copies of the run exist, for a failure's line (never "untouched" for a purged DAQ copy)."""
    how = (doc.get("transfer") or {}).get("daq_copy") or "kept"
    daq = "the DAQ copy is kept" if how == "kept" else f"the DAQ copy was {how}"
    return f"{scratch_copy}; {daq}"
