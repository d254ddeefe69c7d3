"""The soak's processing.command: the reference processor behind a lock and a failure switch (soak only).

argv: SOAK_DIR RUN <the reference processor's arguments>.  Records every
start in SOAK_DIR/starts.log (S4); takes SOAK_DIR/locks/RUN.lock without
waiting and records a second holder in overlaps.log (S3; the processor
inherits the lock, so it is held while the processor runs); exits 1 once
for each switch file SOAK_DIR/fail/RUN (the "processor exits 1" fault).
"""

import fcntl
import os
import sys
from pathlib import Path


def main() -> None:
    soak, run, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    with open(soak / "starts.log", "a") as fh:
        fh.write(f"{run} {os.getpid()}\n")
    (soak / "locks").mkdir(exist_ok=True)
    lock = open(soak / "locks" / f"{run}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        with open(soak / "overlaps.log", "a") as fh:
            fh.write(f"{run} {os.getpid()}\n")
    try:
        (soak / "fail" / run).unlink()
        print(f"soak: injected failure of the processor for run {run}", file=sys.stderr)
        sys.exit(1)
    except FileNotFoundError:
        pass
    os.set_inheritable(lock.fileno(), True)
    os.execv(sys.executable, [sys.executable, "-m", "fulliautomatix.processor", *args])


if __name__ == "__main__":
    main()
