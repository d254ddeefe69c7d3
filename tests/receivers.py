"""Real receivers on loopback for the notification tests: an SMTP server and HTTP web hooks.

Nothing is mocked: Apprise talks SMTP to aiosmtpd and HTTP to http.server,
each in a thread of the test process, each on a free loopback port.
"""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler: every accepted mail, parsed."""

    def __init__(self):
        self.mails: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.mails.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return sorted(str(m["Subject"]) for m in self.mails)


class SmtpServer:
    def __init__(self):
        from aiosmtpd.controller import Controller

        self.inbox = Inbox()
        self.port = free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def url(self, to: str = "shift@example.org", creds: str = "") -> str:
        return f"mailto://{creds}127.0.0.1:{self.port}?from=fa@example.org&to={to}&mode=insecure"

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class HookServer:
    """A web hook: records every JSON body POSTed to it."""

    def __init__(self):
        self.posts: list[dict] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, creds: str = "") -> str:
        return f"json://{creds}127.0.0.1:{self.port}/hook"

    def titles(self) -> list[str]:
        return sorted(p["title"] for p in self.posts)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections (the kernel's backlog) and never answers: a hung destination."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def wait_for(predicate, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
