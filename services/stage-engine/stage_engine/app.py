"""HTTP: a user's lifecycle profile, their transitions, users per stage, and ops routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from shared.http_ops import ops_router
from shared.kafka.ping import broker_answers
from stage_engine.lifecycle import profile_of
from stage_engine.runtime import Engine
from stage_engine.settings import StageEngineSettings
from stage_engine.store import queries
from stage_engine.store.database import Database

MAX_TRANSITIONS = 1000


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _db(request: Request) -> Database:
    return _engine(request).db


DbDep = Annotated[Database, Depends(_db)]

router = APIRouter(prefix="/v1")


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def _unknown_user(user_id: str) -> Response:
    return _json(
        {"error": "unknown_user", "detail": f"no profile for user id {user_id!r}"},
        status_code=404,
    )


@router.get("/users/{user_id}", response_model=None)
async def get_user(user_id: str, db: DbDep) -> Response:
    async with db.read() as conn:
        try:
            stored = await queries.find_user(conn, user_id)
        except ValueError as exc:  # an unreadable row: quarantined by its next write
            return _json(
                {"error": "unreadable_profile", "detail": f"{user_id!r}: {exc}"},
                status_code=500,
            )
    if stored is None:
        return _unknown_user(user_id)
    state = stored.state
    body: dict[str, Any] = {
        "user_id": state.user_id,
        "is_anonymous": state.is_anonymous,
        **profile_of(state).model_dump(mode="json"),
        "next_due_at": state.next_due_at.isoformat() if state.next_due_at else None,
    }
    return _json(body)


@router.get("/users/{user_id}/transitions", response_model=None)
async def get_transitions(
    user_id: str,
    db: DbDep,
    limit: Annotated[int, Query(ge=1, le=MAX_TRANSITIONS)] = 100,
) -> Response:
    async with db.read() as conn:
        stored = await queries.find_user(conn, user_id)
        if stored is None:
            return _unknown_user(user_id)
        bodies = await queries.user_transitions(conn, stored.state.user_id, limit=limit)
    # The stored bodies are the CloudEvents JSON as published: spliced, not re-encoded.
    head = orjson.dumps({"user_id": stored.state.user_id})[:-1]
    content = head + b',"transitions":[' + b",".join(bodies) + b"]}"
    return Response(content, media_type="application/json")


@router.get("/stages", response_model=None)
async def get_stages(db: DbDep) -> Response:
    async with db.read() as conn:
        counts = await queries.users_per_stage(conn)
    return _json({"stages": counts, "total": sum(counts.values())})


def create_app(
    settings: StageEngineSettings,
    *,
    registry: CollectorRegistry,
    engine: Engine | None = None,
    start: Callable[[], Awaitable[Engine]] | None = None,
) -> FastAPI:
    """The app. With `start` (an engine factory using `registry`) its lifespan runs the
    engine; with `engine` the caller runs it (tests)."""
    if (engine is None) == (start is None):
        raise ValueError("create_app needs exactly one of `engine` and `start`")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if start is None:
            yield
            return
        running = await start()
        app.state.engine = running
        try:
            yield
        finally:
            await running.stop()

    app = FastAPI(title="Lifecycle stage engine", lifespan=lifespan)
    app.state.engine = engine
    app.include_router(router)

    async def database_ready() -> bool:
        try:
            async with _engine_of(app).db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return False
        return True

    async def kafka_ready() -> bool:
        return await broker_answers(settings.kafka_bootstrap_servers, timeout_s=2.0)

    async def engine_ready() -> bool:
        """Every loop runs (none recovering from a fault) and owns what it was assigned."""
        engine = _engine_of(app)
        return engine.running and not engine.not_ready()

    def liveness() -> tuple[bool, dict[str, Any]]:
        """Alive unless a loop stopped the engine. A loop restarting after a fault is
        alive (a new process would not bring the database back): the body names it."""
        engine = _engine_of(app)
        return engine.failure is None, {
            "loops": engine.supervisor.report(),
            **engine.not_ready(),
        }

    app.include_router(
        ops_router(
            registry,
            {"database": database_ready, "kafka": kafka_ready, "engine": engine_ready},
            liveness=liveness,
        )
    )
    return app


def _engine_of(app: FastAPI) -> Engine:
    engine: Engine = app.state.engine
    return engine
