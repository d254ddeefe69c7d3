"""The one-pass tarball check (tarstream, run by tarsums): what it proves and what it refuses."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fulliautomatix import hosts, tarstream, tarsums

SCRIPT = Path(tarstream.__file__)
LONG = "d" * 60 + "/" + "f" * 120 + ".bin"  # past ustar's 100-byte name field


@pytest.fixture
def tree(tmp_path):
    run = tmp_path / "raw" / "170101_0001"
    (run / "sub").mkdir(parents=True)
    files = {"a.bin": b"x" * 70000, "sub/b.bin": bytes(range(256)) * 9, "empty.bin": b""}
    for name, data in files.items():
        (run / name).write_bytes(data)
    return run, files


def digests(files: dict, algorithm: str = "sha256") -> dict:
    out = {}
    for name, data in files.items():
        h = tarstream.hasher(algorithm)
        h.update(data)
        out[name] = (len(data), h.hexdigest())
    return out


def tar_argv(run: Path) -> list[str]:
    return ["tar", "-C", str(run.parent), "-I", "zstd -T0 -3", "-cf", "-", "--", run.name]


def plain_tar(run: Path) -> list[str]:
    return ["tar", "-C", str(run.parent), "-cf", "-", "--", run.name]


ZSTD = ["zstd", "-T0", "-3", "--check", "-q", "-c"]


def members(sums: tarsums.TarSums, run: str) -> dict:
    return {name[len(run) + 1 :]: v for name, v in sums.members.items()}


@pytest.mark.parametrize("algorithm", ["sha256", "xxh128", "blake2b"])
def test_write_verified_checks_every_member_and_hashes_the_file_as_written(tree, tmp_path, algorithm):
    run, files = tree
    out = tmp_path / "run.tar.zst"
    sums = tarsums.write_verified(hosts.Host(), tar_argv(run), str(out), algorithm)
    assert members(sums, run.name) == digests(files, algorithm)
    assert sums.bytes == out.stat().st_size
    assert sums.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    again = tarsums.read_back(hosts.Host(), str(out), algorithm, compressed=True)
    assert again == sums


@pytest.mark.parametrize("algorithm", ["sha256", "xxh128"])
def test_stream_mode_checks_members_on_their_way_into_zstd_and_writes_what_tar_zstd_writes(tree, tmp_path, algorithm):
    run, files = tree
    out = tmp_path / "run.tar.zst"
    sums = tarsums.write_verified(hosts.Host(), plain_tar(run), str(out), algorithm, compressor=ZSTD)
    assert members(sums, run.name) == digests(files, algorithm)
    assert sums.bytes == out.stat().st_size and sums.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert tarsums.read_back(hosts.Host(), str(out), algorithm, compressed=True) == sums
    piped = subprocess.run(
        ["bash", "-c", f"tar -C {run.parent} -cf - -- {run.name} | zstd -T0 -3 -q -c"], capture_output=True, check=True
    ).stdout
    assert out.read_bytes() == piped, "the same bytes as tar | zstd"
    zstd_header = subprocess.run(["zstd", "-lv", str(out)], capture_output=True, text=True).stdout
    assert "XXH64" in zstd_header, "the frame checksum is stored"


def test_stream_mode_refuses_a_failing_compressor_or_tar(tree, tmp_path):
    run, _ = tree
    with pytest.raises(tarsums.ReadBackError, match="false exited with 1"):
        tarsums.write_verified(hosts.Host(), plain_tar(run), str(tmp_path / "o"), "sha256", compressor=["false"])
    with pytest.raises(tarsums.ReadBackError, match="exited with"):
        tarsums.write_verified(
            hosts.Host(),
            ["tar", "-C", str(run.parent), "-cf", "-", "--", "nope"],
            str(tmp_path / "o"),
            "sha256",
            compressor=ZSTD,
        )


def test_xxh128_without_the_module_uses_xxh128sum(tree, tmp_path, monkeypatch):
    run, files = tree
    monkeypatch.setitem(sys.modules, "xxhash", None)  # import xxhash now fails
    h = tarstream.hasher("xxh128")
    assert isinstance(h, tarstream.ToolHasher)
    h.update(files["a.bin"])
    assert h.hexdigest() == digests(files, "xxh128")["a.bin"][1]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_parser_reads_long_names_pax_headers_and_ustar_prefixes(fmt):
    if fmt == tarfile.USTAR_FORMAT:  # a long name split into the prefix field
        names = ["p" * 130 + "/f.bin", "plain.bin", "u/u.bin"]
    else:
        names = [LONG, "plain.bin", "é/ü.bin"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for i, name in enumerate(names):
            data = bytes([i]) * (1000 * i + 1)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    seen = []
    parser = tarstream.TarParser("sha256", lambda n, s, d: seen.append((n, s, d)))
    data = buf.getvalue()
    for i in range(0, len(data), 777):  # headers and data split across chunks
        parser.feed(data[i : i + 777])
    parser.finish()
    assert [n for n, _, _ in seen] == names
    assert [s for _, s, _ in seen] == [1, 1001, 2001]
    assert seen[1][2] == hashlib.sha256(b"\x01" * 1001).hexdigest()


def test_a_changed_member_shows_as_a_different_checksum(tree, tmp_path):
    """A member whose bytes differ from the transfer's checksums fails the comparison (compress stage)."""
    run, files = tree
    expected = digests(files, "xxh128")
    (run / "sub" / "b.bin").write_bytes(b"y" + files["sub/b.bin"][1:])
    sums = tarsums.write_verified(hosts.Host(), tar_argv(run), str(tmp_path / "o.tar.zst"), "xxh128")
    got = [{"path": p, "size": s, "hash": h} for p, (s, h) in members(sums, run.name).items()]
    want = [{"path": p, "size": s, "hash": h} for p, (s, h) in expected.items()]
    assert hosts.compare_manifests(want, got) == ["checksum of sub/b.bin differs"]


