"""Checksums computed in this process (the remote side uses hosts.manifest)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def hasher(algorithm: str):
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "xxh128":
        import xxhash  # optional; only needed with transfer.checksum = xxh128

        return xxhash.xxh3_128()
    raise ValueError(f"unknown checksum algorithm {algorithm}")


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    h = hasher(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
