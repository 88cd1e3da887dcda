"""Where an import stopped: a small JSON file beside the input.

It names the input (its SHA-256) and the column mapping, and how many events
of the file's event-time order ingest has acknowledged. It is rewritten after
each acknowledged batch: written to a temporary file, fsynced, then renamed
over the old one, so a reader finds either the old or the new checkpoint,
never a torn one.

A kill -9 right after a checkpoint write loses nothing: the next run skips
exactly the acknowledged events and sends the rest. A kill -9 after ingest
acknowledged a batch but before its checkpoint write makes the next run send
that one batch again, with the same messageIds, so the stage engine's
duplicate filter drops the copies. A kill -9 during the write leaves the
previous checkpoint in place (same outcome as the case before).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from shared.errors import LifecycleError

VERSION = 1


class CheckpointMismatchError(LifecycleError):
    """The checkpoint belongs to another file or another mapping."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    input_sha256: str
    mapping: str
    total: int  # valid events in the file
    acknowledged: int  # events, in event-time order, that ingest acknowledged
    version: int = VERSION

    @property
    def complete(self) -> bool:
        return self.acknowledged >= self.total


def checkpoint_path(input_path: Path) -> Path:
    return input_path.with_name(input_path.name + ".import-checkpoint.json")


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The stored checkpoint, None when there is none; an unreadable one is refused by name."""
    try:
        raw = orjson.loads(path.read_bytes())
        return Checkpoint(**raw)
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise CheckpointMismatchError(
            f"{path}: not a checkpoint this importer wrote ({exc}); delete it or pass --restart"
        ) from None


def resume_position(
    stored: Checkpoint | None, *, input_sha256: str, mapping: str, total: int
) -> int:
    """How many leading events to skip; refuses a checkpoint of another file or mapping."""
    if stored is None:
        return 0
    if stored.input_sha256 != input_sha256 or stored.mapping != mapping or stored.total != total:
        raise CheckpointMismatchError(
            "the checkpoint was written for another input file or column mapping "
            f"(file sha256 {stored.input_sha256[:12]}…, mapping {stored.mapping!r}); "
            "delete it or pass --restart to import from the start"
        )
    return min(stored.acknowledged, total)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Atomically replace the checkpoint (see the module docstring for crash behaviour)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(orjson.dumps(asdict(checkpoint)))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # makes the rename itself durable
    finally:
        os.close(directory)
