"""Per-file sizes and checksums of a directory, computed on its own host, and how two listings differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .confine import CONFINE, split_confined
from .errors import CommandFailed

if TYPE_CHECKING:
    from .runner import Host

# Checksum tools by algorithm name; all print "<hex>  <path>" lines.
CHECKSUM_TOOLS = {"xxh128": "xxh128sum", "blake2b": "b2sum", "sha256": "sha256sum"}
# What transfer.checksum = auto tries, best first (sha256sum is in coreutils).
AUTO_CHECKSUMS = ("xxh128", "sha256")

# Lists every regular file under "$1": first "A <algorithm>", then one
# "<hex>  ./<path>" line per file from the first available checksum tool of
# the "<algorithm>:<tool>" arguments, then "S <size> <mtime> <path>" lines.
# The sizes and mtimes are listed *after* hashing, so a file changed while it
# was hashed shows a newer mtime.  The files are hashed by 4 processes at once,
# each given a quarter of them: a checksum tool hashes a file of the page cache
# faster than it starts, so fewer, longer processes finish first (a run of 256
# files: 0.05 s in 32 processes, 0.035 s in 4).  The four share one pipe, so
# each must write whole lines (stdbuf -oL: one write per line, which a pipe
# keeps whole); without stdbuf, processes of 8 files each write their few
# lines at once when they exit, as before.
MANIFEST_BODY = r"""
for pair; do
  if command -v "${pair#*:}" >/dev/null 2>&1; then
    echo "A ${pair%%:*}"
    if command -v stdbuf >/dev/null 2>&1; then
      per=$(( $(find . -type f -printf . | wc -c) / 4 + 1 )) lines="stdbuf -oL"
    else
      per=8 lines=
    fi
    find . -type f -print0 | xargs -0 -r -n $per -P 4 $lines "${pair#*:}" -- || exit 4
    find . -type f -printf 'S %s %T@ %P\n' || exit 4
    exit 0
  fi
done
echo "none of these checksum tools is installed on $(hostname): $*" >&2
exit 5
"""
MANIFEST = 'cd -- "$1" || exit 3\nshift\n' + MANIFEST_BODY
# The same for "$1/$2" confined to the root "$1" (a run's DAQ copy): refused unless it is a
# real directory inside it holding only regular files and directories.
CONFINED_MANIFEST = CONFINE + 'confine "$1" "$2" || exit\nshift 2\n' + MANIFEST_BODY


@dataclass
class Manifest:
    """Per-file sizes and checksums of a directory, as computed on its host."""

    algorithm: str
    files: list[dict]  # [{path, size, hash}], sorted by path
    newest_mtime: float | None  # newest file modification time (that host's clock)
    started: float | None = None  # that host's clock when the listing started


def manifest_argv(
    directory: str, algorithm: str | list[str] | tuple[str, ...], confined_to: str | None = None
) -> list[str]:
    """The command listing every file's checksum, size and mtime.

    `algorithm` is one name or a list in order of preference: the first one
    whose tool is installed on the host is used (and reported).  With
    `confined_to` (a root directory) the directory must be a real directory
    directly inside it, holding nothing but regular files and directories
    (CONFINE), or the command refuses it (exit UNSAFE_EXIT).
    """
    names = [algorithm] if isinstance(algorithm, str) else list(algorithm)
    pairs = [f"{a}:{CHECKSUM_TOOLS[a]}" for a in names]
    script = MANIFEST if confined_to is None else CONFINED_MANIFEST
    where = [directory] if confined_to is None else split_confined(directory, confined_to)
    return ["bash", "-c", script, "fa-manifest", *where, *pairs]


def parse_listing(text: str) -> Manifest:
    sizes: dict[str, int] = {}
    hashes: dict[str, str] = {}
    algorithm = ""
    newest = None
    for line in text.splitlines():
        if line.startswith("A "):
            algorithm = line[2:].strip()
        elif line.startswith("S "):
            _, size, mtime, path = line.split(" ", 3)
            sizes[path] = int(size)
            newest = float(mtime) if newest is None else max(newest, float(mtime))
        elif line.strip():
            digest, path = line.split(None, 1)
            path = path.strip()
            hashes[path[2:] if path.startswith("./") else path] = digest.lstrip("\\")
    if sizes.keys() != hashes.keys():
        raise ValueError("checksum listing incomplete: " + ", ".join(sorted(sizes.keys() ^ hashes.keys()))[:200])
    files = [{"path": p, "size": sizes[p], "hash": hashes[p]} for p in sorted(sizes)]
    return Manifest(algorithm, files, newest)


def parse_manifest(text: str) -> list[dict]:
    return parse_listing(text).files


def scan(host: Host, directory: str, algorithms, *, log=None, confined_to: str | None = None) -> Manifest:
    """Checksums of a directory computed on its own host (guarded).

    With `confined_to`, see manifest_argv; a refusal raises Unsafe.
    """
    res = host.run_guarded(manifest_argv(directory, algorithms, confined_to=confined_to), log=log)
    try:
        m = parse_listing(res.stdout)
    except ValueError as exc:
        raise CommandFailed(host.argv(["fa-manifest", directory]), 0, str(exc)) from None
    m.started = res.started
    return m


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


def bad_paths(expected: list[dict], actual: list[dict]) -> list[str]:
    """Paths in `actual` that are not byte-identical to `expected` (to delete)."""
    exp = {f["path"]: f for f in expected}
    return [
        f["path"]
        for f in actual
        if f["path"] not in exp or (exp[f["path"]]["size"], exp[f["path"]]["hash"]) != (f["size"], f["hash"])
    ]
