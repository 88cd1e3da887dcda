"""JSON codec for the contracts (orjson + pydantic), with errors that name the field."""

from __future__ import annotations

from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from shared.errors import DecodeError

ModelT = TypeVar("ModelT", bound=BaseModel)


def encode(record: BaseModel) -> bytes:
    """Compact JSON bytes; datetimes in RFC 3339.

    pydantic-core writes the JSON straight from the model: the same bytes as
    orjson over `model_dump(mode="json")` (tests check it), at about half the cost,
    without the intermediate dicts.
    """
    return record.__pydantic_serializer__.to_json(record, exclude_none=True)


def decode(model: type[ModelT], payload: bytes | bytearray | memoryview | None) -> ModelT:
    """Parse and validate `payload`, or raise DecodeError naming the first bad field."""
    if payload is None:
        raise DecodeError(model.__name__, "", "empty message (null value)")
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(model.__name__, "", f"not JSON: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise DecodeError(model.__name__, field, first["msg"]) from None
