"""Topic creation at start-up, with the configured partitions and durability.

Durability: `replication_factor` copies of each partition, and `min.insync.replicas`
of them must have a write before an acks=all producer (all of ours) is told it
succeeded. The defaults (1 and 1) suit one local broker; a production cluster wants
3 and 2, so that an acknowledged event survives the loss of a broker. Topics that
exist already are left as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

from shared.errors import SettingsError

log = logging.getLogger(__name__)


class TopicSettingsError(SettingsError):
    """The topic settings do not fit the cluster; the message names the setting."""


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    min_insync_replicas: int = 1,
) -> None:
    """Create the topics that do not exist yet; existing topics are left as they are."""
    if replication_factor == 1:
        log.warning(
            "topics have TOPIC_REPLICATION_FACTOR=1: an event acknowledged with acks=all "
            "lives on one broker and is lost with its disk; use 3 (and "
            "TOPIC_MIN_INSYNC_REPLICAS=2) on a cluster"
        )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lifecycle-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if not missing:
            return
        new_topics = [
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                topic_configs={"min.insync.replicas": str(min_insync_replicas)},
            )
            for name in missing
        ]
        try:
            response = await admin.create_topics(new_topics)
        except TopicAlreadyExistsError:
            return  # another replica created them between our list and create
        for name, code, *_ in getattr(response, "topic_errors", []):
            if code == InvalidReplicationFactorError.errno:
                raise TopicSettingsError(
                    f"creating topic {name!r}: TOPIC_REPLICATION_FACTOR={replication_factor} "
                    "is more than the cluster's brokers"
                )
            if code not in (0, TopicAlreadyExistsError.errno):
                raise RuntimeError(f"creating topic {name!r} failed with Kafka error code {code}")
        await _wait_until_described(admin, missing, timeout_s=30.0)
        log.info("created topics", extra={"topics": missing, "partitions": partitions})
    finally:
        await admin.close()


async def _wait_until_described(
    admin: AIOKafkaAdminClient, names: list[str], *, timeout_s: float
) -> None:
    # A created topic's partitions reach the metadata a moment later; callers
    # that produce right after start-up must not see "unknown topic".
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(names)
        if all(topic.get("partitions") for topic in described):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {names} created but without partitions after {timeout_s}s")
        await asyncio.sleep(0.1)  # polling the broker's metadata, bounded by the deadline
