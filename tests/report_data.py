"""Run documents with lives in the last days, for the report's tests (importable as `report_data`).

Each document is what the stages leave in the runs DB: its history entries
at given times, the transfer/processing/compressed/archive sub-documents.
Half the times are written as ISO strings and half as BSON dates, as in a
runs DB between the move to dates and `fulliautomatix db migrate`.
"""

from __future__ import annotations

import datetime as _dt

UTC = _dt.timezone.utc
RAW = ["acquired", "transferring", "ondeck", "compressing", "compressed", "archiving", "archived"]


def stamp(t: _dt.datetime, as_date: bool):
    return t.replace(tzinfo=None) if as_date else t.isoformat(timespec="seconds")


class Life:
    """One run's life, built step by step from a start time."""

    def __init__(self, number: int, start: _dt.datetime, as_date: bool = False, day: str = "261120"):
        self.name, self.t, self.as_date = f"{day}_{number:04d}", start, as_date
        self.doc = {
            "name": self.name,
            "number": number,
            "events": 1000,
            "source": "physics",
            "raw_status": "acquired",
            "raw_location": "zinc",
            "processed_status": "none",
            "start": stamp(start, as_date),
            "history": [],
        }

    def step(self, hours: float, field: str, to: str, note: str | None = None, **sets) -> "Life":
        self.t += _dt.timedelta(hours=hours)
        entry = {
            "at": stamp(self.t, self.as_date),
            "field": field,
            "from": self.doc[field],
            "to": to,
            "host": "testhost",
        }
        if note:
            entry["note"] = note
        self.doc["history"].append(entry)
        self.doc[field] = to
        self.doc["updated_at"] = stamp(self.t, self.as_date)
        self.doc["updated_day"] = self.t.year * 10000 + self.t.month * 100 + self.t.day  # as RunsDB writes it
        for key, value in sets.items():
            self.doc[key] = {**self.doc.get(key, {}), **value}
        return self

    def transfer(self, failures: int = 0, nbytes: int = 4_000_000_000) -> "Life":
        for _ in range(failures):
            self.step(0.2, "raw_status", "transferring")
            self.step(
                0.3,
                "raw_status",
                "acquired",
                "transfer failed",
                transfer={"error": f"run {self.name}: rsync exited with 23", "attempts": 1},
            )
        self.step(0.5, "raw_status", "transferring")
        return self.step(
            1.0,
            "raw_status",
            "ondeck",
            "transfer verified",
            transfer={
                "bytes": nbytes,
                "seconds": 40.0,
                "mb_per_second": 100.0 + self.doc["number"],
                "error": None,
                "finished": stamp(self.t + _dt.timedelta(hours=1.0), self.as_date),
                "attempts": failures + 1,
            },
        )

    def process(self, queue_hours: float = 2, run_hours: float = 1, walltime: str = "02:00:00") -> "Life":
        self.step(0.1, "processed_status", "queued", processing={"walltime": walltime, "queue": "standby"})
        self.step(queue_hours, "processed_status", "processing", "job 12 started")
        return self.step(
            run_hours,
            "processed_status",
            "processed",
            "processed",
            processing={
                "seconds": run_hours * 3600,
                "finished": stamp(self.t + _dt.timedelta(hours=run_hours), self.as_date),
                "exit_code": 0,
            },
        )

    def compress(self, nbytes: int = 1_000_000_000) -> "Life":
        self.step(0.2, "raw_status", "compressing")
        return self.step(
            0.5,
            "raw_status",
            "compressed",
            "compressed and verified",
            compressed={"bytes": nbytes, "at": stamp(self.t + _dt.timedelta(hours=0.5), self.as_date), "error": None},
        )

    def archive(self, wait_hours: float = 5) -> "Life":
        self.step(wait_hours, "raw_status", "archiving")
        return self.step(
            0.5,
            "raw_status",
            "archived",
            "archived and verified",
            archive={
                "bytes": self.doc["compressed"]["bytes"],
                "error": None,
                "verified": stamp(self.t + _dt.timedelta(hours=0.5), self.as_date),
            },
        )


def site(now: _dt.datetime) -> dict[str, dict]:
    """Runs in every state, by role: archived ones over the last days, and one of each kind of attention."""
    runs = {}
    for i in range(1, 9):  # archived over the last 8 days, some after failed attempts
        life = Life(i, now - _dt.timedelta(days=9 - i), as_date=bool(i % 2))
        life.transfer(failures=i % 3).process(queue_hours=i, run_hours=0.5 + i / 4).compress().archive()
        runs[f"archived{i}"] = life.doc
    held = Life(20, now - _dt.timedelta(hours=5))
    for _ in range(3):
        held.step(0.2, "raw_status", "transferring").step(0.2, "raw_status", "acquired", "transfer failed")
    held.doc["transfer"] = {"attempts": 3, "error": "rsync exited with 12 (protocol data stream)"}
    runs["held"] = held.doc
    runs["stuck"] = Life(21, now - _dt.timedelta(hours=12), as_date=True).step(0.5, "raw_status", "transferring").doc
    retry = Life(22, now - _dt.timedelta(minutes=40)).step(0.1, "raw_status", "transferring")
    retry.step(
        0.1, "raw_status", "acquired", "transfer failed", transfer={"attempts": 1, "error": "rsync exited with 23"}
    )
    runs["retry"] = retry.doc
    runs["bad"] = {
        "name": "261120_0023",
        "number": 23,
        "source": "physics",
        "raw_status": "acquired",
        "raw_location": "zinc",
        "processed_status": "none",
        "events": "many",
        "start": stamp(now - _dt.timedelta(hours=2), False),
        "history": [],
    }
    runs["acquired"] = Life(24, now - _dt.timedelta(minutes=10)).doc
    runs["queued"] = Life(25, now - _dt.timedelta(hours=6)).transfer().step(0.1, "processed_status", "queued").doc
    runs["compressed"] = Life(26, now - _dt.timedelta(days=1), as_date=True).transfer().process().compress().doc
    return runs
