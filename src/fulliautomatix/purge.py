"""The DAQ copy's purge policy: keep, purge_after_verify, purge_after_days.

No source data is deleted before a checksum-verified copy exists.  A DAQ copy
is deleted only when

* the policy says so: ``purge_after_verify`` right after its transfer
  verified (:func:`fulliautomatix.transfer.transfer_run` calls
  :func:`purge_daq_copy`), ``purge_after_days`` once it verified N days ago
  (:func:`purge_daq_copies`, the ``purge_daq_copies`` rule of every tick that
  transfers, which also retries purges after verification that failed);
* a copy elsewhere verifies *again* just before: the copy on scratch against
  the recorded per-file checksums, or the compressed copy against its
  recorded sha256, or the archived tarball read back from the archive;
* the DAQ copy is still exactly what was verified: a real directory inside
  ``daq.raw_dir`` (not a symbolic link, holding no link, fifo, socket or
  device: :data:`hosts.CONFINE`), the same files with the same sizes and
  checksums, none modified since the copy started (checked on the DAQ
  machine itself, by the DAQ's clock, in the command that deletes), and then
  exactly those files are deleted from inside that directory, never through
  a link; anything that appeared meanwhile stays.

Whatever stops a purge is recorded in the run's ``transfer.daq_purge.error``
and the copy is kept; ``transfer.daq_copy`` says ``kept``, ``purged`` or
``absent``.  ``rsync --remove-source-files`` is never used.
"""

from __future__ import annotations

import datetime as _dt
from contextlib import contextmanager

from . import config as fa_config
from . import claims, dates, hosts, markers, states
from .runsdb import RunsDB
from .places import cluster_host, daq_host, locations


class PurgeRefused(Exception):
    """The DAQ copy may not be deleted (yet); the message says why."""


@contextmanager
def purging(config: dict):
    """Held while one run's DAQ copy is judged, purged and recorded.

    A transfer job purging after verification and the tick's purge step may
    run at the same time; each takes this lock per run (both run on this
    machine), so one run is never purged by both.
    """
    with claims.locked(fa_config.state_dir(config) / "purge.lock"):
        yield


# Deletes the DAQ run directory "$1/$2" only if it is still exactly the verified copy, read
# from stdin as NUL-separated "<size>\t<checksum>\t<path>" records: confined to daq.raw_dir
# (hosts.CONFINE: not a symbolic link, inside it, only regular files and directories), the
# same files with the same sizes, none modified at or after "$3" (the verified snapshot),
# and every checksum (tool "$4") equal to the verified one.  Then, after checking once more
# for links, it deletes exactly those files by their paths inside the directory it entered,
# then the empty directories; anything that appeared meanwhile stays.  Prints PURGED or ABSENT.
PURGE = (
    hosts.CONFINE
    + r"""
raw=$1; run=$2; since=$3; tool=$4
if [ ! -e "$raw/$run" ] && [ ! -L "$raw/$run" ]; then echo ABSENT; exit 0; fi
confine "$raw" "$run" || exit
dir=$(pwd -P)
tmp=$(mktemp -d) || exit 3
trap 'rm -rf -- "$tmp"' EXIT
cat > "$tmp/in"
sed -z 's/\t[^\t]*\t/\t/' "$tmp/in" | LC_ALL=C sort -z > "$tmp/sizes"
if ! find . -type f -printf '%s\t%P\0' | LC_ALL=C sort -z | cmp -s - "$tmp/sizes"; then
  echo "its files differ from the verified ones (added, removed or resized)" >&2; exit 6
fi
changed=$(find . -type f -newermt "@$since" -printf '%P ' | head -c 300)
if [ -n "$changed" ]; then echo "modified after it was verified: $changed" >&2; exit 7; fi
sed -z 's/^[0-9]*\t\([^\t]*\)\t/\1  .\//' "$tmp/in" | tr '\0' '\n' | LC_ALL=C sort > "$tmp/sums"
find . -type f -print0 | xargs -0 -r -n 8 -P 4 "$tool" -- > "$tmp/got" || { echo "$tool failed in $dir" >&2; exit 4; }
LC_ALL=C sort -o "$tmp/got" "$tmp/got"
bad=$(LC_ALL=C comm -13 "$tmp/sums" "$tmp/got" | head -n 1)
if [ -n "$bad" ]; then echo "the checksum of ${bad#*  ./} differs from the verified one" >&2; exit 8; fi
only_regular "$raw/$run" || exit
cut -z -f3- "$tmp/in" | xargs -0 -r rm -f -- || exit 9
find . -depth -mindepth 1 -type d -empty -delete
cd -P .. && rmdir -- "$run" || { echo "files that appeared meanwhile were kept in $dir" >&2; exit 9; }
echo PURGED
"""
)


