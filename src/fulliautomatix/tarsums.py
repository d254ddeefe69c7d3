"""Proving a tarball right where it lies: its size, its sha256, and every member's size and checksum.

For every stage that must prove a tarball right without copying it: the
compress stage writes a run's ``.tar.zst`` on the cluster and checks it *as it
is written* (:func:`write_verified`: members checked with the transfer's
checksum algorithm), and reads an existing one back (:func:`read_back`); the
``local``/``rsync`` archive backends read a batch tarball back on the archive
host (members with sha256).  Each is one pass over the bytes by
:mod:`fulliautomatix.tarstream`, run as ``python3 -c`` on that host through
:meth:`hosts.Host.run_guarded`, so on a remote host only the checksums cross
the network, and a local host is just ``Host("local")`` (this Python).

A host without python3 gets the older two-pass way: tar writes the file, then
:data:`READ_BACK` reads it twice (sha256sum, then tar ``--to-command`` with the
member checksum tool); it needs bash, GNU tar, coreutils, the checksum tool
and, for ``.tar.zst``, zstd.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from . import hosts, tarparse, tarstream

# The one-pass program, sent as `python3 -c` (it imports nothing of this package).
# One python3 -c program: the tar parser first, then tarstream, whose import of it then fails and is skipped.
STREAM_SOURCE = Path(tarparse.__file__).read_text() + "\n\n" + Path(tarstream.__file__).read_text()
NO_PYTHON = 127  # the remote shell's exit status for a command that is not installed

# $1: the tarball; $2: the checksum tool for members (sha256sum, xxh128sum, b2sum);
# $3: "zstd" when the tarball is zstd-compressed (it is decompressed as a stream).
# Prints "B <bytes>", "F <sha256 of the file>", then "M <size> <checksum> <name>"
# for every regular member, in archive order.
READ_BACK = r"""
f=$1; export FA_SUM=$2; unz=$3
[ -f "$f" ] || { echo "no such file: $f" >&2; exit 3; }
command -v "$FA_SUM" >/dev/null 2>&1 || { echo "$FA_SUM is not installed on $(hostname)" >&2; exit 5; }
size=$(stat -c %s -- "$f") || exit 4
printf 'B %s\n' "$size"
sum=$(sha256sum < "$f") || exit 4
printf 'F %s\n' "${sum%% *}"
d=$(mktemp -d) || exit 4
trap 'rm -rf "$d"' EXIT
cd "$d" || exit 4
set -o pipefail
tosum='s=$("$FA_SUM") && printf "M %s %s %s\n" "$TAR_SIZE" "${s%% *}" "$TAR_FILENAME"'
if [ "$unz" = zstd ]; then
  zstd -dcq -- "$f" | tar -xf - --to-command="$tosum"
else
  tar -xf "$f" --to-command="$tosum"
fi
"""


class ReadBackError(Exception):
    pass


@dataclass
class TarSums:
    bytes: int  # size of the tarball file
    sha256: str  # of the tarball file
    members: dict[str, tuple[int, str]]  # name -> (size, checksum)


def argv(path: str, algorithm: str = "sha256", compressed: bool = False) -> list[str]:
    """The two-pass read-back in bash (hosts without python3)."""
    return [
        "bash",
        "-c",
        READ_BACK,
        "fa-read-back",
        path,
        hosts.CHECKSUM_TOOLS[algorithm],
        "zstd" if compressed else "",
    ]


def python(host: hosts.Host) -> str:
    """The Python that runs tarstream there: this one here, python3 from PATH on a remote host."""
    return sys.executable if host.is_local else "python3"


def stream_argv(
    host: hosts.Host,
    mode: str,
    path: str,
    algorithm: str,
    compressed: bool,
    command: list[str] = (),
    compressor: list[str] | None = None,
) -> list[str]:
    """tarstream's command line on `host` (see its docstring for the modes)."""
    tail = ["--", *command] if command else []
    how = ["stream", shlex.join(compressor)] if compressor else ["zstd" if compressed else ""]
    return [python(host), "-c", STREAM_SOURCE, "fa-tarstream", mode, path, algorithm, *how, *tail]


def parse(text: str) -> TarSums:
    members: dict[str, tuple[int, str]] = {}
    size = digest = None
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "B":
            size = int(rest)
        elif kind == "F":
            digest = rest.strip()
        elif kind == "M":
            msize, mdigest, name = rest.split(" ", 2)
            members[name] = (int(msize), mdigest)
    if size is None or not digest:
        raise ReadBackError("read-back printed no size or checksum of the tarball")
    return TarSums(size, digest, members)


def _run(host: hosts.Host, argv: list[str], what: str, log) -> hosts.Result:
    try:
        return host.run_guarded(argv, check=False, log=log)
    except OSError as exc:
        raise ReadBackError(f"{what}: {exc}") from None


def _parsed(res: hosts.Result, what: str) -> TarSums:
    if res.returncode != 0:
        raise ReadBackError(f"{what} failed (exit {res.returncode}): {hosts.cause(res.stderr)}")
    return parse(res.stdout)


def read_back(host: hosts.Host, path: str, algorithm: str = "sha256", compressed: bool = False, log=None) -> TarSums:
    """Read the tarball at `path` on `host` back in one pass (guarded); raises ReadBackError.

    One read of the file feeds its sha256 and (for .tar.zst) the decompressor,
    whose output the tar parser checksums member by member.
    """
    what = f"reading {host.path(path)} back"
    res = _run(host, stream_argv(host, "read", path, algorithm, compressed), what, log)
    if res.returncode == NO_PYTHON and not host.is_local:
        res = _run(host, argv(path, algorithm, compressed), what, log)
    return _parsed(res, what)


def write_verified(
    host: hosts.Host,
    command: list[str],
    out: str,
    algorithm: str,
    compressed: bool = True,
    log=None,
    compressor: list[str] | None = None,
) -> TarSums:
    """Run `command` on `host` (a tar writing the tarball to stdout) into `out`, verified.

    Without `compressor`: `command` compresses (tar -I zstd) and its output
    goes straight to `out`; then one read of `out` feeds its sha256 and the
    decompressor, into the tar parser that checksums every member, while
    `out` is fsynced.  With `compressor` (e.g.
    zstd --check -c): `command` writes a plain tar, whose members the parser
    checksums on their way into the compressor, and the compressor's output
    is written to `out` and hashed as it is written, then `out` is fsynced.
    Either way `out`'s size is checked against the bytes hashed.  Raises ReadBackError (the caller deletes `out`).
    Without python3 there: tar writes `out` itself and :func:`read_back`
    reads it twice in bash.
    """
    what = f"writing {host.path(out)}"
    res = _run(host, stream_argv(host, "write", out, algorithm, compressed, command, compressor), what, log)
    if res.returncode == NO_PYTHON and not host.is_local:
        to_file = [out if a == "-" and command[i - 1] == "-cf" else a for i, a in enumerate(command)]
        if compressor:
            i = to_file.index("-cf")
            to_file[i:i] = ["-I", shlex.join(compressor)]
        made = host.run(to_file, check=False, log=log)
        if made.returncode != 0:
            raise ReadBackError(
                f"{to_file[0]} on {host.name} exited with {made.returncode}: {hosts.cause(made.stderr)}"
            )
        res = _run(host, argv(out, algorithm, compressed), f"reading {host.path(out)} back", log)
    return _parsed(res, what)
