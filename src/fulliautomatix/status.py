"""`fulliautomatix status`: where every run is, and why a run is stuck."""

from __future__ import annotations

import json

from . import attention, states, timestamps


def attention_items(pending: list[dict], config: dict, now=None) -> list[attention.Item]:
    """The pending runs (with their history) that need attention (see fulliautomatix.attention)."""
    return attention.find(pending, config, now or timestamps.now(), attention.daq_live_at(config))


def _ordered(counts: dict[tuple[str, str], int]) -> list[tuple[tuple[str, str], int]]:
    order = {s: i for i, s in enumerate(states.RAW_STATES)}
    porder = {s: i for i, s in enumerate(states.PROCESSED_STATES)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 99), porder.get(kv[0][1], 99)))


def table(counts: dict[tuple[str, str], int], pending: list[dict], config: dict,
          items: list[attention.Item] | None = None) -> str:
    """Counts per state, then one line per run that needs attention (BAD, HELD, STUCK, RETRY) and its fix."""
    lines = [f"{'raw_status':<14}{'processed_status':<18}{'runs':>8}"]
    for (raw, proc), n in _ordered(counts):
        lines.append(f"{raw:<14}{proc:<18}{n:>8}")
    lines.append(f"{'total':<32}{sum(counts.values()):>8}")
    items = attention_items(pending, config) if items is None else items
    if items:
        lines += ["", "runs needing attention:"] + [item.line() for item in items]
    return "\n".join(lines)


def as_json(counts: dict[tuple[str, str], int], items: list[attention.Item]) -> dict:
    """What `status --json` prints: counts per state and the attention list."""
    return {"generated": timestamps.iso(timestamps.now()),
            "counts": [{"raw_status": raw, "processed_status": proc, "runs": n} for (raw, proc), n in _ordered(counts)],
            "total": sum(counts.values()),
            "attention": [item.as_dict() for item in items]}


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
