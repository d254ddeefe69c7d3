"""Stage 2: process a run with the configured processor -- here or as a batch job.

The command is ``processing.command``: a template split into words first and
filled in word by word ({raw}, {output}, {pax_config}, {run}), so no value is
ever parsed by a shell.  Output goes to ``<scratch>/processed/<run>/<version>``;
a new processor version never overwrites an older output, and reprocessing
writes to ``<version>-r<k>`` next to the outputs that already exist.

On a cluster (a profile with a scheduler) the tick's main process writes one
*request* per run, ``state/requests/<run>.json`` (source, events, output,
walltime, queue: :mod:`.batch.requests`), so neither the job nor Snakemake's resource functions need
the runs DB.  The job records ``processing`` when it starts, either in the runs
DB itself or, where compute nodes cannot reach it
(``processing.job_db_access: markers``), in ``state/started/<run>.json`` for
the host to replay; and its result in its marker, which the host replays too.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import config as fa_config
from . import hosts, markers, places, stage, states
from .batch import adapters, records
from .batch.requests import make_request, on_cluster, paths, read_request
from .runsdb import RunsDB


class ProcessingFailed(Exception):
    pass


class ReprocessRefused(Exception):
    pass


def pax_config(config: dict, source: str) -> str:
    configs = config["processing"]["pax_configs"]
    return configs.get(source, configs.get("default", "ASTERIX"))


def command(config: dict, run: str, source: str, raw: str | None = None, output: str | None = None) -> list[str]:
    p = paths(config, run)
    values = {
        "raw": raw or p["raw"],
        "output": output or p["output"],
        "pax_config": pax_config(config, source),
        "run": run,
        "python": sys.executable,
    }
    try:
        return [word.format(**values) for word in shlex.split(config["processing"]["command"])]
    except (KeyError, IndexError, ValueError) as exc:
        raise fa_config.ConfigError(f"config key processing.command: bad placeholder ({exc})") from None


def tail(path, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def needs_db(config: dict) -> bool:
    """Whether a processing job opens the runs DB (not where nodes cannot reach it)."""
    return not on_cluster(config) or config["processing"]["job_db_access"] == "direct"


# -- the job ---------------------------------------------------------------------------


def _record_start(db: RunsDB | None, config: dict, run: str, req: dict, job: dict, doc: dict | None) -> dict | None:
    started = {"run": run, "job_id": job.get("job_id"), "node": job.get("node"), "started": states.now()}
    if db is None:
        markers.write(records.started_path(config["work_dir"], run), started)
        return None
    fields = {"processing.started": started["started"], "processing.node": started["node"]}
    if doc["processed_status"] != "queued":
        # Not recorded at submission (a scheduler plugin without our submit command, or a lost write).
        info = records.processing_doc(
            req,
            attempts=int(req.get("attempts", 0)) + 1,
            job_id=job.get("job_id"),
            queue=job.get("queue") or req.get("queue"),
            walltime=req.get("walltime"),
        )
        fields = {"processing": {**info, "started": started["started"], "node": started["node"]}}
    return stage.claim(
        db,
        config,
        doc,
        states.PROCESSED,
        "processing",
        via=("queued",),
        fields=fields,
        note=f"job {job.get('job_id')} started",
    )


def _start_here(
    db: RunsDB, config: dict, run: str, req: dict, doc: dict, argv: list[str], attempts: int, tag: str | None
) -> dict:
    """Record a processing attempt on this machine (local profile), ``queued`` and ``processing`` in one
    write; never beyond processing.max_attempts."""
    limit = config["processing"]["max_attempts"]
    if attempts > limit:
        raise ProcessingFailed(
            f"run {run}: {attempts - 1} processing attempts made already "
            f"(processing.max_attempts {limit}); see its log, then `fulliautomatix retry {run}`"
        )
    fields = {"processing.started": states.now()}
    if doc["processed_status"] != "queued":
        info = records.processing_doc(req, attempts=attempts, queue="local", timeouts=0, command=argv)
        fields = {"processing": {**info, "started": fields["processing.started"]}}
    return stage.claim(db, config, doc, states.PROCESSED, "processing", via=("queued",), fields=fields)


def _run_processor(argv: list[str], log) -> int:
    """Run the processor; its exit status (127/126 with a line in the log when it cannot be started)."""
    from . import claims

    try:
        return subprocess.run(
            argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, pass_fds=claims.held_fds()
        ).returncode
    except FileNotFoundError as exc:
        log.write(f"processor {argv[0]!r} not found ({exc}); check processing.command\n")
        return 127
    except OSError as exc:
        log.write(f"processor {argv[0]!r} cannot be started ({exc}); check processing.command\n")
        return 126


def process_run(
    db: RunsDB | None,
    config: dict,
    run: str,
    input_marker: str,
    marker_path: str,
    log,
    log_path: str,
    tag: str | None = None,
) -> dict:
    """Process one run here (local profile) or as a batch job; write its marker; return it.

    The skeleton of every stage (fulliautomatix.stage): the run's snapshot,
    its input marker replayed, one write for its start, the processor, the
    marker, one write for its result.
    """
    hosts.check_run_name(run, config["run_name_pattern"])
    log_path = os.path.abspath(log_path)
    doc = None
    if db is not None:
        # A batch job's run was written at its submission, after the tick's snapshot: read it.
        doc = db.get(run) if on_cluster(config) else stage.take(db, config, run)
        if tag is None:
            doc = stage.replay(db, config, input_marker, doc)
    req = read_request(config["work_dir"], run) if on_cluster(config) else make_request(config, doc, tag)
    prev = (doc or {}).get("processing") or {}
    if (
        tag is None
        and doc is not None
        and doc["processed_status"] == "processed"
        and prev.get("processor_version") == config["processing"]["version"]
    ):
        return stage.marker_again(marker_path, markers.run_marker("process", run, {"processing": prev}, prev), log)
    raw = markers.read(input_marker).get("raw", req["raw"]) if tag else req["raw"]
    gone = None if tag or doc is None else input_copy_problem(config, doc, raw, log)
    if gone:
        raise _input_went_bad(db, config, doc, gone, log)
    argv = command(config, run, req["source"], raw=raw, output=req["output"])
    attempts = int(req.get("attempts", 0)) + 1
    if on_cluster(config):
        doc = _record_start(db, config, run, req, adapters.job_context() or {}, doc)
    else:
        doc = _start_here(db, config, run, req, doc, argv, attempts, tag)
    log.write(f"$ {shlex.join(argv)}\n")
    log.flush()
    t0 = time.monotonic()
    rc = _run_processor(argv, log)
    seconds = round(time.monotonic() - t0, 3)
    if rc != 0:
        log.flush()
        raise _failed(db, config, run, doc, rc, attempts, seconds, log_path)
    marker = _processed_marker(config, run, req, seconds, tag)
    stage.record(db, config, marker, marker_path, doc, "processed", log)
    if tag and Path(raw).resolve().is_relative_to(Path(req["raw"]).parent.resolve()):
        shutil.rmtree(Path(raw).parent, ignore_errors=True)  # the staged copy; the archived one remains
        Path(input_marker).unlink(missing_ok=True)
    return marker


# Lists the regular files under "$1" with their sizes, NUL-separated; GONE when it is no directory.
SIZES = 'cd -- "$1" 2>/dev/null || { echo GONE; exit 0; }; find . -type f -printf "%s %P\\0"'


def input_copy_problem(config: dict, doc: dict, raw: str, log=None) -> str | None:
    """Why the copy on scratch is not the one whose transfer verified (a file gone or of another size), or None.

    Sizes only (one `find`, no read): enough to catch a scratch purge or a
    full disk before a processor reads a partial copy; content is checked by
    compression's read-back against the transfer checksums.  Asked where the
    copy is: here in a batch job on the cluster, else on the cluster's host.
    """
    host = hosts.Host() if on_cluster(config) else places.cluster_host(config)
    try:
        out = host.run(["bash", "-c", SIZES, "fa-sizes", raw], log=log).stdout
    except hosts.CommandFailed:
        return None  # cannot tell: the processor runs and its own failure says why
    if out.strip() == "GONE":
        return f"its copy on scratch {host.path(raw)} is gone"
    sizes = dict(reversed(entry.split(" ", 1)) for entry in out.split("\0") if " " in entry)
    for f in (doc.get("transfer") or {}).get("checksums") or []:
        size = sizes.get(f["path"])
        if size is None:
            return f"its copy on scratch {host.path(raw)} lacks {f['path']}"
        if int(size) != f.get("size", int(size)):
            return f"its copy on scratch {host.path(raw)} has {f['path']} of {size} bytes, not {f['size']}"
    return None


def _input_went_bad(db: RunsDB | None, config: dict, doc: dict, why: str, log) -> ProcessingFailed:
    """A processing input that is not the verified copy: transferred again from an intact DAQ copy where this
    job can ask the DAQ (the local profile), else left for the next attempt; never processed."""
    run = doc["name"]
    log.write(f"not processed: {why}\n")
    if db is not None and not on_cluster(config):
        from . import recovery

        line = recovery.recover(db, config, doc, why, log, reprocess=False)
        if line is not None:
            return ProcessingFailed(line)
    return ProcessingFailed(
        f"run {run}: {why}; not processed. If the DAQ copy is kept, `fulliautomatix retry {run}` transfers it again"
    )


def _processed_marker(config: dict, run: str, req: dict, seconds: float, tag: str | None) -> dict:
    """The marker of a run the processor finished (exit 0)."""
    version, finished = config["processing"]["version"], states.now()
    outputs = list(req.get("previous_outputs") or [])
    outputs.append({"version": version, "output": req["output"], "tag": tag, "finished": finished})
    fields = {
        "processing.exit_code": 0,
        "processing.seconds": seconds,
        "processing.finished": finished,
        "processing.log_tail": None,
        "processing.error": None,
        "processing.timed_out": False,
        "processing.processor_version": version,
        "processing.output": req["output"],
        "processed_outputs": outputs,
    }
    if tag:
        fields["reprocess"] = None
    marker = markers.run_marker("process", run, fields, {"seconds": seconds, "output": req["output"], "tag": tag})
    marker["via"] = ["processing"]  # a replay shows the job's start, as it happened
    return marker


def _failed(
    db: RunsDB | None, config: dict, run: str, doc: dict | None, rc: int, attempts: int, seconds: float, log_path: str
) -> ProcessingFailed:
    """Record a failed processing attempt; the error to raise (its line says what comes next).

    A processor killed by a signal in a batch job is not judged here: the
    scheduler may be ending the job (its walltime, a cancel), and only its
    listing, read by the next tick's collection, says which (a walltime kill
    doubles the next attempt's walltime).
    """
    if rc < 0 and on_cluster(config):
        return ProcessingFailed(
            f"run {run}: processor killed by signal {-rc} in its batch job; the next tick's collection "
            "asks the scheduler why (walltime or cancel) and records it"
        )
    if db is not None:
        stage.give_back(
            db,
            config,
            doc,
            states.PROCESSED,
            "failed",
            note=f"exit {rc}",
            fields={
                "processing.exit_code": rc,
                "processing.log_tail": tail(log_path),
                "processing.seconds": seconds,
                "processing.timed_out": False,
                "processing.finished": states.now(),
            },
        )
    hint = stage.retry_hint(run, config["processing"]["max_attempts"] - attempts, fix=f"see {log_path}")
    return ProcessingFailed(f"run {run}: processor exited with {rc}; {hint}")


# -- reprocessing: raw data back on scratch ---------------------------------------------


def stage_raw(db: RunsDB, config: dict, run: str, marker_path: str, log) -> dict:
    """Make the run's raw data readable for reprocessing; write the staged marker.

    A run still ``ondeck`` has its plain copy on scratch.  Once compressed, the
    plain copy is gone: the compressed copy on scratch (or, once archived, the
    archive) is unpacked into ``<scratch>/reprocess/<run>/`` and verified
    against the transfer checksums.  That copy is removed when reprocessing
    succeeds; the compressed or archived copy stays the copy of record.
    """
    from . import archive

    hosts.check_run_name(run, config["run_name_pattern"])
    doc = db.get(run)
    raw_status = doc["raw_status"]
    scratch = Path(fa_config.cluster(config)["scratch"])
    dest = scratch / "reprocess" / run
    t = doc.get("transfer") or {}
    if raw_status == "ondeck":
        where, temporary = paths(config, run)["raw"], False
    elif raw_status == "compressed":
        src = Path((doc.get("compressed") or {}).get("path", ""))
        if not src.is_file():
            raise ReprocessRefused(f"run {run}: compressed copy {src} is missing")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        argv = ["tar", "-C", str(dest), "-I", "zstd", "-xf", str(src)]
        log.write(f"$ {shlex.join(argv)}\n")
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ReprocessRefused(f"run {run}: cannot unpack {src}: {proc.stderr.strip()}")
        where, temporary = str(dest / run), True
    elif raw_status == "archived":
        shutil.rmtree(dest, ignore_errors=True)
        try:
            where, temporary = str(archive.restore(db, config, run, dest)), True
        except archive.ArchiveError as exc:
            raise ReprocessRefused(str(exc)) from None
    else:
        raise ReprocessRefused(f"run {run}: raw data is {raw_status}; reprocess it once that is done")
    problems = hosts.compare_manifests(
        t.get("checksums") or [],
        hosts.manifest(hosts.Host(), where, t.get("checksum_algorithm", config["transfer"]["checksum"])),
    )
    if problems:
        raise ReprocessRefused(f"run {run}: raw copy at {where} does not verify ({problems[0]})")
    log.write(f"raw data of {run} at {where} (verified{', staged for reprocessing' if temporary else ''})\n")
    marker = {"run": run, "raw": where, "temporary": temporary, "from": raw_status, "at": states.now()}
    markers.write(marker_path, marker)
    return marker


def request_reprocess(db: RunsDB, config: dict, run: str) -> str:
    """Record a reprocessing request; return its tag.  The old output stays."""
    doc = db.get(run)
    pending = doc.get("reprocess") or {}
    if pending.get("tag"):
        return pending["tag"]
    if doc["processed_status"] != "processed":
        raise ReprocessRefused(
            f"run {run}: processed_status is {doc['processed_status']}; only a processed run can be reprocessed"
        )
    if doc["raw_status"] in ("acquired", "transferring", "compressing", "archiving"):
        raise ReprocessRefused(f"run {run}: raw data is {doc['raw_status']}; try again once that is done")
    outputs = list(doc.get("processed_outputs") or [])
    p = doc.get("processing") or {}
    if not outputs and p.get("output"):  # processed before outputs were listed
        outputs = [
            {
                "version": p.get("processor_version"),
                "output": p["output"],
                "tag": p.get("tag"),
                "finished": p.get("finished"),
            }
        ]
    # Where it goes: <version>-r<k> beside the k outputs the run already has.
    tag = f"{config['processing']['version']}-r{len(outputs)}"
    db.update(
        run,
        {
            "reprocess": {"tag": tag, "version": config["processing"]["version"], "requested": states.now()},
            "processed_outputs": outputs,
        },
        doc=doc,
    )
    return tag
