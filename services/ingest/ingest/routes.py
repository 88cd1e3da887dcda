"""The Segment HTTP Tracking API's routes, documented in /openapi.json as they behave."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from ingest.handlers import Ingest
from ingest.models import (
    SINGLE_REQUESTS,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    SuccessResponse,
)
from shared.events import EventType

BATCH_ROUTES = ("/v1/batch", "/v1/import")
Endpoint = Callable[[Request], Awaitable[Response]]

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def tracking_endpoints(ingest: Ingest) -> dict[str, Endpoint]:
    """Path -> endpoint for every tracking route (all POST)."""
    endpoints = {
        f"/v1/{call_type}": _single(ingest, call_type, f"/v1/{call_type}")
        for call_type in SINGLE_REQUESTS
    }
    endpoints |= {route: _batch(ingest, route) for route in BATCH_ROUTES}
    return endpoints


def tracking_router(endpoints: dict[str, Endpoint]) -> APIRouter:
    """The tracking routes as FastAPI routes: they document the API in /openapi.json."""
    router = APIRouter(tags=["tracking"])
    for call_type, model in SINGLE_REQUESTS.items():
        route = f"/v1/{call_type}"
        router.add_api_route(
            route,
            endpoints[route],
            methods=["POST"],
            name=call_type,
            summary=f"one {call_type} call",
            responses=_responses(SuccessResponse, "Kafka acknowledged the event"),
            openapi_extra=_request_body(model),
        )
    for route in BATCH_ROUTES:
        router.add_api_route(
            route,
            endpoints[route],
            methods=["POST"],
            name=route.rsplit("/", 1)[-1],
            summary="many calls of any type; invalid items are reported by index",
            responses=_responses(
                BatchResponse, "Kafka acknowledged every accepted call; `rejected` lists the others"
            ),
            openapi_extra=_request_body(BatchRequest),
        )
    return router


def request_models() -> list[type[BaseModel]]:
    """The request bodies /openapi.json must describe (routes.py reads bodies itself)."""
    return [*SINGLE_REQUESTS.values(), BatchRequest]


def _single(ingest: Ingest, call_type: EventType, route: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await ingest.single(request, call_type, route)

    return endpoint


def _batch(ingest: Ingest, route: str) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await ingest.batch(request, route)

    return endpoint


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _responses(success: type[BaseModel], description: str) -> dict[int | str, dict[str, Any]]:
    def error(text: str, **extra: Any) -> dict[str, Any]:
        return {"model": ErrorResponse, "description": text, **extra}

    return {
        200: {"model": success, "description": description},
        400: error("malformed JSON, wrong content type or encoding, or an invalid call"),
        401: error("missing or unknown write key"),
        413: error("an event or the body over its size limit"),
        429: error("more requests than the write key may send", headers=_RETRY_AFTER),
        503: error("Kafka did not acknowledge in time, or is unreachable", headers=_RETRY_AFTER),
    }
