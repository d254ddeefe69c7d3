"""Why a command failed, on one line: the exception and the stderr line that names the cause."""

from __future__ import annotations

import shlex


def short(argv: list[str]) -> str:
    """A command on one short line: an inline script by its name (``bash -c SCRIPT NAME ARGS``), even in the
    one command string ssh runs remotely."""
    words = list(argv)
    if words and "\n" in words[-1]:
        try:
            words = words[:-1] + shlex.split(words[-1])
        except ValueError:
            pass
    for i in range(len(words) - 2):
        if words[i : i + 2] == ["bash", "-c"]:
            return shlex.join(words[:i] + words[i + 3 : i + 6]) + ("..." if len(words) > i + 6 else "")
    return shlex.join(words[:3]) + "..."


class CommandFailed(RuntimeError):
    def __init__(self, argv: list[str], returncode: int, stderr: str):
        self.argv, self.returncode, self.stderr = argv, returncode, stderr
        super().__init__(f"{short(argv)} exited with {returncode}: {cause(stderr)}")


# Lines naming a cause better than a command's last line (rsync's "error in file IO (code 11)",
# "write error: Broken pipe (32)", tar's "Error is not recoverable").
CAUSES = ("No space left on device", "Disk quota exceeded", "Read-only file system", "Permission denied")


def cause(stderr: str) -> str:
    """The line of a failed command's stderr that names the cause (CAUSES first), else its last line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("fa-guard-start ")]
    for known in CAUSES:
        for line in lines:
            if known in line:
                return line
    return lines[-1] if lines else ""
