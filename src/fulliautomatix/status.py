"""`fulliautomatix status`: where every run is, and why a run is stuck."""

from __future__ import annotations

import json

from . import attention, dates, states


def attention_items(pending: list[dict], config: dict, now=None) -> list[attention.Problem]:
    """The pending runs (with their history) that need attention (fulliautomatix.attention.problems)."""
    return attention.problems(pending, config, now or dates.now(), attention.daq_live_at(config))


def _ordered(counts: dict[tuple[str, str], int]) -> list[tuple[tuple[str, str], int]]:
    order = {s: i for i, s in enumerate(states.RAW_STATES)}
    porder = {s: i for i, s in enumerate(states.PROCESSED_STATES)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 99), porder.get(kv[0][1], 99)))


def table(counts: dict[tuple[str, str], int], pending: list[dict], config: dict,
          items: list[attention.Problem] | None = None) -> str:
    """Counts per state, then one line per run that needs attention (BAD, HELD, STUCK, RETRY) and its fix."""
    lines = [f"{'raw_status':<14}{'processed_status':<18}{'runs':>8}"]
    for (raw, proc), n in _ordered(counts):
        lines.append(f"{raw:<14}{proc:<18}{n:>8}")
    lines.append(f"{'total':<32}{sum(counts.values()):>8}")
    items = attention_items(pending, config) if items is None else items
    if items:
        lines += ["", "runs needing attention:"] + [item.line() for item in items]
    return "\n".join(lines)


def as_json(counts: dict[tuple[str, str], int], items: list[attention.Problem]) -> dict:
    """What `status --json` prints: counts per state and the attention list."""
    return {"generated": dates.iso(dates.now()),
            "counts": [{"raw_status": raw, "processed_status": proc, "runs": n} for (raw, proc), n in _ordered(counts)],
            "total": sum(counts.values()),
            "attention": [item.as_dict() for item in items]}


def overview(counts: dict[tuple[str, str], int], pending: list[dict], config: dict, json_out: bool = False) -> str:
    """What `status` prints: the table, or with `--json` the counts and the attention list as JSON."""
    items = attention_items(pending, config)
    if json_out:
        return json.dumps(as_json(counts, items), indent=1, default=str)
    return table(counts, pending, config, items)


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
