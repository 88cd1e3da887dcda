"""Why a request is refused, as a typed exception the routes turn into a JSON answer.

Every refusal names the field and the reason, in the shape Segment's SDKs
read (`code`, `message`), plus `field` and `reason`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from pydantic_core import ErrorDetails
from starlette.responses import Response

from ingest.models import Rejection
from shared.events import EVENT_TYPES

# pydantic error types whose `loc` points at an item but whose subject is its `type`.
_TAG_ERRORS = {"union_tag_invalid", "union_tag_not_found"}
_CALL_TYPES = set(EVENT_TYPES)


class RefusedError(Exception):
    """Nothing of the request was written; answer `status` with this body."""

    def __init__(
        self,
        status: int,
        code: str,
        field: str | None,
        reason: str,
        *,
        headers: Mapping[str, str] | None = None,
        rejected: Sequence[Rejection] = (),
        events: int = 1,
    ) -> None:
        super().__init__(f"{status} {code}: {field}: {reason}")
        self.status = status
        self.code = code
        self.field = field
        self.reason = reason
        self.headers = dict(headers or {})
        self.rejected = list(rejected)
        # How many events the refusal cost, for ingest_events_rejected_total; 1 when
        # the request was refused before its events were counted.
        self.events = events

    def response(self) -> Response:
        message = f"{self.field}: {self.reason}" if self.field else self.reason
        body = {
            "success": False,
            "code": self.code,
            "message": message,
            "field": self.field,
            "reason": self.reason,
            "rejected": [r.model_dump() for r in self.rejected],
        }
        return Response(
            orjson.dumps(body),
            status_code=self.status,
            headers=self.headers,
            media_type="application/json",
        )


def bad_request(field: str, reason: str) -> RefusedError:
    return RefusedError(400, "invalid_request", field, reason)


def too_large(
    what: str, limit_bytes: int, size_bytes: int | None = None, *, decompressed: bool = False
) -> RefusedError:
    """413; `size_bytes` None when reading stopped at the limit (the full size is unknown)."""
    size = f"{size_bytes} bytes" if size_bytes is not None else f"over {limit_bytes} bytes"
    form = " decompressed" if decompressed else ""
    return RefusedError(
        413, "too_large", "body", f"the {what} is {size}{form}; the limit is {limit_bytes} bytes"
    )


def retry_later(code: str, reason: str, retry_after_s: int, status: int = 503) -> RefusedError:
    return RefusedError(status, code, None, reason, headers={"Retry-After": str(retry_after_s)})


def field_of(error: ErrorDetails, *, tagged: bool = False, whole: str = "body") -> str:
    """The camelCase field path of a pydantic error (our models validate by alias).

    `tagged`: the error comes from a batch item, whose `loc` starts with the
    discriminated union's tag ("track"), which is not a field. `whole` names
    the value itself when the error is about all of it.
    """
    if error["type"] in _TAG_ERRORS:
        return "type"
    loc = error["loc"]
    if tagged and loc and loc[0] in _CALL_TYPES:
        loc = loc[1:]
    return ".".join(str(part) for part in loc) or whole


def reason_of(error: ErrorDetails) -> str:
    if error["type"] == "missing":
        return "required"
    return error["msg"]
