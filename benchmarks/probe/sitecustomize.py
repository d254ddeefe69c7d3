"""Runs-DB command probe, loaded by every Python process of a benchmarked tick.

P3 puts this directory first on PYTHONPATH and names an output directory in
FULLIAUTOMATIX_BENCH_PROBE.  Python imports ``sitecustomize`` at start-up, so
every process of the tick (the cron wrapper, Snakemake, each job script)
registers a pymongo command listener before it creates any client, and on
exit writes what it saw to ``<dir>/<pid>.json``: its argv, and per command
its name, the shape of its filter (field names, no values), the documents it
returned and the server time.  Nothing in the package is changed or mocked;
connections opened (each one a handshake round trip) are counted too.
"""

import atexit
import json
import os
import sys

_OUT = os.environ.get("FULLIAUTOMATIX_BENCH_PROBE")


def _keys(filt) -> str:
    """Field names and operators of a filter, without values."""
    if not isinstance(filt, dict):
        return ""
    parts = []
    for k, v in filt.items():
        if isinstance(v, dict) and v and all(str(op).startswith("$") for op in v):
            parts.append(f"{k}:{','.join(sorted(v))}")
        else:
            parts.append(k)
    return "{" + " ".join(sorted(parts)) + "}"


def _shape(name: str, cmd) -> str:
    if name == "find":
        return f"find {_keys(cmd.get('filter'))}"
    if name in ("update", "delete"):
        ops = cmd.get("updates") or cmd.get("deletes") or [{}]
        return f"{name} {_keys(ops[0].get('q'))}"
    if name == "aggregate":
        stages = []
        for stage in cmd.get("pipeline", []):
            op = next(iter(stage))
            stages.append(f"{op}{_keys(stage[op])}" if op == "$match" else op)
        return "aggregate [" + " ".join(stages) + "]"
    if name in ("insert", "createIndexes"):
        n = len(cmd.get("documents") or cmd.get("indexes") or [])
        return f"{name} x{n}"
    return name


if _OUT:
    from pymongo import monitoring

    _events = []
    _pending = {}
    _connections = [0]

    class _Commands(monitoring.CommandListener):
        def started(self, event):
            _pending[(event.connection_id, event.request_id)] = _shape(event.command_name, event.command)

        def _done(self, event, ok):
            shape = _pending.pop((event.connection_id, event.request_id), event.command_name)
            reply = getattr(event, "reply", None) or {}
            cursor = reply.get("cursor") or {}
            docs = len(cursor.get("firstBatch") or cursor.get("nextBatch") or [])
            _events.append(
                {"name": event.command_name, "shape": shape, "docs": docs, "micros": event.duration_micros, "ok": ok}
            )

        def succeeded(self, event):
            self._done(event, True)

        def failed(self, event):
            self._done(event, False)

    class _Pool(monitoring.ConnectionPoolListener):
        def connection_created(self, event):
            _connections[0] += 1

        def pool_created(self, event):
            pass

        def pool_ready(self, event):
            pass

        def pool_cleared(self, event):
            pass

        def pool_closed(self, event):
            pass

        def connection_ready(self, event):
            pass

        def connection_closed(self, event):
            pass

        def connection_check_out_started(self, event):
            pass

        def connection_check_out_failed(self, event):
            pass

        def connection_checked_out(self, event):
            pass

        def connection_checked_in(self, event):
            pass

    monitoring.register(_Commands())
    monitoring.register(_Pool())

    @atexit.register
    def _write():
        if not _events and not _connections[0]:
            return
        record = {"pid": os.getpid(), "argv": sys.argv, "commands": _events, "connections": _connections[0]}
        path = os.path.join(_OUT, f"{os.getpid()}.json")
        with open(path, "w") as fh:
            json.dump(record, fh)

    # A Snakemake job ends with os._exit (fulliautomatix.jobs.end), which skips
    # exit handlers: write the record first.
    _os_exit = os._exit

    def _exit_after_writing(status):
        try:
            _write()
        finally:
            _os_exit(status)

    os._exit = _exit_after_writing