def purge_daq_copy(config: dict, run: str, verified: list[dict], snapshot: float | None, log, *, algorithm: str) -> str:
    """Delete the DAQ copy of a run whose copy elsewhere verified; 'purged' or 'absent'.

    `verified` are the per-file records (path, size, checksum with
    `algorithm`) the copy was verified against and `snapshot` the DAQ's clock
    when that copy started.  Everything is checked again on the DAQ, in the
    command that deletes (PURGE).  Raises PurgeRefused.
    """
    hosts.check_run_name(run, config["run_name_pattern"])
    if not verified or snapshot is None:
        raise PurgeRefused(f"run {run}: no verified file list or snapshot time recorded")
    if algorithm not in hosts.CHECKSUM_TOOLS:
        raise PurgeRefused(f"run {run}: unknown checksum algorithm {algorithm!r} recorded")
    odd = [f["path"] for f in verified if any(c in f["path"] for c in "\n\r\\\0") or "\t" in str(f["hash"])]
    if odd:
        raise PurgeRefused(f"run {run}: the file name {odd[0]!r} cannot be checked on the DAQ; purge it by hand")
    raw_dir, source = config["daq"]["raw_dir"], locations(config, run)["source"]
    records = "".join(f"{f['size']}\t{f['hash']}\t{f['path']}\0" for f in verified)
    daq = daq_host(config)
    argv = ["bash", "-c", PURGE, "fa-purge", raw_dir, run, f"{snapshot:.9f}", hosts.CHECKSUM_TOOLS[algorithm]]
    try:
        proc = daq.run(argv, check=False, input=records, log=log)
    except hosts.Unsafe as exc:
        raise PurgeRefused(
            f"DAQ copy {source} on {daq.name} not purged: {exc}; nothing outside daq.raw_dir is "
            f"deleted; {exc.advice}, and a later tick tries again"
        ) from None
    if proc.returncode != 0:
        err = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise PurgeRefused(f"DAQ copy {source} on {daq.name} not purged: {err}")
    if "ABSENT" in proc.stdout:
        log.write(f"DAQ copy {source} of {run} was already gone\n")
        return "absent"
    log.write(f"purged DAQ copy {source} of {run} on {daq.name} ({len(verified)} verified files)\n")
    return "purged"


def _cluster_copy_verifies(config: dict, doc: dict, log) -> str:
    """Where a checksum-verified copy of the run exists now; raises PurgeRefused."""
    tr = doc.get("transfer") or {}
    name = tr.get("cluster") or config["tick"]["cluster"]
    if name not in config["clusters"]:
        raise PurgeRefused(f"cluster {name} of its copy is not in the config")
    cluster = cluster_host(config, name)
    raw = doc.get(states.RAW)
    tried = []
    if raw in ("ondeck", "compressing") and tr.get("destination"):
        try:
            copy = hosts.scan(cluster, tr["destination"], [tr.get("checksum_algorithm") or "sha256"], log=log)
            problems = hosts.compare_manifests(tr.get("checksums") or [], copy.files)
            if not problems:
                return f"copy {tr['destination']} on {cluster.name} re-verified"
            tried.append(f"copy {tr['destination']} does not verify ({problems[0]})")
        except hosts.CommandFailed as exc:
            tried.append(f"copy {tr['destination']} unreadable ({exc})")
    c = doc.get("compressed") or {}
    if raw in ("compressing", "compressed", "archiving") and c.get("path") and c.get("hash"):
        proc = cluster.run(["sha256sum", "--", c["path"]], check=False, log=log)
        digest = proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout.split() else None
        if digest == c["hash"]:
            return f"compressed copy {c['path']} on {cluster.name} re-verified"
        tried.append(f"compressed copy {c['path']} does not verify")
    raise PurgeRefused("; ".join(tried) or f"no copy to verify in raw_status {raw}")