def corrupting(run: Path, offset: int) -> list[str]:
    """tar | zstd with one byte of the compressed stream flipped at `offset`."""
    flip = f"import sys; d = bytearray(sys.stdin.buffer.read()); d[{offset}] ^= 0x40; sys.stdout.buffer.write(d)"
    return ["bash", "-c", f"tar -C {run.parent} -I zstd -cf - -- {run.name} | {sys.executable} -c '{flip}'"]


def test_a_corrupted_compressed_stream_fails_the_one_pass_check(tree, tmp_path):
    run, _ = tree
    with pytest.raises(tarsums.ReadBackError, match="corrupt|checksum|ends early"):
        tarsums.write_verified(hosts.Host(), corrupting(run, 200), str(tmp_path / "o.tar.zst"), "sha256")


def test_a_corrupted_file_fails_the_read_back(tree, tmp_path):
    run, _ = tree
    out = tmp_path / "o.tar.zst"
    tarsums.write_verified(hosts.Host(), tar_argv(run), str(out), "sha256")
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0x01
    out.write_bytes(bytes(data))
    with pytest.raises(tarsums.ReadBackError):
        tarsums.read_back(hosts.Host(), str(out), "sha256", compressed=True)


def test_a_failing_command_or_a_truncated_archive_is_refused(tree, tmp_path):
    run, _ = tree
    with pytest.raises(tarsums.ReadBackError, match="exited with"):
        tarsums.write_verified(
            hosts.Host(),
            ["tar", "-C", str(run.parent), "-I", "zstd", "-cf", "-", "--", "nope"],
            str(tmp_path / "o.tar.zst"),
            "sha256",
        )
    plain = tmp_path / "p.tar"
    subprocess.run(["tar", "-C", str(run.parent), "-cf", str(plain), run.name], check=True)
    plain.write_bytes(plain.read_bytes()[:1536])
    with pytest.raises(tarsums.ReadBackError, match="ends early"):
        tarsums.read_back(hosts.Host(), str(plain), "sha256")


def test_a_plain_tarball_is_read_back_in_one_pass(tree, tmp_path):
    run, files = tree
    plain = tmp_path / "p.tar"
    subprocess.run(["tar", "-C", str(run.parent), "-cf", str(plain), run.name], check=True)
    sums = tarsums.read_back(hosts.Host(), str(plain))
    assert members(sums, run.name) == digests(files)
    assert sums.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()


class NoPython(hosts.Host):
    """A 'remote' host without python3: tarstream exits 127 there; everything else runs here."""

    def argv(self, argv):
        return list(argv)

    def run_guarded(self, argv, **kw):
        if "fa-tarstream" in argv:
            return hosts.Result(127, "", "bash: python3: command not found\n")
        return hosts.Host().run_guarded(argv, **kw)


@pytest.mark.parametrize("stream", [False, True])
def test_without_python3_the_two_pass_bash_way_checks_the_same(tree, tmp_path, stream):
    run, files = tree
    out = tmp_path / "o.tar.zst"
    if stream:
        sums = tarsums.write_verified(NoPython("fa-nopython"), plain_tar(run), str(out), "sha256", compressor=ZSTD)
    else:
        sums = tarsums.write_verified(NoPython("fa-nopython"), tar_argv(run), str(out), "sha256")
    assert members(sums, run.name) == digests(files)
    assert sums.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert tarsums.read_back(NoPython("fa-nopython"), str(out), "sha256", compressed=True) == sums


def test_the_log_names_the_program_not_its_source():
    argv = tarsums.stream_argv(hosts.Host("fa-cluster"), "read", "/x.tar", "sha256", False)
    assert argv[:2] == ["python3", "-c"]
    shown = hosts.Host("fa-cluster").shown(argv)
    assert "fa-tarstream read /x.tar sha256" in shown and "import" not in shown
