"""`make run`'s parts: what it starts with which settings, its local state, and its children."""

from __future__ import annotations

import os
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from simulator.settings import RunSettings
from simulator.stack.plan import StackPaths, plan_stack
from simulator.stack.processes import ChildSpec, StartError, Supervisor, group_alive, stop_leftovers
from simulator.stack.state import busy_ports, claim_next_run, dev_write_key

from tests.waiting import eventually

START = datetime(2025, 1, 6, tzinfo=UTC)


def specs(tmp_path: Path, database_url: str | None = None) -> dict[str, ChildSpec]:
    settings = RunSettings(
        ingest_port=18000,
        stage_engine_port=18001,
        notifier_port=18002,
        run_smtp_port=12525,
        run_sink_port=18025,
    )
    planned = plan_stack(
        settings,
        paths=StackPaths(tmp_path),
        python="/py",
        kafka_bootstrap="127.0.0.1:9092",
        write_key="dev-key",
        database_url=database_url,
    )
    return {spec.name: spec for spec in planned}


def test_each_stateful_service_gets_its_own_sqlite_file_and_event_clock(tmp_path: Path) -> None:
    planned = specs(tmp_path)
    assert list(planned) == ["dev-smtp", "dev-sink", "ingest", "stage-engine", "notifier"]
    engine, notifier = planned["stage-engine"].env, planned["notifier"].env
    assert engine["DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path.resolve()}/stage-engine.db"
    assert notifier["DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path.resolve()}/notifier.db"
    assert engine["STAGE_CLOCK"] == "event"
    assert notifier["NOTIFIER_CLOCK"] == "event"
    assert planned["ingest"].env["INGEST_WRITE_KEYS"] == "dev-key:simulator"
    assert planned["ingest"].env["INGEST_PORT"] == "18000"
    assert notifier["NOTIFIER_SMTP_PORT"] == "12525"
    assert notifier["NOTIFIER_SMS_URL"] == "http://127.0.0.1:18025/sms"
    assert planned["dev-smtp"].argv[1:3] == ("-m", "notifier.devsmtp")
    assert str(tmp_path / "mail") in planned["dev-smtp"].argv


def test_a_database_url_is_given_to_both_stateful_services(tmp_path: Path) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5433/lifecycle"
    planned = specs(tmp_path, database_url=url)
    assert planned["stage-engine"].env["DATABASE_URL"] == url
    assert planned["notifier"].env["DATABASE_URL"] == url


def test_each_run_continues_simulated_time_with_new_ids(tmp_path: Path) -> None:
    first = claim_next_run(tmp_path, default_start=START, days=30)
    second = claim_next_run(tmp_path, default_start=START, days=10)
    third = claim_next_run(tmp_path, default_start=START, days=10)
    assert (first.number, first.start, first.id_prefix) == (0, START, "")
    assert (second.number, second.start, second.id_prefix) == (1, START + timedelta(days=31), "r1-")
    assert third.start == second.start + timedelta(days=11)


def test_the_dev_write_key_is_created_once(tmp_path: Path) -> None:
    key = dev_write_key(tmp_path)
    assert key.startswith("dev-")
    assert dev_write_key(tmp_path) == key


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert busy_ports({"INGEST_PORT": port}) == [f"{port} (INGEST_PORT)"]


def _spec(name: str, code: str, tmp_path: Path) -> ChildSpec:
    async def ready() -> bool:
        return (tmp_path / f"{name}.ready").exists()

    return ChildSpec(
        name=name, argv=(sys.executable, "-c", code), env={}, ready=ready, stop_order=0
    )


SPAWNS_A_GRANDCHILD = """
import pathlib, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
pathlib.Path("{dir}/grandchild.pid").write_text(str(child.pid))
pathlib.Path("{dir}/parent.ready").write_text("")
time.sleep(120)
"""

IGNORES_SIGTERM = """
import pathlib, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path("{dir}/stubborn.ready").write_text("")
time.sleep(120)
"""


async def test_stopping_leaves_no_process_behind(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, stop_timeout_s=0.5)
    try:
        parent = await supervisor.start(
            _spec("parent", SPAWNS_A_GRANDCHILD.format(dir=tmp_path), tmp_path)
        )
        stubborn = await supervisor.start(
            _spec("stubborn", IGNORES_SIGTERM.format(dir=tmp_path), tmp_path)
        )
        await supervisor.wait_ready(parent, timeout_s=20)
        await supervisor.wait_ready(stubborn, timeout_s=20)
        grandchild = int((tmp_path / "grandchild.pid").read_text())
        assert os.getpgid(grandchild) == parent.pid  # in the child's own group
        assert os.getpgid(parent.pid) != os.getpgid(0)  # not in ours: Ctrl-C reaches us only
    finally:
        await supervisor.stop_all()
    assert parent.process.returncode is not None
    assert stubborn.process.returncode == -9  # SIGTERM ignored: killed after the deadline
    await eventually(
        lambda: _async(not group_alive(parent.pid)), timeout_s=5, what="grandchild gone"
    )


async def _async(value: bool) -> bool:
    return value


async def test_a_child_that_dies_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, stop_timeout_s=1)
    child = await supervisor.start(
        _spec("broken", "import sys; print('no such setting FOO'); sys.exit(3)", tmp_path)
    )
    with pytest.raises(StartError, match=r"(?s)broken exited with code 3.*no such setting FOO"):
        await supervisor.wait_ready(child, timeout_s=20)
    await supervisor.stop_all()


async def test_a_later_run_stops_what_a_killed_run_left_behind(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, stop_timeout_s=1)
    code = (
        "import pathlib, time; pathlib.Path('{dir}/orphan.ready').write_text(''); time.sleep(120)"
    )
    child = await supervisor.start(_spec("orphan", code.format(dir=tmp_path), tmp_path))
    await supervisor.wait_ready(child, timeout_s=20)
    # As if `make run` had been killed with -9: the record remains, nobody stopped the child.
    assert stop_leftovers(tmp_path) == [f"orphan (pid {child.pid})"]
    await child.process.wait()
    assert stop_leftovers(tmp_path) == []
