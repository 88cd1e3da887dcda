"""The Event contract: ingest's normalised Segment call on `lifecycle.events.v1`.

Field names are snake_case on the wire. Consumers ignore fields they do not
know, so adding an optional field is a compatible change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

EventType = Literal["track", "identify", "page", "screen", "group", "alias"]
EVENT_TYPES: tuple[EventType, ...] = ("track", "identify", "page", "screen", "group", "alias")


class Event(BaseModel):
    """One user event, as the stage engine consumes it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    message_id: str = Field(min_length=1, max_length=200)
    type: EventType
    event: str | None = Field(default=None, description="track: the event name")
    name: str | None = Field(default=None, description="page/screen: the page name")
    category: str | None = None
    user_id: str | None = Field(default=None, max_length=200)
    anonymous_id: str | None = Field(default=None, max_length=200)
    previous_id: str | None = Field(default=None, description="alias: the id being merged")
    group_id: str | None = None
    timestamp: AwareDatetime = Field(description="event time, corrected for client clock skew")
    received_at: AwareDatetime = Field(description="when ingest received the call")
    sent_at: AwareDatetime | None = None
    original_timestamp: AwareDatetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    source: str = Field(default="", description="the write key's source name")

    @property
    def partition_key(self) -> str:
        return partition_key(self.user_id, self.anonymous_id, self.previous_id)


def partition_key(
    user_id: str | None, anonymous_id: str | None, previous_id: str | None = None
) -> str:
    """The Kafka key: user id, else anonymous id, so one user's events stay in order.

    An alias carries the new id as user id; a call with neither id cannot be
    routed and is refused before it reaches Kafka.
    """
    key = user_id or anonymous_id or previous_id
    if not key:
        raise ValueError("an event needs user_id or anonymous_id to be routed")
    return key


def event_time_key(event: Event) -> tuple[datetime, str]:
    """Sort key for replaying events in event-time order, ties broken by id."""
    return (event.timestamp, event.message_id)
