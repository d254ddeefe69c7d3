"""Symbolic links in or as a run directory on a remote DAQ (fa-daq): refused there, in the same ssh call.

The links are made on the DAQ's own disk (relative, so they resolve the same
on fa-daq and in this machine's view of it) and point outside daq.raw_dir.
"""

from __future__ import annotations

import os
import shutil

from fa_testlib import digests
from sshbed import BIN

RUN, LINKED = "261127_0001", "261127_0002"


def test_a_symlinked_run_is_refused_on_the_daq_held_and_its_target_untouched(bed, tmp_path):
    calls = tmp_path / "calls.log"
    calls.touch()
    rec = [str(BIN / "ssh-recorder"), str(calls), "ssh", "-F", bed.env["FA_SSH_CONFIG"]]
    cfg = bed.config(daq={"ssh": rec}, transfer={"purge": "purge_after_verify"})
    sums = bed.add_run(RUN)
    bed.add_run(LINKED)
    victim = bed.daq_view.parent / "elsewhere" / "victim"
    victim.parent.mkdir()
    shutil.move(bed.daq_view / LINKED, victim)
    (bed.daq_view / LINKED).symlink_to(os.path.join("..", "elsewhere", "victim"))
    before = digests(victim)

    r = bed.tick(cfg)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    named = [ln for ln in r.stderr.splitlines() if LINKED in ln]
    assert len(named) == 1, r.stderr
    assert f"{bed.daq_dir}/{LINKED} is a symbolic link (to ../elsewhere/victim)" in named[0]
    assert f"fulliautomatix retry {LINKED}" in named[0]
    assert digests(victim) == before, "nothing outside the DAQ directory deleted"
    assert not bed.staging_view(LINKED).exists() and not bed.copy_view(LINKED).exists(), "nothing read from it"
    doc = bed.db.get(LINKED)
    assert doc["raw_status"] == "acquired" and doc["transfer"]["refused"]
    assert named[0].endswith(doc["transfer"]["error"])
    # Refused by the rsync call itself: the only DAQ command that named the run.
    daq_calls = [ln for ln in calls.read_text().splitlines() if "fa-daq" in ln and LINKED in ln]
    assert len(daq_calls) == 1 and "fa-rsync" in daq_calls[0], daq_calls
    # The other run was transferred and purged as usual.
    assert not (bed.daq_view / RUN).exists() and digests(bed.copy_view(RUN)) == sums
    assert bed.db.get(RUN)["transfer"]["daq_copy"] == "purged"

    r = bed.tick(cfg)
    assert bed.db.get(LINKED)["transfer"]["attempts"] == 1, "held: not tried again"
    assert digests(victim) == before


def test_a_run_replaced_by_a_symlink_after_transfer_is_not_purged(bed):
    sums = bed.add_run(RUN)
    r = bed.tick(bed.config(transfer={"purge": "keep"}))
    assert r.returncode == 0, r.stderr
    victim = bed.daq_view.parent / "elsewhere" / RUN
    victim.parent.mkdir()
    shutil.move(bed.daq_view / RUN, victim)
    (bed.daq_view / RUN).symlink_to(os.path.join("..", "elsewhere", RUN))  # the same files, through a link

    r = bed.tick(bed.config(transfer={"purge": "purge_after_days", "purge_after_days": 0}))
    assert r.returncode == 0, r.stderr
    assert digests(victim) == sums, "the purge deleted nothing outside the DAQ directory"
    tr = bed.db.get(RUN)["transfer"]
    assert tr["daq_copy"] == "kept"
    assert f"{bed.daq_dir}/{RUN} is a symbolic link" in tr["daq_purge"]["error"]
