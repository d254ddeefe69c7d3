"""The tar side of tarstream: a streaming tar parser that checksums every regular member as its bytes pass.

Standard library only (Python 3.6 or newer), like :mod:`fulliautomatix.tarstream`:
:mod:`fulliautomatix.tarsums` sends this file's source ahead of tarstream's
as one ``python3 -c`` program, so nothing needs to be installed where the
tarball is.  Member checksums: ``sha256``, ``blake2b`` (hashlib, as
``b2sum``) and ``xxh128`` (the ``xxhash`` module when the host's Python has
it, else one ``xxh128sum`` process per member).
"""

import hashlib
import subprocess

CHUNK = 1 << 20  # bytes per read


class Failed(Exception):
    pass


class ToolHasher:
    """A checksum computed by a command-line tool fed on stdin (xxh128sum without the xxhash module)."""

    def __init__(self, tool):
        self.proc = subprocess.Popen([tool], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def update(self, data):
        self.proc.stdin.write(data)

    def hexdigest(self):
        self.proc.stdin.close()
        out = self.proc.stdout.read().split()
        if self.proc.wait() != 0 or not out:
            raise Failed("the member checksum tool failed")
        return out[0].decode().lstrip("\\")


def hasher(algorithm):
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "xxh128":
        try:
            import xxhash
        except ImportError:
            return ToolHasher("xxh128sum")
        return xxhash.xxh3_128()
    raise Failed("unknown checksum algorithm " + algorithm)


def octal(field):
    """A numeric header field: octal digits, or GNU base-256 when the first byte has its top bit set."""
    if field[0] & 0x80:
        value = field[0] & 0x3F
        for b in field[1:]:
            value = value * 256 + b
        return value
    digits = field.split(b"\0", 1)[0].strip(b" ")
    return int(digits, 8) if digits else 0


def text(field):
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def pax_records(data):
    """{key: value} of a pax extended header ("<len> <key>=<value>\\n" records)."""
    out, i = {}, 0
    while i < len(data) and data[i : i + 1] != b"\0":
        space = data.index(b" ", i)
        length = int(data[i:space])
        key, _, value = data[space + 1 : i + length - 1].partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        i += length
    return out


class TarParser:
    """Fed a tar stream in chunks; emits (name, size, checksum) for every regular member."""

    def __init__(self, algorithm, emit):
        self.algorithm, self.emit = algorithm, emit
        self.head = bytearray()
        self.left = self.pad = 0  # data bytes of the current entry still to come; padding after them
        self.entry = None  # (kind, name, size, hasher or bytearray)
        self.longname = self.pax = None
        self.zeros = 0  # consecutive zero headers (two end the archive)
        self.ended = False

    def feed(self, data):
        view, i, n = memoryview(data), 0, len(data)
        while i < n:
            if self.ended:
                if any(view[i:]):
                    raise Failed("data after the end of the archive")
                return
            if self.left:
                take = min(self.left, n - i)
                self.take(view[i : i + take])
                i += take
                self.left -= take
                if not self.left:
                    self.close_entry()
            elif self.pad:
                take = min(self.pad, n - i)
                i += take
                self.pad -= take
            else:
                take = min(512 - len(self.head), n - i)
                self.head += view[i : i + take]
                i += take
                if len(self.head) == 512:
                    self.header(bytes(self.head))
                    self.head.clear()

    def take(self, data):
        if self.entry[0] == "file":
            self.entry[3].update(data)
        else:
            self.entry[3].extend(data)

    def header(self, h):
        if not any(h):
            self.zeros += 1
            self.ended = self.zeros == 2
            return
        if self.zeros:
            raise Failed("a zero block inside the archive")
        stored = octal(h[148:156])
        if stored != sum(h[:148]) + 256 + sum(h[156:]):
            raise Failed("a tar header's checksum is wrong")
        kind, size = h[156:157], octal(h[124:136])
        name = text(h[0:100])
        if h[257:263] == b"ustar\0" and h[345]:
            name = text(h[345:500]) + "/" + name
        if self.longname is not None:
            name, self.longname = self.longname, None
        if self.pax:
            name, size = self.pax.get("path", name), int(self.pax.get("size", size))
            self.pax = None
        if kind in (b"0", b"\0", b"7"):
            self.entry = ("file", name, size, hasher(self.algorithm))
        elif kind in (b"L", b"x"):
            self.entry = (kind.decode(), name, size, bytearray())
        else:  # directories, links, global headers: no member data to check (a link is no member)
            self.entry = ("skip", name, size, bytearray())
        self.left, self.pad = size, -size % 512
        if not size:
            self.close_entry()

    def close_entry(self):
        kind, name, size, acc = self.entry
        if kind == "file":
            self.emit(name, size, acc.hexdigest())
        elif kind == "L":
            self.longname = bytes(acc).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        elif kind == "x":
            self.pax = pax_records(bytes(acc))
        self.entry = None

    def finish(self):
        if not self.ended or self.left or self.head:
            raise Failed("the archive ends early (no end-of-archive blocks)")


def chunks(fd):
    """Everything readable from fd, as views of one reused buffer (no new memory per read)."""
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(fd, "rb", buffering=0, closefd=False) as fh:
        while True:
            n = fh.readinto(buf)
            if not n:
                return
            yield view[:n]


def parse_fd(fd, algorithm, emit):
    """Feed everything readable from fd to a tar parser."""
    parser = TarParser(algorithm, emit)
    for chunk in chunks(fd):
        parser.feed(chunk)
    parser.finish()
