"""Must show: `make run` headless drives users through every stage, notifications reach the
sinks, and Ctrl-C (SIGINT) stops every process it started.

`make run` runs as a child in its own process group on free ports, with the
test's own topics, consumer groups and state folder, on the embedded SQLite
default (DATABASE_URL removed), for a bounded time.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
from simulator.stack.processes import group_alive

from shared.topics import Topics
from tests.integration.simulator.processes import kill_group, spawn
from tests.ports import free_port
from tests.waiting import eventually

STAGES = ("prospect", "new", "active", "silent", "churned")
RUN_ARGS = "--headless --users 300 --days 40 --seconds-per-day 1.0 --duration-seconds 170"


async def _stages(url: str) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            response = await client.get(f"{url}/v1/stages")
    except httpx.HTTPError as exc:
        return {"error": str(exc)}
    return response.json() if response.status_code == 200 else {"status": response.status_code}


def _sink_requests(path: Path) -> list[dict[str, Any]]:
    try:
        return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


async def test_make_run_reaches_every_stage_reaches_the_sinks_and_leaves_nothing_behind(
    tmp_path: Path, live_kafka: str, topics: Topics
) -> None:
    state = tmp_path / "run"
    ports = {name: free_port() for name in ("ingest", "stage", "notifier", "smtp", "sink")}
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": live_kafka,
        "TOPIC_EVENTS": topics.events,
        "TOPIC_TRANSITIONS": topics.transitions,
        "TOPIC_NOTIFICATIONS": topics.notifications,
        "TOPIC_PARTITIONS": "3",
        "STAGE_ENGINE_GROUP": f"stage-{uuid.uuid4().hex[:8]}",
        "NOTIFIER_GROUP": f"notifier-{uuid.uuid4().hex[:8]}",
        "INGEST_PORT": str(ports["ingest"]),
        "STAGE_ENGINE_PORT": str(ports["stage"]),
        "NOTIFIER_PORT": str(ports["notifier"]),
        "RUN_SMTP_PORT": str(ports["smtp"]),
        "RUN_SINK_PORT": str(ports["sink"]),
        "RUN_STATE_DIR": str(state),
        "RUN_ARGS": RUN_ARGS,
    }
    output = tmp_path / "make-run.out"
    with output.open("wb") as out:
        make = spawn(["make", "--no-print-directory", "run"], env=env, output=out)
    stage_engine = f"http://127.0.0.1:{ports['stage']}"
    try:
        try:
            stages = await eventually(
                lambda: _stages(stage_engine),
                until=lambda body: all(body.get("stages", {}).get(s, 0) > 0 for s in STAGES),
                timeout_s=140,
                interval_s=1.0,
                what="users in every stage (GET /v1/stages)",
            )
        except AssertionError as exc:
            tail = output.read_text(errors="replace")[-2500:]
            raise AssertionError(f"{exc}\n--- make run output (tail) ---\n{tail}") from None
        mail = sorted((state / "mail").rglob("*.eml"))
        assert mail, "no email reached the dev SMTP sink"
        requests = _sink_requests(state / "sink-requests.jsonl")
        paths = {request.get("path") for request in requests}
        assert paths & {"/push", "/call"}, f"no push or call request reached the dev sink: {paths}"
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        make.wait(timeout=90)
    finally:
        if make.poll() is None:
            kill_group(make)
    text = output.read_text(errors="replace")
    assert "Lifecycle is running" in text, text[-3000:]
    assert "stopped 5 processes" in text, text[-3000:]
    started = orjson.loads((state / "processes.json").read_bytes())
    assert sorted(entry["name"] for entry in started) == sorted(
        ["dev-smtp", "dev-sink", "ingest", "stage-engine", "notifier"]
    )
    alive = [entry["name"] for entry in started if group_alive(entry["pgid"])]
    assert alive == [], f"still running after Ctrl-C: {alive}"
    assert not group_alive(make.pid)
    assert stages["total"] > 0
    assert "calls=" in text, "no headless progress line"
