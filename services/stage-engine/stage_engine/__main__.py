"""`python -m stage_engine`: migrate the database, then serve on STAGE_ENGINE_PORT.

`python -m stage_engine migrate` only migrates (alembic upgrade head).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable

from shared.gc_tuning import tune_garbage_collector
from shared.logs import configure_logging
from shared.metrics import new_registry
from shared.serve import serve
from shared.settings import load_settings
from stage_engine.app import create_app
from stage_engine.main import SERVICE, migrate_database, start_engine
from stage_engine.runtime import Engine
from stage_engine.settings import StageEngineSettings

log = logging.getLogger("stage_engine")


STOP_TIMEOUT_S = 20.0
_exiting: set[asyncio.Task[None]] = set()


def _exit_when_failed(started: list[Engine]) -> Callable[[BaseException], None]:
    def on_failure(_exc: BaseException) -> None:
        task = asyncio.get_running_loop().create_task(_stop_and_exit(started))
        _exiting.add(task)

    return on_failure


async def _stop_and_exit(started: list[Engine]) -> None:
    """A loop died: stop the others and the clients, then exit 1 to be restarted.

    (uvicorn turns a SIGTERM into the signal's own exit status, so the process exits
    here itself.) Killed during this: nothing is lost, the database holds the offsets.
    """
    for engine in started:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(engine.stop(), timeout=STOP_TIMEOUT_S)
    logging.shutdown()
    os._exit(1)


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
        engine = await start_engine(
            settings, registry=registry, on_failure=_exit_when_failed(started)
        )
        started.append(engine)
        tune_garbage_collector()
        return engine

    app = create_app(settings, registry=registry, start=start)
    serve(
        app, host=settings.http_host, port=settings.stage_engine_port, log_level=settings.log_level
    )
    return 0 if started else 1  # not started: the engine could not start (logged)


if __name__ == "__main__":
    sys.exit(main())
