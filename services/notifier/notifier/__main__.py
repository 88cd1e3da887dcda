"""`python -m notifier`: migrate the database, then serve.

`python -m notifier migrate`: only migrate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from pydantic import SecretStr

from notifier.app import create_app
from notifier.playbook import PlaybookError, load_playbook
from notifier.service import NotifierService
from notifier.settings import NotifierSettings
from notifier.store.migrate import migrate
from shared.db import make_engine
from shared.errors import SettingsError
from shared.gc_tuning import tune_garbage_collector
from shared.logs import configure_logging
from shared.serve import serve
from shared.settings import load_settings

log = logging.getLogger("notifier")


async def _migrate(database_url: SecretStr) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def _stop_process(error: BaseException) -> None:
    # A loop died: exit (through uvicorn's graceful shutdown) so a supervisor restarts us.
    del error
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notifier", description=__doc__)
    parser.add_argument("command", nargs="?", choices=("serve", "migrate"), default="serve")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(NotifierSettings)
        playbook = load_playbook(settings.playbook_config)
    except (SettingsError, PlaybookError) as exc:
        sys.stderr.write(f"notifier: {exc}\n")
        return 2
    configure_logging("notifier", settings.log_level)
    asyncio.run(_migrate(settings.database_url))
    log.info("migrations applied")
    if args.command == "migrate":
        return 0
    service = NotifierService(settings, playbook, on_fatal=_stop_process)
    serve(
        create_app(service, after_start=tune_garbage_collector),
        host=settings.http_host,
        port=settings.notifier_port,
        log_level=settings.log_level,
    )
    return 1 if service.fatal is not None else 0


if __name__ == "__main__":
    sys.exit(main())
