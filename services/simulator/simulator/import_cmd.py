"""`lifecycle import FILE`: history from CSV or JSONL into ingest, in event-time order."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from simulator.importer import mapping as mapping_module
from simulator.importer.checkpoint import CheckpointMismatchError, checkpoint_path
from simulator.importer.mapping import ColumnMapping
from simulator.importer.reader import InputError, ParsedFile, detect_format, parse_file
from simulator.importer.send import ImportSummary, SendOptions, send_file
from simulator.ingest_client import IngestClient, IngestError, IngestUnavailableError
from simulator.settings import SimulatorSettings

EXIT_INTERRUPTED = 130
IMPORT_DESCRIPTION = f"""\
Send a history of events through ingest's /v1/batch, oldest first, so that the stage
engine in event-time mode ends with every user's stage as of the end of the data.

{mapping_module.__doc__.split(chr(10), 1)[1].strip() if mapping_module.__doc__ else ""}

Bad rows are reported as FILE:LINE: reason and skipped. After each batch ingest
acknowledged, FILE.import-checkpoint.json records how far the import got: run the same
command again to resume (Ctrl-C stops after the batch in flight; after a kill -9 at most
that one batch is sent again, with the same message ids, which the engine drops).
"""


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a .csv or .jsonl file of events")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="default: from the suffix")
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help="where a field is (fields: user_id anonymous_id event timestamp properties type "
        "message_id); repeatable, e.g. --column user_id=customer_id",
    )
    parser.add_argument(
        "--extra-as-properties", action="store_true", help="unmapped columns become properties"
    )
    parser.add_argument("--timezone", default="UTC", help="zone of naive timestamps (UTC)")
    parser.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch (100)")
    parser.add_argument("--max-events-per-second", type=float, help="rate limit (none)")
    parser.add_argument(
        "--restart", action="store_true", help="ignore the checkpoint and import from the start"
    )
    parser.add_argument("--write-key", help="ingest write key (default: LIFECYCLE_WRITE_KEY)")
    parser.add_argument("--ingest-url", help="default: INGEST_URL or http://127.0.0.1:8000")


def run_import(args: argparse.Namespace, settings: SimulatorSettings, console: Console) -> int:
    errors = Console(stderr=True, soft_wrap=True)  # one line per bad row, never wrapped
    try:
        mapping = ColumnMapping.from_options(
            args.column, extra_as_properties=args.extra_as_properties, timezone=args.timezone
        )
        file_format = detect_format(args.file, args.format)
        if not args.file.is_file():
            raise InputError(f"{args.file}: no such file")
        if args.batch_size < 1:
            raise InputError(f"--batch-size {args.batch_size}: must be at least 1")
        parsed = parse_file(args.file, mapping, file_format)
    except (ValueError, OSError) as exc:
        errors.print(f"lifecycle import: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    for bad in parsed.bad:
        errors.print(
            f"{args.file}:{bad.line}: skipped: {bad.reason}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    write_key = args.write_key or (
        settings.lifecycle_write_key.get_secret_value() if settings.lifecycle_write_key else None
    )
    if not write_key:
        errors.print("lifecycle import: no write key: pass --write-key or set LIFECYCLE_WRITE_KEY")
        return 2
    url = args.ingest_url or settings.service_url("ingest")
    options = SendOptions(
        batch_size=args.batch_size,
        max_events_per_second=args.max_events_per_second,
        restart=args.restart,
    )
    try:
        summary = asyncio.run(
            _send(
                args.file,
                parsed=parsed,
                mapping=mapping,
                url=url,
                write_key=write_key,
                options=options,
                console=console,
            )
        )
    except (CheckpointMismatchError, IngestError, IngestUnavailableError) as exc:
        errors.print(f"lifecycle import: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    for bad in summary.refused:
        errors.print(
            f"{args.file}:{bad.line}: skipped: {bad.reason}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    skipped = len(parsed.bad) + len(summary.refused)
    if summary.total and summary.sent == 0 and summary.resumed_from == summary.total:
        console.print(
            f"{args.file}: already imported (see {checkpoint_path(args.file)}); "
            "pass --restart to send it again",
            markup=False,
            highlight=False,
        )
        return 0
    console.print(
        f"{args.file}: {summary.delivered - len(summary.refused)} of {summary.total} events "
        f"delivered ({summary.sent} sent now, {summary.resumed_from} by earlier runs); "
        f"{skipped} bad rows skipped",
        markup=False,
        highlight=False,
    )
    if summary.interrupted:
        console.print(
            f"interrupted: run the same command again to resume from event {summary.delivered}"
        )
        return EXIT_INTERRUPTED
    return 0


async def _send(
    path: Path,
    *,
    parsed: ParsedFile,
    mapping: ColumnMapping,
    url: str,
    write_key: str,
    options: SendOptions,
    console: Console,
) -> ImportSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def first_interrupt() -> None:
        # The first Ctrl-C finishes the batch in flight and its checkpoint; a second one aborts.
        console.print("stopping after the batch in flight (Ctrl-C again to abort)")
        stop.set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, first_interrupt)
    columns = (
        TextColumn("[bold]import"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    async with IngestClient(url, write_key) as ingest:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("import", total=len(parsed.rows))
            return await send_file(
                parsed,
                mapping_text=mapping.describe(),
                checkpoint_file=checkpoint_path(path),
                ingest=ingest,
                options=options,
                stop=stop,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
