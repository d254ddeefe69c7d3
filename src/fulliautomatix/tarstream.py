"""One pass over a tarball: its size and sha256, and every member's size and checksum.

A stand-alone program (standard library only, Python 3.6 or newer) that
:mod:`fulliautomatix.tarsums` runs where the tarball is, as
``python3 -c <tarparse's source, then this file's> MODE ...``, so that on a
remote host only the checksums cross the network::

    write OUT ALGO zstd -- ARGV...     run ARGV (tar -I zstd -cf - ...) with its output going to OUT,
                                       then read OUT back as ``read`` does (one read feeds OUT's
                                       sha256 and the decompressor, zstd -dc, whose output a tar
                                       parser checksums member by member) while OUT is fsynced
    write OUT ALGO stream 'ZSTD' -- ARGV...
                                       run ARGV (tar -cf - ..., uncompressed) into ZSTD (a command line,
                                       e.g. 'zstd -T0 -3 --check -c'), checksumming every member of the
                                       tar stream as it goes into the compressor, and write the
                                       compressor's output to OUT, computing its sha256 as it is written
    read FILE ALGO [zstd]              an existing file: one read feeds the sha256 and the decompressor
                                       (or the parser directly for a plain .tar)

It prints ``B <bytes>``, ``F <sha256 of the file>`` and ``M <size> <checksum>
<name>`` for every regular member, in archive order, and exits 0 only when
the command (``write``), the compressor or the decompressor (which checks
zstd's frame checksum) and the tar parser (every header's checksum, a proper
end of archive, nothing but zeros after it) all succeeded.  Otherwise it prints one line on stderr and
exits 4.  Member checksums: ``sha256``, ``blake2b`` (hashlib, as ``b2sum``)
and ``xxh128`` (the ``xxhash`` module when the host's Python has it, else one
``xxh128sum`` process per member).
"""

import hashlib
import os
import shlex
import subprocess
import sys
import threading

try:  # in the package; run as `python3 -c`, tarsums puts tarparse's source ahead of this one
    from .tarparse import CHUNK, Failed, TarParser, ToolHasher, chunks, hasher, parse_fd  # noqa: F401
except ImportError:
    pass

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), named in the fcntl module from Python 3.10


def widen(fd):
    """Ask for a 1 MiB pipe buffer (fewer, larger reads); harmless where refused."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK)
    except (ImportError, OSError):
        pass


def checker(unz_out, algorithm, keep):
    """Fork the process that parses the decompressed stream; (its pid, the pipe of its report).

    The child reads the decompressor's output, checksums every member and
    writes the "M" lines to the report pipe, then "OK" or "ERR <why>".  The
    parser runs in its own process so that it never waits for the main one's
    lock (GIL) and both cores can work.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(w)
        return pid, r
    status = 4
    try:
        os.close(r)
        for fd in keep:
            os.close(fd)
        lines = []
        try:
            parse_fd(unz_out, algorithm, lambda n, s, d: lines.append("M {} {} {}\n".format(s, d, n)))
            lines.append("OK\n")
            status = 0
        except (Failed, OSError, ValueError) as exc:
            lines.append("ERR {}\n".format(exc))
            for _ in chunks(unz_out):  # let the decompressor finish
                pass
        write_all(w, "".join(lines).encode("utf-8", "surrogateescape"))
    finally:
        os._exit(status)


