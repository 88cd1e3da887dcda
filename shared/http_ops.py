"""/metrics, /healthz and /readyz, mounted by every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Response
from prometheus_client import CollectorRegistry

from shared.metrics import METRICS_CONTENT_TYPE, render

ReadinessCheck = Callable[[], Awaitable[bool]]
# (alive, what to add to the body): a service that knows more than "the process serves".
LivenessReport = Callable[[], tuple[bool, Mapping[str, Any]]]


def ops_router(
    registry: CollectorRegistry,
    readiness_checks: Mapping[str, ReadinessCheck],
    *,
    check_timeout_s: float = 3.0,
    liveness: LivenessReport | None = None,
) -> APIRouter:
    """`/healthz`: the process serves (and, with `liveness`, what that says: 503 when
    not alive). `/readyz`: every named dependency answers."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> Response:
        if liveness is None:
            return _json({"status": "ok"})
        alive, details = liveness()
        body = {"status": "ok" if alive else "stopped", **details}
        return _json(body, status_code=200 if alive else 503)

    @router.get("/readyz")
    async def readyz() -> Response:
        names = list(readiness_checks)
        results = await asyncio.gather(
            *(_bounded(readiness_checks[name], check_timeout_s) for name in names)
        )
        checks = dict(zip(names, results, strict=True))
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return _json(body, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(render(registry), media_type=METRICS_CONTENT_TYPE)

    return router


async def _bounded(check: ReadinessCheck, timeout_s: float) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout=timeout_s)
    except (TimeoutError, OSError):
        return False


def _json(body: dict[str, Any], *, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")
