"""``python -m fulliautomatix.scheduler``: kept because operators and the cluster tests call it by this name.

The commands live in :mod:`fulliautomatix.batch.cli` (installed as
``fulliautomatix-scheduler`` and ``fulliautomatix-cancel``); this module only
forwards to them.
"""

import sys

from .batch.cli import cancel_main, main

__all__ = ["cancel_main", "main"]

if __name__ == "__main__":
    sys.exit(main())
