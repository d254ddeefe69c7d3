"""`fulliautomatix status`: where every run is, and why a run is stuck."""

from __future__ import annotations

import json

from . import selection, states

ERROR_FIELDS = (("transfer", "error"), ("processing", "log_tail"), ("compressed", "error"), ("archive", "error"))


SHOWN = 20  # lines of one kind at most; the rest are counted


def one_copy(doc: dict) -> str | None:
    """The only verified copy of a run not yet archived whose DAQ copy is gone, or None (two or more)."""
    if (doc.get("transfer") or {}).get("daq_copy") not in ("purged", "absent") or selection.lost(doc):
        return None
    raw = doc.get(states.RAW)
    if raw in ("ondeck", "compressing"):
        return f"its copy on scratch {(doc.get('transfer') or {}).get('destination') or ''}".rstrip()
    if raw in ("compressed", "archiving"):
        return f"its compressed copy {(doc.get('compressed') or {}).get('path') or ''}".rstrip()
    return None


def _capped(lines: list[str]) -> list[str]:
    return lines[:SHOWN] + ([f"  ... and {len(lines) - SHOWN} more"] if len(lines) > SHOWN else [])


def problems(duplicates: dict[str, list[str]], unknown: list[dict], lost_copies: list[dict], pending: list[dict],
             config: dict) -> list[str]:
    """Lines for what the per-run view of pending runs cannot show: duplicate names, unknown states,
    archived copies that stopped verifying, and runs with a single verified copy."""
    lines = [f"  BAD   run {name}: {len(ids)} documents have this name (_id {', '.join(ids)}); no tick touches it "
             "until one is left (the tick's line gives the command)" for name, ids in sorted(duplicates.items())]
    lines += [f"  BAD   {selection.check_doc(d, config['run_name_pattern']) or d.get('name')}" for d in unknown]
    lines += _capped([f"  LOST-COPY run {d.get('name')}: {(d.get('archive') or {}).get('copy_error')}"
                      for d in lost_copies])
    single = [f"  ONE-COPY run {d['name']}: only {one_copy(d)} (DAQ copy {d['transfer']['daq_copy']}, not yet "
              "archived)" for d in pending if isinstance(d.get("name"), str) and one_copy(d)]
    return lines + _capped(single)


def table(counts: dict[tuple[str, str], int], pending: list[dict], config: dict, more: list[str] = ()) -> str:
    """Counts per state, then one line per run that needs attention (`more`: lines from :func:`problems`)."""
    lines = [f"{'raw_status':<14}{'processed_status':<18}{'runs':>8}"]
    order = {s: i for i, s in enumerate(states.RAW_STATES)}
    porder = {s: i for i, s in enumerate(states.PROCESSED_STATES)}
    for (raw, proc), n in sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 99), porder.get(kv[0][1], 99))):
        lines.append(f"{raw:<14}{proc:<18}{n:>8}")
    lines.append(f"{'total':<32}{sum(counts.values()):>8}")
    limits = selection.limits(config)
    attention = []
    for doc in pending:
        problem = selection.check_doc(doc, config["run_name_pattern"])
        if problem:
            attention.append(f"  BAD   {problem}")
            continue
        _, held = selection.start_stage(doc, limits)
        if held:
            attention.append(f"  {'LOST' if selection.lost(doc) else 'HELD'}  {held}")
            continue
        for sub, key in ERROR_FIELDS:
            err = (doc.get(sub) or {}).get(key)
            if err and not (sub == "processing" and doc.get("processed_status") != "failed"):
                first = str(err).strip().splitlines()[-1] if sub == "processing" else str(err)
                attention.append(f"  RETRY run {doc['name']}: last {sub} attempt failed: {first}")
                break
    attention += list(more)
    if attention:
        lines += ["", "runs needing attention:"] + attention
    return "\n".join(lines)


def run_details(doc: dict) -> str:
    """One run's fields (without the bulky per-file checksums) and its history."""
    doc = dict(doc)
    doc.pop("_id", None)
    history = doc.pop("history", []) or []
    if isinstance(doc.get("transfer"), dict) and "checksums" in doc["transfer"]:
        doc["transfer"] = {**doc["transfer"], "checksums": f"<{len(doc['transfer']['checksums'])} files>"}
    lines = [f"run {doc.get('name')}", json.dumps(doc, indent=2, sort_keys=True, default=str), "history:"]
    for h in history:
        note = f"  ({h['note']})" if h.get("note") else ""
        lines.append(f"  {h.get('at')}  {h.get('field'):<17}{h.get('from')} -> {h.get('to')}  on {h.get('host')}{note}")
    return "\n".join(lines)
