"""The consumer every service uses: it never commits on its own.

Offsets are committed (to Kafka, or with the state in the database) only after
the outputs of a batch are durable; auto-commit would acknowledge messages whose
effects a crash could still lose.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer


@dataclass(frozen=True, slots=True)
class ConsumerTuning:
    max_poll_records: int = 2000
    fetch_max_wait_ms: int = 50
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000


def make_consumer(
    bootstrap_servers: str,
    *,
    group_id: str | None,
    client_id: str,
    auto_offset_reset: str = "earliest",
    tuning: ConsumerTuning = ConsumerTuning(),
) -> AIOKafkaConsumer:
    """Build (not start, not subscribed) a consumer with auto-commit off."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        isolation_level="read_committed",
        max_poll_records=tuning.max_poll_records,
        fetch_max_wait_ms=tuning.fetch_max_wait_ms,
        max_partition_fetch_bytes=tuning.max_partition_fetch_bytes,
        session_timeout_ms=tuning.session_timeout_ms,
        heartbeat_interval_ms=tuning.heartbeat_interval_ms,
        max_poll_interval_ms=tuning.max_poll_interval_ms,
    )
