"""A run's whole life through the real CLI, Snakemake, rsync, tar and zstd."""

import tarfile


def test_runs_go_from_acquired_to_archived(fa, config_path, config, db, tmp_path):
    r = fa(config_path, "simulate-daq", "--runs", "4", "--events", "300")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "daq").iterdir())
    assert len(names) == 4
    for _ in range(3):
        r = fa(config_path)
        assert r.returncode == 0, r.stderr
    for name in names:
        doc = db.get(name)
        assert doc["raw_status"] == "archived", doc
        assert doc["processed_status"] == "processed"
        assert doc["raw_location"].startswith("local:" + str(tmp_path / "archive"))
        steps = [(h["field"], h["from"], h["to"]) for h in doc["history"]]
        assert ("raw_status", "acquired", "transferring") in steps
        assert ("raw_status", "archiving", "archived") in steps
        assert (tmp_path / "daq" / name).is_dir(), "DAQ copy kept by the default purge policy"
        assert not (tmp_path / "cluster" / "raw" / name).exists(), "plain scratch copy removed after compression"
    tarballs = sorted((tmp_path / "archive").glob("*.tar"))
    assert len(tarballs) == 2
    members = set()
    for t in tarballs:
        with tarfile.open(t) as tar:
            members |= set(tar.getnames())
    assert members == {f"{n}.tar.zst" for n in names}
    # restore brings back the raw data byte for byte
    r = fa(config_path, "restore", names[0], "--to", str(tmp_path / "restored"))
    assert r.returncode == 0, r.stderr
    for f in (tmp_path / "daq" / names[0]).iterdir():
        assert (tmp_path / "restored" / names[0] / f.name).read_bytes() == f.read_bytes()
