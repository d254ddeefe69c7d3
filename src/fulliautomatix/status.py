"""`fulliautomatix status`: where every run is, and why a run is stuck."""

from __future__ import annotations

import json

from . import selection, states

ERROR_FIELDS = (("transfer", "error"), ("processing", "log_tail"), ("compressed", "error"), ("archive", "error"))


def table(counts: dict[tuple[str, str], int], pending: list[dict], config: dict) -> str:
    """Counts per state, then one line per run that needs attention."""
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
            attention.append(f"  HELD  {held}")
            continue
        for sub, key in ERROR_FIELDS:
            err = (doc.get(sub) or {}).get(key)
            if err and not (sub == "processing" and doc.get("processed_status") != "failed"):
                first = str(err).strip().splitlines()[-1] if sub == "processing" else str(err)
                attention.append(f"  RETRY run {doc['name']}: last {sub} attempt failed: {first}")
                break
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
