"""`lifecycle` command line: `simulate` (a realistic user population) and `import FILE` (history).

Service addresses come from the environment (INGEST_URL or INGEST_PORT, STAGE_ENGINE_URL,
NOTIFIER_URL, KAFKA_BOOTSTRAP_SERVERS, LIFECYCLE_WRITE_KEY); options override them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from rich.console import Console

from shared.errors import LifecycleError
from shared.settings import load_settings
from simulator.import_cmd import IMPORT_DESCRIPTION, add_import_arguments, run_import
from simulator.settings import SimulatorSettings
from simulator.simulate_cmd import add_simulate_arguments, options_from, run_simulation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lifecycle", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser(
        "simulate", help="send a simulated population through ingest, with a live view"
    )
    add_simulate_arguments(simulate)
    simulate.add_argument("--start", help="simulated start time, ISO 8601 (2025-01-06T00:00Z)")
    simulate.add_argument("--id-prefix", default="", help="prefix of user and message ids")
    simulate.add_argument("--write-key", help="ingest write key (default: LIFECYCLE_WRITE_KEY)")
    importer = commands.add_parser(
        "import",
        help="send events from a CSV or JSONL file through ingest, in event-time order",
        description=IMPORT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_import_arguments(importer)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(soft_wrap=True)  # long lines stay whole (paths, progress lines)
    try:
        settings = load_settings(SimulatorSettings)
    except LifecycleError as exc:
        sys.stderr.write(f"lifecycle: {exc}\n")
        return 2
    if args.command == "import":
        return run_import(args, settings, console)
    write_key = args.write_key or (
        settings.lifecycle_write_key.get_secret_value() if settings.lifecycle_write_key else None
    )
    if not write_key:
        sys.stderr.write("lifecycle simulate: pass --write-key or set LIFECYCLE_WRITE_KEY\n")
        return 2
    try:
        asyncio.run(
            run_simulation(options_from(args), settings, write_key=write_key, console=console)
        )
    except KeyboardInterrupt:
        return 130
    except LifecycleError as exc:
        sys.stderr.write(f"lifecycle simulate: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
