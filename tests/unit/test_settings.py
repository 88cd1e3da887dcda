from __future__ import annotations

import pytest

from shared.errors import SettingsError
from shared.settings import CommonSettings, load_settings
from shared.topics import Topics, dead_letter_topic


def test_defaults_work_with_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOPIC_PARTITIONS", raising=False)
    settings = load_settings(CommonSettings)
    assert settings.topic_events == "lifecycle.events.v1"
    assert settings.topic_partitions == 12


def test_environment_overrides_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPIC_EVENTS", "custom.events")
    assert Topics.from_settings(load_settings(CommonSettings)).events == "custom.events"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TOPIC_PARTITIONS", "many"), ("TOPIC_PARTITIONS", "0"), ("INGEST_PORT", "70000")],
)
def test_a_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(CommonSettings)


def test_settings_are_frozen() -> None:
    settings = load_settings(CommonSettings)
    with pytest.raises(ValueError, match="frozen"):
        settings.topic_events = "x"  # type: ignore[misc]


def test_every_topic_has_a_dead_letter_topic() -> None:
    topics = Topics("e", "t", "n")
    assert dead_letter_topic("e") == "e.dlq"
    assert set(topics.all()) == {"e", "t", "n", "e.dlq", "t.dlq", "n.dlq"}


def test_a_bad_setting_never_shows_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message reaches logs: it names the variable, not what it holds."""
    monkeypatch.setenv("TOPIC_PARTITIONS", "s3cret-partitions")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:hunter2@db/lifecycle")
    with pytest.raises(SettingsError) as refused:
        load_settings(CommonSettings)
    message = str(refused.value)
    assert "TOPIC_PARTITIONS" in message
    assert "s3cret" not in message
    assert "hunter2" not in message
