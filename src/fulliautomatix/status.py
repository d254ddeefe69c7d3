"""`fulliautomatix status`: where every run is, and why a run is stuck."""

from __future__ import annotations

import json

from . import attention, dates, states


def table(counts: dict[tuple[str, str], int], pending: list[dict], config: dict,
          daq_live: bool | None = None) -> str:
    """Counts per state, then one line per run that needs attention (attention.problems)."""
    lines = [f"{'raw_status':<14}{'processed_status':<18}{'runs':>8}"]
    order = {s: i for i, s in enumerate(states.RAW_STATES)}
    porder = {s: i for i, s in enumerate(states.PROCESSED_STATES)}
    for (raw, proc), n in sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 99), porder.get(kv[0][1], 99))):
        lines.append(f"{raw:<14}{proc:<18}{n:>8}")
    lines.append(f"{'total':<32}{sum(counts.values()):>8}")
    found = attention.problems(pending, config, daq_live=daq_live)
    if found:
        lines += ["", "runs needing attention:"] + [f"  {p.kind:<5} {p.reason}" for p in found]
    return "\n".join(lines)


def run_details(doc: dict) -> str:
    """One run's fields (without the bulky per-file checksums) and its history."""
    doc = dict(doc)
    doc.pop("_id", None)
    history = doc.pop("history", []) or []
    if isinstance(doc.get("transfer"), dict) and "checksums" in doc["transfer"]:
        doc["transfer"] = {**doc["transfer"], "checksums": f"<{len(doc['transfer']['checksums'])} files>"}
    lines = [f"run {doc.get('name')}", json.dumps(doc, indent=2, sort_keys=True, default=_shown), "history:"]
    for h in history:
        note = f"  ({h['note']})" if h.get("note") else ""
        lines.append(f"  {dates.iso(h.get('at'))}  {h.get('field'):<17}{h.get('from')} -> {h.get('to')}  "
                     f"on {h.get('host')}{note}")
    return "\n".join(lines)


def _shown(value) -> str:
    """How run_details prints what JSON cannot hold: times in ISO 8601, anything else as str()."""
    try:
        return dates.json_default(value)
    except TypeError:
        return str(value)