def _archive_copy_verifies(config: dict, doc: dict, read_back: dict, log) -> str:
    """The archived copy, read back now, matches the recorded checksum; raises PurgeRefused."""
    from .archive.choose import make as archive_backend  # the archive only when its copy is judged

    a = doc.get("archive") or {}
    tarball, member = a.get("tarball"), a.get("member")
    recorded = a.get("hash") or (doc.get("compressed") or {}).get("hash")
    if not (tarball and member and recorded):
        raise PurgeRefused("archived, but no tarball, member or checksum recorded")
    key = (a.get("backend"), a.get("host"), tarball)
    if key not in read_back:
        try:  # one read-back per tarball and tick, however many of its runs are due
            be = archive_backend(config, name=a.get("backend"), host=a.get("host"))
            read_back[key] = be.read_back(tarball, log)[0]
        except Exception as exc:  # any failure of the backend means: not verified now
            read_back[key] = exc
    got = read_back[key]
    if isinstance(got, Exception):
        raise PurgeRefused(f"archive copy {tarball} cannot be read back: {got}")
    entry = got.get(member)
    if entry is None or entry.sha256 is None:
        raise PurgeRefused(f"archive copy {tarball}#{member} was not checksummed on read-back")
    if entry.sha256 != recorded:
        raise PurgeRefused(f"archive copy {tarball}#{member} does not verify")
    return f"archive copy {tarball}#{member} re-verified"


def purge_cutoff(config: dict, now: _dt.datetime | None = None) -> _dt.datetime | None:
    """Runs verified at or before this time (UTC) may lose their DAQ copy (None: never)."""
    t = config["transfer"]
    now = now or dates.now()
    if t["purge"] == "keep":
        return None
    if t["purge"] == "purge_after_days":
        now -= _dt.timedelta(days=float(t["purge_after_days"]))
    return now


def _purge_one(db: RunsDB, config: dict, run, read_back: dict, report: dict, log) -> None:
    try:
        hosts.check_run_name(run, config["run_name_pattern"])
        doc = db.get(run)  # again, under the lock: its transfer job may just have purged it
        tr = doc.get("transfer") or {}
        if tr.get("daq_copy") != "kept":
            return
        if doc.get(states.RAW) == "archived":
            how = _archive_copy_verifies(config, doc, read_back, log)
        else:
            how = _cluster_copy_verifies(config, doc, log)
        status = purge_daq_copy(
            config,
            run,
            tr.get("checksums") or [],
            tr.get("daq_snapshot"),
            log,
            algorithm=tr.get("checksum_algorithm") or "sha256",
        )
    except (PurgeRefused, hosts.CommandFailed, hosts.BadRunName) as exc:
        log.write(f"run {run}: DAQ copy kept: {exc}\n")
        report["kept"][str(run)] = str(exc)
        try:
            db.update(run, {"transfer.daq_purge": {"at": states.now(), "error": str(exc)}})
        except Exception as db_exc:
            log.write(f"run {run}: could not record that in the runs DB ({db_exc})\n")
        return
    db.update(
        run,
        {
            "transfer.daq_copy": status,
            "transfer.daq_purge": {
                "at": states.now(),
                "policy": config["transfer"]["purge"],
                "verified_by": how,
                "error": None,
            },
        },
        doc=doc,
    )
    report["purged"].append(run)


def purge_daq_copies(db: RunsDB, config: dict, tick: str, report_path: str, log) -> dict:
    """The periodic purge: DAQ copies due under the policy whose copy elsewhere still verifies.

    Catches runs whose purge after verification failed, and is the only way
    `purge_after_days` purges.  At most transfer.purge_per_tick runs per tick.
    """
    cutoff = purge_cutoff(config)
    report = {"tick": tick, "policy": config["transfer"]["purge"], "cutoff": cutoff, "purged": [], "kept": {}}
    docs = db.daq_copies_due(cutoff, config["transfer"]["purge_per_tick"]) if cutoff else []
    read_back: dict = {}
    for due in docs:
        with purging(config):
            _purge_one(db, config, due["name"], read_back, report, log)
    log.write(
        f"purge policy {report['policy']}: purged {len(report['purged'])} DAQ copies, kept {len(report['kept'])}\n"
    )
    markers.write(report_path, report)
    return report
