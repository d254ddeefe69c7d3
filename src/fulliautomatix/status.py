"""`fulliautomatix status`: where every run is, and why a run is stuck."""

from __future__ import annotations

import json

from . import attention, dates, states


SHOWN = 20  # lines of one of CAPPED kinds at most; the rest are counted
CAPPED = ("LOST-COPY", "ONE-COPY")  # kinds that may name many runs at once (a purging site: every run on deck)


def attention_items(pending: list[dict], config: dict, now=None, db=None, raw_values=None) -> list[attention.Problem]:
    """The runs that need attention (fulliautomatix.attention): from the pending runs (with their
    history) alone, or with `db` also duplicate names, unknown states and lost archived copies."""
    if db is not None:
        return attention.gather(db, config, now or dates.now(), pending, raw_values)
    return attention.problems(pending, config, now or dates.now(), attention.daq_live_at(config))


def attention_lines(items: list[attention.Problem]) -> list[str]:
    """One line per item; at most SHOWN of each CAPPED kind, the rest counted."""
    lines: list[str] = []
    shown = dict.fromkeys(CAPPED, 0)
    for item in items:
        if item.kind in shown:
            shown[item.kind] += 1
            if shown[item.kind] > SHOWN:
                continue
        lines.append(item.line())
    return lines + [f"  ... and {n - SHOWN} more {kind}" for kind, n in shown.items() if n > SHOWN]


def _ordered(counts: dict[tuple[str, str], int]) -> list[tuple[tuple[str, str], int]]:
    order = {s: i for i, s in enumerate(states.RAW_STATES)}
    porder = {s: i for i, s in enumerate(states.PROCESSED_STATES)}
    return sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 99), porder.get(kv[0][1], 99)))


def table(
    counts: dict[tuple[str, str], int], pending: list[dict], config: dict, items: list[attention.Problem] | None = None
) -> str:
    """Counts per state, then one line per run that needs attention (attention.ORDER) and its fix."""
    lines = [f"{'raw_status':<14}{'processed_status':<18}{'runs':>8}"]
    for (raw, proc), n in _ordered(counts):
        lines.append(f"{raw:<14}{proc:<18}{n:>8}")
    lines.append(f"{'total':<32}{sum(counts.values()):>8}")
    items = attention_items(pending, config) if items is None else items
    if items:
        lines += ["", "runs needing attention:"] + attention_lines(items)
    return "\n".join(lines)


def as_json(counts: dict[tuple[str, str], int], items: list[attention.Problem]) -> dict:
    """What `status --json` prints: counts per state and the attention list."""
    return {
        "generated": dates.iso(dates.now()),
        "counts": [{"raw_status": raw, "processed_status": proc, "runs": n} for (raw, proc), n in _ordered(counts)],
        "total": sum(counts.values()),
        "attention": [item.as_dict() for item in items],
    }


def overview(
    counts: dict[tuple[str, str], int], pending: list[dict], config: dict, json_out: bool = False, db=None
) -> str:
    """What `status` prints: the table, or with `--json` the counts and the attention list as JSON
    (`db`: the runs DB, for what the pending runs cannot show; see :func:`attention_items`)."""
    items = attention_items(pending, config, db=db, raw_values={raw for raw, _ in counts})
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
        lines.append(
            f"  {dates.iso(h.get('at'))}  {h.get('field'):<17}{h.get('from')} -> {h.get('to')}  "
            f"on {h.get('host')}{note}"
        )
    return "\n".join(lines)


def _shown(value) -> str:
    """How run_details prints what JSON cannot hold: times in ISO 8601, anything else as str()."""
    try:
        return dates.json_default(value)
    except TypeError:
        return str(value)
