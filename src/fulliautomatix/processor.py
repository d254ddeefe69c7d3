"""`python -m fulliautomatix.processor`, the processing.command of older configs and the schema default:
the stand-in processor lives in :mod:`fulliautomatix.standins.processor`; this forwards to it."""

from fulliautomatix.standins.processor import main

if __name__ == "__main__":
    raise SystemExit(main())
