"""The report's terms, shared by its figures (:mod:`.report`) and its page (:mod:`.report_html`).

A run's place in the backlog, the four stages, and how many rows the page lists.
"""

from __future__ import annotations

from . import states

LISTED = 200  # attention rows (and run timelines) in the page; --json and status list all
BACKLOG = (
    "acquired",
    "transferring",
    "ondeck",
    "queued",
    "processing",
    "failed",
    "processed",
    "compressing",
    "compressed",
    "archiving",
)
STAGES = states.STAGES


def label(raw, proc) -> str | None:
    """A run's place in the backlog, or None once archived (or in an unknown state)."""
    if raw == "ondeck":
        return {
            "none": "ondeck",
            "queued": "queued",
            "processing": "processing",
            "failed": "failed",
            "processed": "processed",
        }.get(proc)
    return raw if raw in BACKLOG else None
