"""No input stops the pipeline (issue 14): hostile Segment calls through the real services.

ingest, the stage engine and the notifier run as real processes on the real broker and
PostgreSQL. Hypothesis draws hostile but JSON-valid calls (tests/hostile_calls.py):
calendar edges, control characters, overflowing numbers, deep nesting, strings at and
past the size limits, wrong types. Every call must be answered 200 or 4xx, never 5xx;
every accepted call must be applied by the engine or sit on its dead-letter topic with
an error; no service may exit; and 50 ordinary users sent afterwards are all served.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from sqlalchemy import select
from stage_engine.store.tables import seen_messages

from shared.db import make_engine
from shared.kafka.dead_letter import HEADER_ERROR
from shared.topics import Topics, dead_letter_topic
from tests.hostile_calls import hostile_call, to_json
from tests.integration.simulator.processes import answers_ready, kill_group, spawn
from tests.integration.stage_engine.support import read_topic, settings_for, wait_until_drained
from tests.ports import free_port
from tests.waiting import eventually

WRITE_KEY = "wk_hostile"
CALLS = 300
BATCH = 4  # every other group of calls goes as one /v1/batch, the rest one by one
ORDINARY_USERS = 50


def _draw_calls() -> list[tuple[str, dict[str, Any]]]:
    drawn: list[tuple[str, dict[str, Any]]] = []

    @settings(
        max_examples=CALLS,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(hostile_call())
    def collect(call: tuple[str, dict[str, Any]]) -> None:
        drawn.append(call)

    collect()
    return drawn


async def test_hostile_calls_never_stop_the_pipeline(
    topics: Topics, kafka_bootstrap: str, fresh_database_url: str, tmp_path: Path
) -> None:
    ports = {name: free_port() for name in ("ingest", "engine", "notifier")}
    env = _env(topics, kafka_bootstrap, fresh_database_url, ports)
    async with contextlib.AsyncExitStack() as stack:
        services = {
            name: await stack.enter_async_context(_service(module, env, ports[name], tmp_path))
            for name, module in (
                ("engine", "stage_engine"),
                ("notifier", "notifier"),
                ("ingest", "ingest"),
            )
        }
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['ingest']}", auth=(WRITE_KEY, ""), timeout=30
        ) as ingest:
            accepted, statuses = await _send(ingest, _draw_calls())
            assert all(status < 500 for status in statuses), statuses
            assert 200 in statuses, set(statuses)
            assert any(400 <= s < 500 for s in statuses), set(statuses)

            engine_settings = settings_for(topics, kafka_bootstrap, fresh_database_url)
            await wait_until_drained(kafka_bootstrap, engine_settings, timeout_s=120)
            applied = await _seen_message_ids(fresh_database_url)
            letters = await read_topic(kafka_bootstrap, dead_letter_topic(topics.events))
            dead = {_message_id(letter.value) for letter in letters}
            assert all(dict(letter.headers).get(HEADER_ERROR) for letter in letters)
            assert accepted - applied - dead == set(), "accepted, then neither applied nor DLQ"

            await _send_ordinary_users(ingest)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['engine']}") as engine:
            await eventually(
                lambda: _served_users(engine),
                until=lambda n: n == ORDINARY_USERS,
                timeout_s=120,
                what="every ordinary user served by GET /v1/users/{id}",
            )
        for name, process in services.items():
            log = (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]
            assert process.poll() is None, f"{name} exited:\n{log}"
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"http://127.0.0.1:{ports[name]}/readyz")
            assert ready.status_code == 200, f"{name} not ready:\n{log}"


async def _send(
    ingest: httpx.AsyncClient, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[set[str], list[int]]:
    """Post the calls; the messageIds ingest accepted, and every status it answered."""
    accepted: set[str] = set()
    statuses: list[int] = []
    for start in range(0, len(calls), BATCH):
        group = calls[start : start + BATCH]
        if (start // BATCH) % 2 == 0:
            body = to_json({"batch": [call for _, call in group]})
            answer = await ingest.post("/v1/batch", content=body, headers=_JSON)
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                refused = {r["index"] for r in answer.json().get("rejected", [])}
                accepted |= {
                    str(call["messageId"]) for i, (_, call) in enumerate(group) if i not in refused
                }
            continue
        for call_type, call in group:
            single = {k: v for k, v in call.items() if k != "type"}
            answer = await ingest.post(f"/v1/{call_type}", content=to_json(single), headers=_JSON)
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                accepted.add(str(call["messageId"]))
    return accepted, statuses


_JSON = {"Content-Type": "application/json"}


async def _send_ordinary_users(ingest: httpx.AsyncClient) -> None:
    batch = []
    for n in range(ORDINARY_USERS):
        user = f"ordinary-{n}"
        batch.append({"type": "identify", "userId": user, "traits": {"email": f"{user}@x.io"}})
        batch.append({"type": "track", "userId": user, "event": "Viewed Product"})
    answer = await ingest.post("/v1/batch", json={"batch": batch})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 2 * ORDINARY_USERS


async def _served_users(engine: httpx.AsyncClient) -> int:
    answers = await asyncio.gather(
        *(engine.get(f"/v1/users/ordinary-{n}") for n in range(ORDINARY_USERS))
    )
    return sum(answer.status_code == 200 for answer in answers)


async def _seen_message_ids(database_url: str) -> set[str]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(seen_messages.c.message_id))
            return {row[0] for row in rows}
    finally:
        await engine.dispose()


def _message_id(value: bytes | None) -> str:
    try:
        document = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return ""
    return str(document.get("message_id", "")) if isinstance(document, dict) else ""


def _env(topics: Topics, kafka: str, database_url: str, ports: Mapping[str, int]) -> dict[str, str]:
    dead_end = f"http://127.0.0.1:{free_port()}"  # providers that do not answer
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STAGE_", "NOTIFIER_"))}
    return {
        **keep,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "DATABASE_URL": database_url,
        "TOPIC_EVENTS": topics.events,
        "TOPIC_TRANSITIONS": topics.transitions,
        "TOPIC_NOTIFICATIONS": topics.notifications,
        "TOPIC_PARTITIONS": "3",
        "HTTP_HOST": "127.0.0.1",
        "INGEST_PORT": str(ports["ingest"]),
        "INGEST_WRITE_KEYS": f"{WRITE_KEY}:hostile",
        "STAGE_ENGINE_PORT": str(ports["engine"]),
        "STAGE_ENGINE_GROUP": f"{topics.events}.engine",
        "STAGE_POLL_TIMEOUT_MS": "100",
        "STAGE_RFM_REFRESH_SECONDS": "0",
        "NOTIFIER_PORT": str(ports["notifier"]),
        "NOTIFIER_GROUP": f"{topics.transitions}.notifier",
        "NOTIFIER_SMTP_PORT": str(free_port()),
        "NOTIFIER_SMS_URL": f"{dead_end}/sms",
        "NOTIFIER_PUSH_URL": f"{dead_end}/push",
        "NOTIFIER_CALL_URL": f"{dead_end}/call",
        "NOTIFIER_WEBHOOK_URL": f"{dead_end}/webhook",
        "LOG_LEVEL": "WARNING",
    }


@contextlib.asynccontextmanager
async def _service(
    module: str, env: Mapping[str, str], port: int, tmp_path: Path
) -> AsyncIterator[Any]:
    """`python -m <module>` as a child; yields it once its /readyz answers 200."""
    log = (tmp_path / f"{_name(module)}.log").open("wb")
    process = spawn([sys.executable, "-m", module], env=env, output=log)
    try:
        await eventually(
            lambda: answers_ready(f"http://127.0.0.1:{port}/readyz"),
            timeout_s=90,
            interval_s=0.2,
            what=f"{module} ready",
        )
        yield process
    finally:
        kill_group(process)
        log.close()


def _name(module: str) -> str:
    return {"stage_engine": "engine"}.get(module, module)
