"""What `make run` prints once everything is up: where to look."""

from __future__ import annotations

from rich.console import Console
from sqlalchemy.engine import make_url

from shared.topics import Topics
from simulator.settings import RunSettings
from simulator.stack.kafka import Broker
from simulator.stack.plan import StackPaths


def print_links(
    console: Console,
    *,
    settings: RunSettings,
    paths: StackPaths,
    broker: Broker,
    topics: Topics,
    write_key: str,
    database_url: str | None,
) -> None:
    host = "http://127.0.0.1"
    store = (
        make_url(database_url).render_as_string(hide_password=True)
        if database_url
        else f"SQLite files {paths.state_dir}/stage-engine.db, notifier.db"
    )
    lines = [
        "Lifecycle is running. Where to look:",
        f"  ingest        {host}:{settings.ingest_port}/v1/batch  (write key {write_key})",
        f"  stage engine  {host}:{settings.stage_engine_port}/v1/stages  /v1/users/<id>  /metrics",
        f"  notifier      {host}:{settings.notifier_port}/v1/reports/recall  /metrics",
        f"  mail received {paths.mail_dir.resolve()}/  (one .eml per message)",
        f"  sms/push/call/webhook requests  {paths.sink_log.resolve()}",
        f"  logs          {(paths.state_dir / 'logs').resolve()}/",
        f"  Kafka         {broker.bootstrap_servers}  topics {topics.events}, "
        f"{topics.transitions}, {topics.notifications}",
        f"  store         {store}",
        "Ctrl-C stops everything.",
    ]
    console.print("\n".join(lines), markup=False, highlight=False)
