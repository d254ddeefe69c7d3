"""Running commands on the DAQ, the cluster or here, always as argv lists.

A host is "local" or an ssh destination.  Remote commands are the same argv,
quoted word by word with :func:`shlex.quote` for the remote shell, so a value
can never be read as shell syntax.  Every run name is checked against the
configured pattern before it reaches any command (:func:`check_run_name`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass, field

# Checksum tools by algorithm name; all print "<hex>  <path>" lines.
CHECKSUM_TOOLS = {"sha256": "sha256sum", "blake2b": "b2sum", "xxh128": "xxh128sum"}


class BadRunName(ValueError):
    pass


class CommandFailed(RuntimeError):
    def __init__(self, argv: list[str], returncode: int, stderr: str):
        self.argv, self.returncode, self.stderr = argv, returncode, stderr
        tail = stderr.strip().splitlines()[-1:] or [""]
        super().__init__(f"{shlex.join(argv[:3])}... exited with {returncode}: {tail[0]}")


def check_run_name(name: str, pattern: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(pattern, name):
        raise BadRunName(f"run name {name!r} does not match the run name pattern {pattern}")
    return name


@dataclass(frozen=True)
class Host:
    """Where a command runs: 'local', or an ssh destination with options."""

    dest: str = "local"
    ssh: tuple[str, ...] = field(default=("ssh", "-o", "BatchMode=yes"))

    @property
    def is_local(self) -> bool:
        return self.dest == "local"

    def argv(self, argv: list[str]) -> list[str]:
        """The argv that runs `argv` on this host."""
        if self.is_local:
            return list(argv)
        return [*self.ssh, self.dest, "--", shlex.join(argv)]

    def path(self, path: str) -> str:
        """A path on this host as rsync names it (host:path when remote)."""
        return path if self.is_local else f"{self.dest}:{path}"

    def run(self, argv: list[str], *, check: bool = True, timeout: float | None = None,
            input: str | None = None, log=None) -> subprocess.CompletedProcess:
        full = self.argv(argv)
        if log is not None:
            log.write(f"$ {shlex.join(full)}\n")
            log.flush()
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise CommandFailed(full, proc.returncode, proc.stderr)
        return proc


def manifest_argv(directory: str, algorithm: str, parallel: int = 4) -> list[str]:
    """A portable command listing every file's size and checksum.

    Prints "S <size> <path>" lines (find) and "<hash>  ./<path>" lines (the
    checksum tool, run in parallel batches by xargs).
    """
    tool = CHECKSUM_TOOLS[algorithm]
    script = (
        'cd "$1" || exit 3; find . -type f -printf "S %s %P\\n" || exit 4; '
        f'find . -type f -print0 | xargs -0 -r -n 32 -P {int(parallel)} "$0" --'
    )
    return ["bash", "-c", script, tool, directory]


def parse_manifest(text: str) -> list[dict]:
    sizes: dict[str, int] = {}
    hashes: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("S "):
            _, size, path = line.split(" ", 2)
            sizes[path] = int(size)
        elif line.strip():
            digest, path = line.split(None, 1)
            hashes[path.strip()[2:] if path.strip().startswith("./") else path.strip()] = digest
    if sizes.keys() != hashes.keys():
        raise ValueError("checksum listing incomplete: " + ", ".join(sorted(sizes.keys() ^ hashes.keys()))[:200])
    return [{"path": p, "size": sizes[p], "hash": hashes[p]} for p in sorted(sizes)]


def manifest(host: Host, directory: str, algorithm: str) -> list[dict]:
    """Per-file sizes and checksums of a directory, computed on its host."""
    return parse_manifest(host.run(manifest_argv(directory, algorithm)).stdout)


def compare_manifests(expected: list[dict], actual: list[dict]) -> list[str]:
    """Human-readable differences; empty when the copies match exactly."""
    exp = {f["path"]: f for f in expected}
    act = {f["path"]: f for f in actual}
    problems = [f"missing {p}" for p in sorted(exp.keys() - act.keys())]
    problems += [f"unexpected {p}" for p in sorted(act.keys() - exp.keys())]
    for p in sorted(exp.keys() & act.keys()):
        if exp[p]["size"] != act[p]["size"]:
            problems.append(f"size of {p}: {act[p]['size']} != {exp[p]['size']}")
        elif exp[p]["hash"] != act[p]["hash"]:
            problems.append(f"checksum of {p} differs")
    return problems
