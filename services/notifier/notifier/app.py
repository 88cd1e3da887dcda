"""The notifier's FastAPI app: lifespan starts and stops the service's loops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from notifier.routes import api_router
from notifier.service import NotifierService
from shared.http_ops import ops_router


def create_app(
    service: NotifierService,
    *,
    manage_service: bool = True,
    after_start: Callable[[], None] | None = None,
) -> FastAPI:
    """`manage_service=False`: the caller starts and stops the service (tests).

    `after_start` runs once the loops are started (the entry point tunes the GC there).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not manage_service:
            yield
            return
        await service.start()
        if after_start is not None:
            after_start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(title="Lifecycle notifier", lifespan=lifespan)
    app.include_router(
        ops_router(
            service.metrics.registry,
            {
                "database": service.database_answers,
                "kafka": service.kafka_answers,
                "loops": service.loops_running,
            },
        )
    )
    app.include_router(
        api_router(service.engine, default_window_days=service.settings.notifier_recall_window_days)
    )
    return app
