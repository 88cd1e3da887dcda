"""The Segment HTTP Tracking API's request and response bodies, as clients send them.

camelCase on the wire (aliases); unknown fields (`version`, `channel`,
`_metadata`, a client's `receivedAt`...) are ignored. These are kept apart
from the shared Event: `normalise` maps one to the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from ingest.bounds import ID_MAX_CHARS, NAME_MAX_CHARS, NO_CONTROL_CHARACTERS
from shared.events import EventType

# Same bounds as the shared Event's ids, so a valid call always makes a valid Event;
# no control characters (PostgreSQL refuses NUL), no longer than the stores' columns.
Id = Annotated[str, Field(min_length=1, max_length=ID_MAX_CHARS, pattern=NO_CONTROL_CHARACTERS)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS, pattern=NO_CONTROL_CHARACTERS)]
_TIME_BOUNDS = (
    "1970-01-01 <= time < 2200-01-01; the event time after clock-skew correction must lie "
    "between INGEST_EARLIEST_EVENT_TIME (2000-01-01) and the received time + "
    "INGEST_MAX_FUTURE_SECONDS (24 h), else 400"
)
_AMOUNT_BOUNDS = (
    "a JSON object; properties.revenue, total, value, price and quantity "
    "(INGEST_AMOUNT_PROPERTIES) must be finite numbers within +-1e12 (INGEST_MAX_AMOUNT)"
)
# Any JSON object; numbers must fit in 64 bits, as the Kafka record is encoded with orjson.
JsonObject = Annotated[
    dict[str, Any],
    Field(description="a JSON object; integers anywhere inside must fit in 64 bits"),
]

_ID_REQUIRED_SCHEMA: JsonDict = {
    "anyOf": [
        {"required": ["userId"], "properties": {"userId": {"type": "string"}}},
        {"required": ["anonymousId"], "properties": {"anonymousId": {"type": "string"}}},
    ]
}


class _Call(BaseModel):
    """Fields every call type has."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        extra="ignore",
        frozen=True,
        # SDKs send numeric ids; Segment stores them as strings.
        coerce_numbers_to_str=True,
    )

    user_id: Id | None = None
    anonymous_id: Id | None = None
    message_id: Id | None = None
    timestamp: datetime | None = Field(default=None, description=_TIME_BOUNDS)
    original_timestamp: datetime | None = Field(default=None, description=_TIME_BOUNDS)
    sent_at: datetime | None = Field(default=None, description=_TIME_BOUNDS)
    context: JsonObject | None = None
    integrations: JsonObject | None = None


class _NeedsId(_Call):
    model_config = ConfigDict(json_schema_extra=_ID_REQUIRED_SCHEMA)


class TrackCall(_NeedsId):
    event: Name
    properties: JsonObject | None = Field(default=None, description=_AMOUNT_BOUNDS)


class IdentifyCall(_NeedsId):
    traits: JsonObject | None = None


class PageCall(_NeedsId):
    name: Name | None = None
    category: Name | None = None
    properties: JsonObject | None = Field(default=None, description=_AMOUNT_BOUNDS)


class ScreenCall(PageCall):
    pass


class GroupCall(_NeedsId):
    group_id: Id
    traits: JsonObject | None = None


class AliasCall(_Call):
    previous_id: Id


AnyCall = TrackCall | IdentifyCall | PageCall | ScreenCall | GroupCall | AliasCall


class _WriteKeyInBody(BaseModel):
    write_key: str | None = Field(
        default=None, alias="writeKey", description="alternative to HTTP Basic auth"
    )


# A single call (/v1/track, ...): the path says the type, the body's `type` is ignored.
class TrackRequest(TrackCall, _WriteKeyInBody):
    pass


class IdentifyRequest(IdentifyCall, _WriteKeyInBody):
    pass


class PageRequest(PageCall, _WriteKeyInBody):
    pass


class ScreenRequest(ScreenCall, _WriteKeyInBody):
    pass


class GroupRequest(GroupCall, _WriteKeyInBody):
    pass


class AliasRequest(AliasCall, _WriteKeyInBody):
    pass


# A batch item names its type.
class TrackItem(TrackCall):
    type: Literal["track"]


class IdentifyItem(IdentifyCall):
    type: Literal["identify"]


class PageItem(PageCall):
    type: Literal["page"]


class ScreenItem(ScreenCall):
    type: Literal["screen"]


class GroupItem(GroupCall):
    type: Literal["group"]


class AliasItem(AliasCall):
    type: Literal["alias"]


BatchItem = Annotated[
    TrackItem | IdentifyItem | PageItem | ScreenItem | GroupItem | AliasItem,
    Field(discriminator="type"),
]


class _BatchEnvelope(_WriteKeyInBody):
    model_config = ConfigDict(alias_generator=to_camel, extra="ignore", frozen=True)

    sent_at: datetime | None = Field(default=None, description="default for items without one")
    context: JsonObject | None = Field(default=None, description="merged under each item's")
    integrations: JsonObject | None = None


class BatchRequest(_BatchEnvelope):
    batch: list[BatchItem] = Field(min_length=1)


class LooseBatchRequest(_BatchEnvelope):
    """The envelope alone: used to report a batch's invalid items one by one."""

    batch: list[Any] = Field(min_length=1)


SingleRequest = (
    TrackRequest | IdentifyRequest | PageRequest | ScreenRequest | GroupRequest | AliasRequest
)
SINGLE_REQUESTS: dict[EventType, type[SingleRequest]] = {
    "track": TrackRequest,
    "identify": IdentifyRequest,
    "page": PageRequest,
    "screen": ScreenRequest,
    "group": GroupRequest,
    "alias": AliasRequest,
}
ITEM_ADAPTER: TypeAdapter[BatchItem] = TypeAdapter(BatchItem)


class Rejection(BaseModel):
    """Why one call was not accepted."""

    index: int | None = Field(default=None, description="the item's position in `batch`")
    field: str = Field(description="the offending field (camelCase), or `body`")
    reason: str


class SuccessResponse(BaseModel):
    success: Literal[True] = True


class BatchResponse(BaseModel):
    """200: every accepted item is acknowledged by Kafka; `rejected` lists the others."""

    success: Literal[True] = True
    accepted: int = Field(ge=1)
    rejected: list[Rejection] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Nothing of the request was written."""

    success: Literal[False] = False
    code: str = Field(description="invalid_request, unauthorized, too_large, rate_limited, ...")
    message: str
    field: str | None = None
    reason: str
    rejected: list[Rejection] = Field(default_factory=list)
