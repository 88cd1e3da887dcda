"""`python -m stage_engine`: migrate the database, then serve on STAGE_ENGINE_PORT.

`python -m stage_engine migrate` only migrates (alembic upgrade head).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from shared.logs import configure_logging
from shared.metrics import new_registry
from shared.serve import serve
from shared.settings import load_settings
from stage_engine.app import create_app
from stage_engine.main import SERVICE, migrate_database, start_engine
from stage_engine.runtime import Engine
from stage_engine.settings import StageEngineSettings

log = logging.getLogger("stage_engine")


def _stop_serving(_exc: BaseException) -> None:
    # A loop died: ask uvicorn to shut down (it runs the lifespan's stop); exit code 1.
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stage_engine", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("serve", "migrate"), default="serve")
    args = parser.parse_args(argv)
    settings = load_settings(StageEngineSettings)
    configure_logging(SERVICE, settings.log_level)
    # The pre-start step: the schema is at head before anything consumes.
    asyncio.run(migrate_database(settings))
    log.info("database migrated")
    if args.command == "migrate":
        return 0
    registry = new_registry()
    started: list[Engine] = []

    async def start() -> Engine:
        engine = await start_engine(settings, registry=registry, on_failure=_stop_serving)
        started.append(engine)
        return engine

    app = create_app(settings, registry=registry, start=start)
    serve(
        app, host=settings.http_host, port=settings.stage_engine_port, log_level=settings.log_level
    )
    failed = any(engine.failure is not None for engine in started)
    return 1 if failed or not started else 0


if __name__ == "__main__":
    sys.exit(main())
