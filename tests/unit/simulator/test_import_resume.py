"""The import checkpoint: written after each acknowledged batch, resumed exactly, checked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from simulator.importer.checkpoint import (
    Checkpoint,
    CheckpointMismatchError,
    checkpoint_path,
    load_checkpoint,
    resume_position,
    save_checkpoint,
)
from simulator.importer.mapping import ColumnMapping
from simulator.importer.reader import ParsedFile, parse_file
from simulator.importer.send import SendOptions, send_file
from simulator.ingest_client import BatchResult, IngestUnavailableError, ItemError


class RecordingIngest:
    """Stands in for ingest's HTTP API: records acknowledged batches; can fail on the Nth."""

    def __init__(
        self, *, fail_on_batch: int | None = None, refuse: frozenset[str] = frozenset()
    ) -> None:
        self.batches: list[list[str]] = []
        self._fail_on_batch = fail_on_batch
        self._refuse = refuse
        self._calls = 0

    async def send_batch(self, items: Sequence[dict[str, Any]]) -> BatchResult:
        self._calls += 1
        if self._calls == self._fail_on_batch:
            raise IngestUnavailableError("ingest went away")
        self.batches.append([item["messageId"] for item in items])
        refused = [
            ItemError(i, "bad") for i, item in enumerate(items) if item["userId"] in self._refuse
        ]
        return BatchResult(len(items), tuple(refused))

    @property
    def sent(self) -> list[str]:
        return [message_id for batch in self.batches for message_id in batch]


def history(tmp_path: Path, rows: int = 25) -> tuple[Path, ParsedFile]:
    lines = ["user_id,event,timestamp"]
    # Written newest first: the import must send oldest first.
    lines += [f"u{i},Seen,2025-01-01T00:{59 - i:02d}:00Z" for i in range(rows)]
    path = tmp_path / "h.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, parse_file(path, ColumnMapping(), "csv")


async def run(path: Path, parsed: ParsedFile, ingest: RecordingIngest, **options: Any) -> Any:
    return await send_file(
        parsed,
        mapping_text=ColumnMapping().describe(),
        checkpoint_file=checkpoint_path(path),
        ingest=ingest,
        options=SendOptions(batch_size=10, **options),
    )


async def test_an_interrupted_import_resumes_after_the_last_acknowledged_batch(
    tmp_path: Path,
) -> None:
    path, parsed = history(tmp_path)
    crashing = RecordingIngest(fail_on_batch=3)
    with pytest.raises(IngestUnavailableError):
        await run(path, parsed, crashing)
    stored = load_checkpoint(checkpoint_path(path))
    assert stored is not None
    assert stored.acknowledged == 20  # two batches of 10 acknowledged before the failure

    resumed = RecordingIngest()
    summary = await run(path, parsed, resumed)
    assert summary.resumed_from == 20
    assert summary.sent == 5
    everything = crashing.sent + resumed.sent
    assert everything == [row.call.message_id for row in parsed.rows], "resent or skipped events"
    assert [row.call.user_id for row in parsed.rows][:2] == ["u24", "u23"]  # oldest first
    final = load_checkpoint(checkpoint_path(path))
    assert final is not None
    assert final.complete

    again = RecordingIngest()
    assert (await run(path, parsed, again)).sent == 0
    assert again.batches == []


async def test_stop_ends_after_the_batch_in_flight_with_its_checkpoint(tmp_path: Path) -> None:
    path, parsed = history(tmp_path)
    stop = asyncio.Event()
    ingest = RecordingIngest()

    def progress(done: int, total: int) -> None:
        if done >= 10:
            stop.set()

    summary = await send_file(
        parsed,
        mapping_text=ColumnMapping().describe(),
        checkpoint_file=checkpoint_path(path),
        ingest=ingest,
        options=SendOptions(batch_size=10),
        stop=stop,
        on_progress=progress,
    )
    assert summary.interrupted
    assert summary.sent == 10
    stored = load_checkpoint(checkpoint_path(path))
    assert stored is not None
    assert stored.acknowledged == 10


async def test_items_ingest_refuses_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    path, parsed = history(tmp_path)
    summary = await run(path, parsed, RecordingIngest(refuse=frozenset({"u3"})))
    assert [(bad.line, bad.reason) for bad in summary.refused] == [(5, "refused by ingest: bad")]


async def test_a_checkpoint_of_another_file_is_refused_and_restart_ignores_it(
    tmp_path: Path,
) -> None:
    path, parsed = history(tmp_path)
    save_checkpoint(
        checkpoint_path(path),
        Checkpoint(
            input_sha256="0" * 64, mapping=ColumnMapping().describe(), total=25, acknowledged=7
        ),
    )
    with pytest.raises(CheckpointMismatchError, match="another input file"):
        await run(path, parsed, RecordingIngest())
    ingest = RecordingIngest()
    summary = await run(path, parsed, ingest, restart=True)
    assert summary.sent == 25


def test_resume_position_checks_file_mapping_and_size() -> None:
    stored = Checkpoint(input_sha256="a", mapping="m", total=10, acknowledged=4)
    assert resume_position(None, input_sha256="a", mapping="m", total=10) == 0
    assert resume_position(stored, input_sha256="a", mapping="m", total=10) == 4
    for changed in ({"input_sha256": "b"}, {"mapping": "n"}, {"total": 11}):
        args: dict[str, Any] = {"input_sha256": "a", "mapping": "m", "total": 10} | changed
        with pytest.raises(CheckpointMismatchError):
            resume_position(stored, **args)


def test_checkpoint_writes_are_whole_and_a_torn_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.import-checkpoint.json"
    save_checkpoint(path, Checkpoint(input_sha256="a", mapping="m", total=3, acknowledged=1))
    save_checkpoint(path, Checkpoint(input_sha256="a", mapping="m", total=3, acknowledged=2))
    assert load_checkpoint(path) == Checkpoint(
        input_sha256="a", mapping="m", total=3, acknowledged=2
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left over
    path.write_text('{"input_sha256": "a", "mapp')
    with pytest.raises(CheckpointMismatchError, match="--restart"):
        load_checkpoint(path)
    assert load_checkpoint(tmp_path / "absent.json") is None
