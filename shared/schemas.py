"""Generate the contracts' JSON Schemas into docs/schemas/ (subscribers in any language read them).

python -m shared.schemas [OUTPUT_DIR]     write the files
python -m shared.schemas --check [DIR]    exit 1 when a checked-in file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from pydantic import BaseModel

from shared.events import Event
from shared.notifications import NotificationOutcome
from shared.transitions import Transition

CONTRACTS: dict[str, type[BaseModel]] = {
    "event.v1.schema.json": Event,
    "transition.v1.schema.json": Transition,
    "notification-outcome.v1.schema.json": NotificationOutcome,
}
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def rendered() -> dict[str, bytes]:
    return {
        name: orjson.dumps(
            model.model_json_schema(mode="serialization"),
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS,
        )
        + b"\n"
        for name, model in CONTRACTS.items()
    }


def stale_files(directory: Path) -> list[str]:
    return [
        name
        for name, content in rendered().items()
        if not (directory / name).is_file() or (directory / name).read_bytes() != content
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    if args.check:
        stale = stale_files(args.directory)
        if stale:
            sys.stderr.write(f"stale schema files (run `make schemas`): {', '.join(stale)}\n")
            return 1
        return 0
    args.directory.mkdir(parents=True, exist_ok=True)
    for name, content in rendered().items():
        (args.directory / name).write_bytes(content)
    return 0


if __name__ == "__main__":
    sys.exit(main())
