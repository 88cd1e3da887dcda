"""`python -m notifier.devsink` and `python -m notifier.devsmtp` as the processes others run."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import orjson

from tests.waiting import eventually


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[str]:
    """Start the module on a free port; yield its first stdout line; SIGTERM it at the end."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        yield line.decode()
    finally:
        if process.returncode is None:
            process.terminate()
        exit_code = await asyncio.wait_for(process.wait(), timeout=30)
    assert exit_code == 0, f"{args[0]} exited with {exit_code}"


async def test_devsink_records_requests_fails_a_share_and_logs_jsonl(tmp_path: Path) -> None:
    log = tmp_path / "sink.jsonl"
    async with (
        running(
            "notifier.devsink", "--fail-share", "0.5", "--seed", "3", "--log", str(log)
        ) as banner,
        httpx.AsyncClient() as client,
    ):
        url = re.search(r"http://\S+", banner)
        assert url is not None, banner
        statuses = [
            (
                await client.post(
                    f"{url[0]}/sms", json={"n": n}, headers={"Idempotency-Key": f"k-{n}"}
                )
            ).status_code
            for n in range(40)
        ]
        recorded = (await client.get(f"{url[0]}/_requests")).json()
        mode = (await client.post(f"{url[0]}/_mode", json={"fail_share": 0})).json()
        after = await client.post(f"{url[0]}/sms", json={}, headers={"Idempotency-Key": "k-0"})

    assert set(statuses) == {200, 503}
    assert 8 <= statuses.count(503) <= 32
    assert [record["json"]["n"] for record in recorded] == list(range(40))
    assert [record["status"] for record in recorded] == statuses
    assert mode["fail_share"] == 0
    assert after.status_code == 200
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    assert [line["idempotency_key"] for line in lines] == [f"k-{n}" for n in range(40)] + ["k-0"]


async def test_devsmtp_stores_each_message_as_an_eml_file(tmp_path: Path) -> None:
    maildir = tmp_path / "mail"
    async with running("notifier.devsmtp", "--maildir", str(maildir)) as banner:
        port = re.search(r":(\d+),", banner)
        assert port is not None, banner
        message = EmailMessage()
        message["From"] = "a@example.com"
        message["To"] = "b@example.com"
        message["Subject"] = "hello"
        message.set_content("body text")
        await aiosmtplib.send(message, hostname="127.0.0.1", port=int(port[1]), timeout=10)

        async def stored() -> list[Path]:
            return list(maildir.glob("*.eml"))

        [path] = await eventually(stored, timeout_s=10, what="an .eml file in the maildir")
    assert b"Subject: hello" in path.read_bytes()
    assert b"body text" in path.read_bytes()
