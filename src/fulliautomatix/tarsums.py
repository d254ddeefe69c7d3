"""Reading a tarball back where it lies: its size, its sha256, and every member's size and checksum.

One script (:data:`READ_BACK`) for every stage that must prove a tarball
right without copying it: the compress stage reads a run's ``.tar.zst`` on the
cluster (members checked with the transfer's checksum algorithm), the
``local``/``rsync`` archive backends read a batch tarball on the archive host
(members with sha256).  It runs through :meth:`hosts.Host.run_guarded`, so on
a remote host only the checksums cross the network, and a local host is just
``Host("local")``.

The host needs bash, GNU tar (``--to-command``), coreutils, the member
checksum tool and, for ``.tar.zst``, zstd.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import hosts

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
    return ["bash", "-c", READ_BACK, "fa-read-back", path, hosts.CHECKSUM_TOOLS[algorithm],
            "zstd" if compressed else ""]


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


def read_back(host: hosts.Host, path: str, algorithm: str = "sha256", compressed: bool = False,
              log=None) -> TarSums:
    """Read the tarball at `path` on `host` back (guarded); raises ReadBackError."""
    try:
        res = host.run_guarded(argv(path, algorithm, compressed), check=False, log=log)
    except OSError as exc:
        raise ReadBackError(f"reading {host.path(path)} back: {exc}") from None
    if res.returncode != 0:
        raise ReadBackError(f"cannot read {host.path(path)} back (exit {res.returncode}): "
                            f"{(res.stderr.strip().splitlines() or [''])[-1]}")
    return parse(res.stdout)
