"""The soak's invariants, checked after every tick (see soak.py).

S1 every run's data is recoverable from at least one verified copy: its DAQ
   copy still holds exactly the bytes simulate-daq wrote, or it is archived and
   its archived copy did not fail a check (at the end: `restore` of every run,
   compared with those bytes).
S2 no state moved backwards except by a recorded retry or recovery: each
   history entry starts where the previous one of its field ended, and a step
   back carries a note saying why (or a failure recorded with it).
S3 no run was processed twice at once: the soak's processor wrapper takes a
   non-blocking lock per run; a second holder is recorded as an overlap.
S4 no job was submitted twice: no run's processor started more often than the
   runs DB recorded processing attempts for it.
S5 no file outside the configured directories changed: a sentinel tree beside
   them keeps its digests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fulliautomatix import states

from ..fa_testlib import digests

ORDER = {
    states.RAW: {s: i for i, s in enumerate(states.RAW_STATES)},
    states.PROCESSED: {"none": 0, "failed": 1, "queued": 2, "processing": 3, "processed": 4},
}
# Steps back that a failed attempt takes (the error is recorded in the run): the next tick retries.
RETRY_STEPS = {
    (states.RAW, "transferring", "acquired"),
    (states.RAW, "compressing", "ondeck"),
    (states.RAW, "archiving", "compressed"),
    (states.PROCESSED, "processing", "queued"),
}


@dataclass
class Invariants:
    """What the checks found so far; `violations` holds one line per breach (the soak fails on any)."""

    originals: dict[str, dict[str, str]] = field(default_factory=dict)  # run -> {file: sha256} as written
    sentinel: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # S -> (holds, of)
    checks: int = 0

    def breach(self, line: str) -> None:
        if line not in self.violations:
            self.violations.append(line)

    def check(self, docs: list[dict], daq: Path, sentinel: Path, soak_dir: Path, when: str) -> None:
        self.checks += 1
        self.counts["S1"] = (self._s1(docs, daq, when), len(self.originals))
        self.counts["S2"] = (sum(self._s2(d, when) for d in docs), len(docs))
        overlaps = _lines(soak_dir / "overlaps.log")
        for run in overlaps:
            self.breach(f"S3 {when}: run {run} was processed by two processes at once")
        starts = _lines(soak_dir / "starts.log")
        self.counts["S3"] = (len(starts) - len(overlaps), len(starts))
        self.counts["S4"] = (sum(self._s4(d, starts, when) for d in docs), len(docs))
        now = digests(sentinel, skip_links=True)
        if now != self.sentinel:
            changed = sorted(set(now.items()) ^ set(self.sentinel.items()))
            self.breach(f"S5 {when}: files outside the configured directories changed: {changed[:3]}")
        self.counts["S5"] = (sum(now.get(k) == v for k, v in self.sentinel.items()), len(self.sentinel))

    def _s1(self, docs: list[dict], daq: Path, when: str) -> int:
        by_name = {d.get("name"): d for d in docs}
        ok = 0
        for run, files in self.originals.items():
            doc = by_name.get(run) or {}
            archived = doc.get(states.RAW) == "archived" and (doc.get("archive") or {}).get("copy_ok") not in (False,)
            if archived or digests(daq / run, skip_links=True) == files:
                ok += 1
            else:
                self.breach(f"S1 {when}: run {run}: no verified copy left (DAQ copy changed, not archived)")
        return ok

    def _s2(self, doc: dict, when: str) -> bool:
        last: dict[str, str] = {}
        good = True
        for h in doc.get("history") or []:
            f, a, b = h.get("field"), h.get("from"), h.get("to")
            if f not in ORDER:
                continue
            if f in last and a != last[f]:
                self.breach(f"S2 {when}: run {doc['name']}: {f} {a} -> {b} does not follow {last[f]}")
                good = False
            back = ORDER[f].get(b, 0) < ORDER[f].get(a, 0) and b != "failed"
            if back and not h.get("note") and (f, a, b) not in RETRY_STEPS:
                self.breach(f"S2 {when}: run {doc['name']}: {f} went back {a} -> {b} with no recorded reason")
                good = False
            last[f] = b
        return good

    def _s4(self, doc: dict, starts: list[str], when: str) -> bool:
        name = doc.get("name")
        started = sum(1 for s in starts if s == name)
        recorded = sum(
            1
            for h in doc.get("history") or []
            if h.get("field") == states.PROCESSED and h.get("to") == "processing" and h.get("from") != "processing"
        )
        if started > recorded:
            self.breach(f"S4 {when}: run {name}: processor started {started} times, {recorded} attempts recorded")
            return False
        return True

    def lines(self) -> list[str]:
        names = {
            "S1": "runs-recoverable",
            "S2": "no-unrecorded-step-back",
            "S3": "processor-starts-alone",
            "S4": "no-double-submission",
            "S5": "outside-files-unchanged",
        }
        return [
            f"{s} {names[s]}: {ok}/{of}" + (f" (after {self.checks} checks)" if s == "S2" else "")
            for s, (ok, of) in sorted(self.counts.items())
        ]


def _lines(path: Path) -> list[str]:
    try:
        return [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []
