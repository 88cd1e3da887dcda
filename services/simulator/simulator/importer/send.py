"""Send a parsed file through ingest in batches, in event-time order, resuming from a checkpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from simulator.importer.checkpoint import (
    Checkpoint,
    load_checkpoint,
    resume_position,
    save_checkpoint,
)
from simulator.importer.reader import BadRow, ParsedFile
from simulator.ingest_client import BatchSender

OnProgress = Callable[[int, int], None]  # (events done, total)


@dataclass(frozen=True, slots=True)
class SendOptions:
    batch_size: int = 100
    max_batch_bytes: int = 400_000  # under ingest's default 500 KB body limit
    max_events_per_second: float | None = None  # be gentle with a production ingest
    restart: bool = False  # ignore (and overwrite) an existing checkpoint


@dataclass(slots=True)
class ImportSummary:
    total: int  # valid events in the file
    resumed_from: int  # events a previous run had already delivered
    sent: int = 0
    refused: list[BadRow] = field(default_factory=list)  # rows ingest refused
    interrupted: bool = False

    @property
    def delivered(self) -> int:
        return self.resumed_from + self.sent


async def send_file(
    parsed: ParsedFile,
    *,
    mapping_text: str,
    checkpoint_file: Path,
    ingest: BatchSender,
    options: SendOptions,
    stop: asyncio.Event | None = None,
    on_progress: OnProgress | None = None,
) -> ImportSummary:
    """Send the rows not yet acknowledged; `stop` ends the run after the batch in flight."""
    total = len(parsed.rows)
    stored = None if options.restart else load_checkpoint(checkpoint_file)
    position = resume_position(
        stored, input_sha256=parsed.sha256, mapping=mapping_text, total=total
    )
    summary = ImportSummary(total=total, resumed_from=position)
    if on_progress:
        on_progress(position, total)
    began = time.monotonic()
    while position < total:
        if stop is not None and stop.is_set():
            summary.interrupted = True
            break
        items = _next_batch(parsed, position, options)
        result = await ingest.send_batch(items)
        for error in result.rejected:
            line = parsed.rows[position + error.index].line
            summary.refused.append(BadRow(line, f"refused by ingest: {error.reason}"))
        position += len(items)
        summary.sent += len(items)
        # Written only after ingest acknowledged the batch (see checkpoint.py for kill -9).
        save_checkpoint(
            checkpoint_file,
            Checkpoint(
                input_sha256=parsed.sha256, mapping=mapping_text, total=total, acknowledged=position
            ),
        )
        if on_progress:
            on_progress(position, total)
        if options.max_events_per_second:
            ahead_s = began + summary.sent / options.max_events_per_second - time.monotonic()
            await asyncio.sleep(max(0.0, ahead_s))  # rate limit, not synchronisation
    return summary


def _next_batch(parsed: ParsedFile, position: int, options: SendOptions) -> list[dict[str, Any]]:
    """Up to batch_size items from `position`, under the byte limit (at least one item)."""
    items: list[dict[str, Any]] = []
    size = 0
    for row in parsed.rows[position : position + options.batch_size]:
        item = row.call.to_segment()
        item_size = len(orjson.dumps(item)) + 1
        if items and size + item_size > options.max_batch_bytes:
            break
        items.append(item)
        size += item_size
    return items