def collect(pid, r, emit):
    """The checker's report: its members emitted, or Failed."""
    with os.fdopen(r, "rb") as fh:
        report = fh.read().decode("utf-8", "surrogateescape").splitlines()
    os.waitpid(pid, 0)
    if not report or report[-1] != "OK":
        raise Failed(report[-1][4:] if report and report[-1].startswith("ERR ") else "the checker died")
    for line in report[:-1]:
        _, size, digest, name = line.split(" ", 3)
        emit(name, int(size), digest)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def pump(source, algorithm, compressed, emit, forked=None):
    """Read `source` (an fd) once: into sha256, and into the tar parser (through zstd -dc when compressed).

    forked(): called once the checker process is forked (a thread started
    before the fork would make Python 3.12+ warn that fork() may deadlock).
    Returns (bytes read, sha256 hex).
    """
    sha, total = hashlib.sha256(), 0
    if not compressed:
        parser = TarParser(algorithm, emit)
    else:
        unz = subprocess.Popen(["zstd", "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        widen(unz.stdin.fileno())
        widen(unz.stdout.fileno())
        keep = [unz.stdin.fileno(), source]
        pid, report = checker(unz.stdout.fileno(), algorithm, keep)
        unz.stdout.close()
        sink = unz.stdin.fileno()
    if forked is not None:
        forked()
    broken = False
    try:
        for chunk in chunks(source):
            total += len(chunk)
            sha.update(chunk)
            if not compressed:
                parser.feed(chunk)
            elif not broken:
                try:
                    write_all(sink, chunk)
                except BrokenPipeError:  # the decompressor gave up: its exit status says why
                    broken = True
    finally:
        if compressed:
            try:
                unz.stdin.close()
            except BrokenPipeError:
                pass
            unz_status = unz.wait()
            collect(pid, report, emit)
            if unz_status != 0:
                raise Failed("zstd -dc failed: the compressed stream is corrupt")
    if not compressed:
        parser.finish()
    return total, sha.hexdigest()


def write(out_path, algorithm, compressed, argv, emit):
    """Run argv (its stdout: the tarball) into out_path, then read the written file back in one pass.

    The command writes the file itself, as a plain ``tar -I zstd -cf`` does;
    then the file is read back (sha256, zstd -dc and the parser from one
    read) while a thread fsyncs it.  Decompressing beside the compression made both
    slower (on 2 cores they evict each other's caches: ~0.5 CPU-s more per
    256 MiB than one after the other) and kept this process copying every
    compressed byte between them.
    """
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    synced = []
    try:
        status = subprocess.call(argv, stdout=out)
        if status != 0:
            raise Failed("{} exited with {}".format(argv[0], status))
        size = os.fstat(out).st_size
        # The disk writes the file while the CPU reads it back (from the page cache).
        syncer = threading.Thread(target=fsync_into, args=(out, synced))
        try:
            total, digest = read(out_path, algorithm, compressed, emit, forked=syncer.start)
        finally:
            if syncer.ident is not None:
                syncer.join()
    finally:
        os.close(out)
    if not synced or synced[0] is not None:
        raise Failed("{} could not be synced to disk: {}".format(out_path, synced[0] if synced else "not tried"))
    if total != size:
        raise Failed("{} holds {} bytes, {} were written".format(out_path, total, size))
    return total, digest


def fsync_into(fd, result):
    """fsync(fd); append None, or the error."""
    try:
        os.fsync(fd)
        result.append(None)
    except OSError as exc:
        result.append(exc)


def write_stream(out_path, algorithm, compressor, argv, emit):
    """Run argv (an uncompressed tar on stdout) into `compressor`, checking every member on the way in;
    write the compressor's output to out_path, hashing it as it is written."""
    tar = subprocess.Popen(argv, stdout=subprocess.PIPE)
    comp = subprocess.Popen(compressor, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for fd in (tar.stdout.fileno(), comp.stdin.fileno(), comp.stdout.fileno()):
        widen(fd)
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    written, errors = [0, hashlib.sha256()], []
    writer = threading.Thread(target=_write_out, args=(comp.stdout.fileno(), out, written, errors))
    writer.start()
    broken = False
    try:
        parser = TarParser(algorithm, emit)
        try:
            for chunk in chunks(tar.stdout.fileno()):
                parser.feed(chunk)
                write_all(comp.stdin.fileno(), chunk)
        except BrokenPipeError:  # the compressor stopped reading: its exit status says why
            broken = True
        else:
            parser.finish()
    finally:
        try:
            comp.stdin.close()
        except BrokenPipeError:
            pass
        writer.join()
        for proc in (tar, comp):
            if proc.poll() is None and (broken or sys.exc_info()[0] is not None):
                proc.kill()
        statuses = [tar.wait(), comp.wait()]
    if errors:
        raise Failed(errors[0])
    for name, status in zip((compressor[0], argv[0]), statuses[::-1]):
        if status != 0:
            raise Failed("{} exited with {}".format(name, status))
    if broken:
        raise Failed("{} stopped reading before the end of the archive".format(compressor[0]))
    try:
        os.fsync(out)
        size = os.fstat(out).st_size
    finally:
        os.close(out)
    if size != written[0]:
        raise Failed("{} holds {} bytes, {} were written".format(out_path, size, written[0]))
    return written[0], written[1].hexdigest()


def _write_out(fd, out, written, errors):
    """Writer thread: the compressor's output to the file, counted and hashed as it is written."""
    try:
        for chunk in chunks(fd):
            write_all(out, chunk)
            written[1].update(chunk)
            written[0] += len(chunk)
    except OSError as exc:
        errors.append("writing the compressed file: {}".format(exc))
        for _ in chunks(fd):  # let the compressor finish
            pass


def read(path, algorithm, compressed, emit, forked=None):
    fd = os.open(path, os.O_RDONLY)
    try:
        return pump(fd, algorithm, compressed, emit, forked)
    finally:
        os.close(fd)


def main(argv):
    if argv[:1] == ["fa-tarstream"]:  # the name it runs under with python3 -c (hosts.Host.shown)
        argv = argv[1:]
    members = []

    def emit(name, size, digest):
        members.append("M {} {} {}\n".format(size, digest, name))

    try:
        mode, path, algorithm, unz = argv[0], argv[1], argv[2], argv[3] == "zstd"
        if mode == "write" and argv[3] == "stream":
            total, digest = write_stream(path, algorithm, shlex.split(argv[4]), argv[argv.index("--") + 1 :], emit)
        elif mode == "write":
            total, digest = write(path, algorithm, unz, argv[argv.index("--") + 1 :], emit)
        elif mode == "read":
            if not os.path.isfile(path):
                sys.stderr.write("no such file: {}\n".format(path))
                return 3
            total, digest = read(path, algorithm, unz, emit)
        else:
            raise Failed("unknown mode " + mode)
    except (Failed, OSError, ValueError, IndexError) as exc:
        sys.stderr.write("fa-tarstream: {}\n".format(exc))
        return 4
    sys.stdout.write("B {}\nF {}\n{}".format(total, digest, "".join(members)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
