"""Notifications: a message when a problem appears, when it ends, reminders, a daily digest.

What is open and what was sent lives in ``<work_dir>/state/notify.json``,
read and written (atomically) only under ``state/notify.lock``, so two ticks
never send the same message.  A message waits in the file's outbox until each
destination (``notify.urls``, Apprise URLs) has taken it; a destination that
fails is tried again by the next tick.  Sending is bounded by
``notify.timeout_seconds`` and never raises: a failure is one returned line
that names the destination as ``notify.urls[i] (scheme)``, never its URL.

Problems come from :mod:`fulliautomatix.attention` (runs HELD, BAD, STUCK, or
whose archive verification failed) and from the ticks themselves: ``CRASH``
(the wrapper saw Snakemake fail without a job's own error line), ``RUNSDB``
and ``DAQ`` (unreachable for ``notify.after_failed_ticks`` ticks in a row).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import re
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import attention, claims, dates, markers
from . import config as fa_config

RUN_KINDS = ("BAD", "LOST", "LOST-COPY", "HELD", "STUCK")  # and RETRY of the archive stage: a failed verification
TICK_KINDS = {"CRASH": "a tick crashed", "RUNSDB": "the runs DB is unreachable", "DAQ": "the DAQ is unreachable"}
WARNING_KINDS = ("STUCK", "DAQ")  # sent as warnings; the others as failures
OUTBOX_DAYS = 2  # a message nobody took for this long is dropped
OUTBOX_MAX = 500


def notifiable(p: attention.Problem) -> bool:
    return p.kind in RUN_KINDS or p.kind in TICK_KINDS or (p.kind == "RETRY" and p.stage == "archive")


def subject(kind: str, run: str) -> str:
    if kind in TICK_KINDS:
        return TICK_KINDS[kind]
    if kind == "RETRY":
        return f"archive verification failed for run {run}"
    return f"{kind} run {run}"


# -- what to send (pure) ----------------------------------------------------------


def events(
    state: dict, current: list[attention.Problem], now: _dt.datetime, repeat_hours: float, where: str = ""
) -> list[dict]:
    """Messages for problems that appeared, are still open after repeat_hours, or ended; updates state["open"]."""
    opened = state.setdefault("open", {})
    stamp = now.isoformat(timespec="seconds")
    out = []
    seen = set()
    for p in current:
        seen.add(p.key)
        entry = opened.get(p.key)
        if entry is None:
            opened[p.key] = {
                "kind": p.kind,
                "run": p.run,
                "reason": p.reason,
                "command": p.command,
                "first": stamp,
                "last_sent": stamp,
            }
            out.append(_message("new", opened[p.key], now, where))
            continue
        entry.update(reason=p.reason, command=p.command)
        last = dates.as_utc(entry.get("last_sent")) or now
        if repeat_hours and (now - last).total_seconds() >= repeat_hours * 3600:
            entry["last_sent"] = stamp
            out.append(_message("repeat", entry, now, where))
    for key in [k for k in opened if k not in seen]:
        out.append(_message("resolved", opened.pop(key), now, where))
    return out


def _message(what: str, entry: dict, now: _dt.datetime, where: str) -> dict:
    kind, what_is = entry["kind"], subject(entry["kind"], entry["run"])
    first = dates.as_utc(entry["first"]) or now
    age = dates.duration((now - first).total_seconds())
    if what == "resolved":
        return {
            "title": f"[fulliautomatix] resolved: {what_is}",
            "type": "success",
            "body": f"Resolved after {age}. It was: {entry['reason']}\n\n{where}".rstrip(),
        }
    title = f"[fulliautomatix] {what_is}" if what == "new" else f"[fulliautomatix] still open for {age}: {what_is}"
    fix = f"\n\nTo fix or inspect: {entry['command']}" if entry.get("command") else ""
    return {
        "title": title,
        "type": "warning" if kind in WARNING_KINDS else "failure",
        "body": f"{entry['reason']}{fix}\n\nOpen since {entry['first']}. {where}",
    }


def capped(messages: list[dict], limit: int) -> list[dict]:
    """At most `limit` messages: the rest go out together in one."""
    if len(messages) <= limit:
        return messages
    rest = messages[limit - 1 :]
    body = "\n\n".join(f"{m['title']}\n{m['body'].split(chr(10))[0]}" for m in rest)
    kinds = {m["type"] for m in rest}
    return messages[: limit - 1] + [
        {
            "title": f"[fulliautomatix] {len(rest)} more events",
            "body": body,
            "type": "failure" if "failure" in kinds else sorted(kinds)[0],
        }
    ]


def digest(state: dict, counts: dict, now_local: _dt.datetime, digest_at: str) -> dict | None:
    """The daily digest, once a day after digest_at (local time); None when not due."""
    if not digest_at or now_local.strftime("%H:%M") < digest_at:
        return None
    day = now_local.date().isoformat()
    if state.get("digest_day") == day:
        return None
    state["digest_day"] = day
    opened = state.get("open", {})
    lines = [
        "runs per state: " + (", ".join(f"{raw}/{proc} {n}" for (raw, proc), n in sorted(counts.items())) or "none")
    ]
    lines += [f"{len(opened)} open problems:"] + [f"- {e['reason']} (since {e['first']})" for e in opened.values()]
    return {
        "title": f"[fulliautomatix] daily digest: {len(opened)} open problems",
        "type": "info",
        "body": "\n".join(lines),
    }


# -- state file ------------------------------------------------------------------


def state_path(config: dict) -> Path:
    return fa_config.state_dir(config) / "notify.json"


@contextmanager
def locked_state(config: dict, wait: float = 60):
    """The notification state, loaded under the lock; saved by calling the yielded save()."""
    path = state_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with claims.locked(path.with_name("notify.lock"), timeout=wait, poll=0.2):
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, json.JSONDecodeError):
            state = {}  # a damaged file: start afresh rather than never notify again
        yield state, lambda: markers.write(path, state)


# -- sending ---------------------------------------------------------------------


def url_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def label(urls: list[str], i: int) -> str:
    """How logs name a destination: its place in the config and its scheme, never the URL."""
    return f"notify.urls[{i}] ({urls[i].split('://', 1)[0]})"


def scrub(text: str, urls: list[str]) -> str:
    """Text with every credential-like part of the URLs (user, password, tokens, query values) starred."""
    secrets = set()
    for url in urls:
        parts = urlsplit(url)
        secrets.update(filter(None, (parts.username, parts.password)))
        host = parts.netloc.rsplit("@", 1)[-1].split(":")[0]
        if host and "." not in host and host != "localhost":
            secrets.add(host)  # slack://TokenA/...: the "host" is a token
        secrets.update(seg for seg in parts.path.split("/") if len(seg) >= 4)
        secrets.update(v for kv in parts.query.split("&") for v in kv.split("=", 1)[1:] if len(v) >= 4)
    for secret in sorted(secrets | {unquote(s) for s in secrets}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"//[^@/\s]*@", "//***@", text)


class _Capture(logging.Handler):
    """Apprise's own warnings, kept for one send (they may name the URL: scrubbed before use)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def _send(url: str, message: dict, timeout: float) -> str | None:
    """Send one message to one URL in a thread bounded by timeout; None on success, else why not."""
    try:
        import apprise
    except ImportError:
        return "the apprise package is not installed (pip install apprise)"
    capture = _Capture()
    alog = logging.getLogger("apprise")
    alog.handlers[:] = [capture]
    alog.propagate = False
    alog.setLevel(logging.WARNING)
    result: dict = {}

    def work():
        try:
            sender = apprise.Apprise()
            if not sender.add(url):
                result["error"] = "not a URL Apprise knows"
                return
            result["ok"] = bool(
                sender.notify(
                    body=message["body"],
                    title=message["title"],
                    notify_type=message.get("type", "info"),
                    body_format=apprise.NotifyFormat.TEXT,
                )
            )
        except Exception as exc:  # noqa: BLE001 - a destination's failure must never fail the tick
            result["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=work, name="fulliautomatix-notify", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        return f"no answer within {timeout:.0f} s"
    if result.get("ok"):
        return None
    return result.get("error") or (capture.lines[-1] if capture.lines else "refused")


def deliver(state: dict, urls: list[str], save, budget: float, now: _dt.datetime) -> list[str]:
    """Send what the outbox holds, each message to each destination still missing it; one line per failure."""
    outbox = state.setdefault("outbox", [])
    lines = []
    expired = [m for m in outbox if (now - (dates.as_utc(m.get("created")) or now)).days >= OUTBOX_DAYS]
    del outbox[: max(len(outbox) - OUTBOX_MAX, 0)]
    if expired:
        outbox[:] = [m for m in outbox if m not in expired]
        lines.append(f"notify: {len(expired)} messages no destination took in {OUTBOX_DAYS} days were dropped")
    ids = {url_id(u): i for i, u in enumerate(urls)}
    failed: dict[int, str] = {}
    start = time.monotonic()
    for message in list(outbox):
        message["pending"] = [uid for uid in message["pending"] if uid in ids]
        for uid in list(message["pending"]):
            i = ids[uid]
            left = budget - (time.monotonic() - start)
            if i in failed or left <= 0:
                continue
            error = _send(urls[i], message, left)
            if error is None:
                message["pending"].remove(uid)
                save()
            else:
                failed[i] = scrub(error, urls)
        if not message["pending"]:
            outbox.remove(message)
    save()
    waiting = len(outbox)
    for i, error in failed.items():
        lines.append(f"notify: {label(urls, i)} failed: {error}; {waiting} messages wait for the next tick")
    if budget - (time.monotonic() - start) <= 0 and waiting:
        lines.append(f"notify: {budget:g} s spent sending; {waiting} messages wait for the next tick")
    return lines


def queue(state: dict, messages: list[dict], urls: list[str], now: _dt.datetime) -> None:
    stamp = now.isoformat(timespec="seconds")
    state.setdefault("outbox", []).extend(
        {**m, "created": stamp, "pending": [url_id(u) for u in urls]} for m in messages
    )


# -- entry points ----------------------------------------------------------------


def where(config: dict) -> str:
    """The messages' last line: which installation speaks."""
    return f"Work dir {config['work_dir']} on {socket.gethostname()}."


def failure_problems(state: dict, after: int) -> list[attention.Problem]:
    """Tick-level problems from the failure counts (CRASH at once, the others after `after` ticks)."""
    out = []
    for kind, f in sorted(state.get("failures", {}).items()):
        if f.get("count", 0) >= (1 if kind == "CRASH" else after):
            out.append(
                attention.Problem(
                    "",
                    kind,
                    f"{f['reason']} ({f['count']} ticks in a row)" if kind != "CRASH" else f["reason"],
                    f.get("command", ""),
                )
            )
    return out


def tick_end(
    config: dict, found: list[attention.Problem], counts: dict, daq: str, now: _dt.datetime | None = None
) -> list[str]:
    """The end of a tick: open and resolve problems, remind, digest, send. Returns log lines."""
    settings = config["notify"]
    now = now or _dt.datetime.now(_dt.timezone.utc)
    try:
        with locked_state(config) as (state, save):
            failures = state.setdefault("failures", {})
            for kind in ("CRASH", "RUNSDB"):
                failures.pop(kind, None)  # this tick reached its end, with the runs DB
            if daq == "unreachable":
                count = failures.get("DAQ", {}).get("count", 0) + 1
                failures["DAQ"] = {
                    "count": count,
                    "reason": "the DAQ could not be asked whether it is live",
                    "command": "fulliautomatix --transfer --log debug",
                }
            elif daq:
                failures.pop("DAQ", None)
            current = [p for p in found if notifiable(p)] + failure_problems(state, settings["after_failed_ticks"])
            messages = events(state, current, now, settings["repeat_hours"], where(config))
            extra = digest(state, counts, now.astimezone(), settings["digest_at"])
            messages = capped(messages, settings["max_messages"]) + ([extra] if extra else [])
            if not settings["urls"]:
                state["outbox"] = []
                save()
                return []
            queue(state, messages, settings["urls"], now)
            return deliver(state, settings["urls"], save, settings["timeout_seconds"], now)
    except Exception as exc:  # noqa: BLE001 - sending never fails a tick
        return [f"notify: nothing sent this tick ({scrub(f'{type(exc).__name__}: {exc}', settings['urls'])})"]


def report_failure(
    config: dict, kind: str, reason: str, command: str = "", now: _dt.datetime | None = None
) -> list[str]:
    """A failure seen outside a finished tick (the wrapper: CRASH, RUNSDB). Returns log lines."""
    settings = config["notify"]
    now = now or _dt.datetime.now(_dt.timezone.utc)
    try:
        with locked_state(config) as (state, save):
            failures = state.setdefault("failures", {})
            count = failures.get(kind, {}).get("count", 0) + 1
            failures[kind] = {"count": count, "reason": reason, "command": command}
            threshold = 1 if kind == "CRASH" else settings["after_failed_ticks"]
            current = [p for p in failure_problems(state, settings["after_failed_ticks"]) if p.kind == kind]
            opened = state.setdefault("open", {})
            new = [p for p in current if p.key not in opened] if count >= threshold else []
            fresh: dict = {"open": {}}
            messages = events(fresh, new, now, 0, where(config))
            opened.update(fresh["open"])
            if not settings["urls"]:
                save()
                return []
            queue(state, messages, settings["urls"], now)
            return deliver(state, settings["urls"], save, settings["timeout_seconds"], now)
    except Exception as exc:  # noqa: BLE001 - sending never fails a tick
        return [f"notify: nothing sent ({scrub(f'{type(exc).__name__}: {exc}', settings['urls'])})"]
