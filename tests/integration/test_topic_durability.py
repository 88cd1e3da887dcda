"""Topic durability is a setting (issue 14): the topics the services create carry the
configured min.insync.replicas, a replication factor the cluster cannot hold fails
start-up naming the setting, and replication factor 1 is warned about."""

from __future__ import annotations

import logging

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.errors import SettingsError
from shared.kafka.admin import TopicSettingsError, ensure_topics
from shared.settings import CommonSettings, load_settings
from shared.topics import Topics


async def _topic_config(bootstrap: str, name: str, key: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, {key: None})]
        )
        for _code, _message, _type, _name, entries in response.resources:
            for entry in entries:
                if entry[0] == key:
                    return str(entry[1])
        raise AssertionError(f"{key} not described for {name}")
    finally:
        await admin.close()


async def test_created_topics_carry_min_insync_replicas_and_rf_1_is_warned_about(
    live_kafka: str, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    name = topics.events + ".durable"
    with caplog.at_level(logging.WARNING, logger="shared.kafka.admin"):
        await ensure_topics(
            live_kafka, [name], partitions=1, replication_factor=1, min_insync_replicas=1
        )
    assert await _topic_config(live_kafka, name, "min.insync.replicas") == "1"
    assert "TOPIC_REPLICATION_FACTOR=1" in caplog.text


async def test_a_replication_factor_beyond_the_brokers_names_the_setting(
    live_kafka: str, topics: Topics
) -> None:
    with pytest.raises(TopicSettingsError, match="TOPIC_REPLICATION_FACTOR=3"):
        await ensure_topics(
            live_kafka,
            [topics.events + ".replicated"],
            partitions=1,
            replication_factor=3,
            min_insync_replicas=2,
        )


def test_min_insync_above_the_replication_factor_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("TOPIC_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(SettingsError, match="TOPIC_MIN_INSYNC_REPLICAS=3 exceeds"):
        load_settings(CommonSettings)
