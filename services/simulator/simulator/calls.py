"""One Segment HTTP Tracking API call, as the simulator and the importer send it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

CallType = Literal["track", "identify", "page", "screen"]


@dataclass(frozen=True, slots=True)
class Call:
    """A call in simulated (or historical) event time.

    `at` becomes the call's `timestamp`; no `sentAt` is sent, so ingest keeps the
    timestamp as it is (no clock-skew correction of simulated time).
    """

    type: CallType
    at: datetime
    message_id: str
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    traits: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError(f"a call needs an aware timestamp, got {self.at!r}")
        if not (self.user_id or self.anonymous_id):
            raise ValueError(f"call {self.message_id!r} has neither user_id nor anonymous_id")

    @property
    def routing_key(self) -> str:
        """The key ingest partitions by: the user id, else the anonymous id."""
        return self.user_id or self.anonymous_id or ""

    def to_segment(self) -> dict[str, Any]:
        """The camelCase body item of a `/v1/batch` call."""
        body: dict[str, Any] = {
            "type": self.type,
            "messageId": self.message_id,
            "timestamp": self.at.isoformat(),
        }
        if self.user_id:
            body["userId"] = self.user_id
        if self.anonymous_id:
            body["anonymousId"] = self.anonymous_id
        if self.event is not None:
            body["event"] = self.event
        if self.name is not None:
            body["name"] = self.name
        if self.properties:
            body["properties"] = dict(self.properties)
        if self.traits:
            body["traits"] = dict(self.traits)
        if self.context:
            body["context"] = dict(self.context)
        return body
