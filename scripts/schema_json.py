"""Write workflow/schemas/config.schema.json from config.schema.yaml (`make schema`); --check: fail if stale.

The YAML file is the schema's source, read by people.  Validation reads
its JSON twin: Snakemake's `validate` loads a YAML schema through yte
(pure-Python YAML and templating, about 0.3 s per command, measured with
`fulliautomatix status` in P6) and a JSON one with the json module.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "workflow" / "schemas"
SOURCE, TWIN = SCHEMAS / "config.schema.yaml", SCHEMAS / "config.schema.json"


def rendered() -> str:
    """The JSON text the YAML source gives (key order kept, one key per line)."""
    return json.dumps(yaml.safe_load(SOURCE.read_text()), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = rendered()
    if "--check" in argv:
        if not TWIN.is_file() or TWIN.read_text() != text:
            print(f"{TWIN} is older than {SOURCE.name}; run `make schema`", file=sys.stderr)
            return 1
        return 0
    TWIN.write_text(text)
    print(f"wrote {TWIN}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
