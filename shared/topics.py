"""Topic names: the one place they are spelled."""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import CommonSettings

DLQ_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """Where poison messages of `topic` go, with the original bytes and the error."""
    return topic + DLQ_SUFFIX


@dataclass(frozen=True, slots=True)
class Topics:
    events: str
    transitions: str
    notifications: str

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> Topics:
        return cls(
            events=settings.topic_events,
            transitions=settings.topic_transitions,
            notifications=settings.topic_notifications,
        )

    def all(self) -> list[str]:
        """Every topic the pipeline writes, dead-letter topics included."""
        names = [self.events, self.transitions, self.notifications]
        return names + [dead_letter_topic(name) for name in names]
