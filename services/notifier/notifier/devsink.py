"""A development HTTP provider that records every request (SMS, push, call, webhook).

    python -m notifier.devsink --host 127.0.0.1 --port 8025 --delay-ms 50 \
        --fail-share 0.0 --timeout-share 0.0 --log .local/sink.jsonl

It behaves like a provider that honours `Idempotency-Key`: the first request
with a key is *delivered*; later ones with the same key are answered with the
same id and recorded as replays, not delivered again. Modes:
- `--fail-share S`: that share of requests answers 503 and delivers nothing;
- `--timeout-share S`: that share is delivered but answered only after
  `--hang-ms` (past any client timeout): the ambiguous outcome a retry must survive;
- a path ending in `/status/<code>` (e.g. `/sms/status/422`) always answers `<code>`.
Control: `GET /_requests` (all records), `GET /_stats`, `POST /_mode` (JSON with
delay_ms / fail_share / timeout_share), `DELETE /_requests`.

A small asyncio HTTP/1.1 server (keep-alive, Content-Length bodies, no chunked),
not a framework, so the sink stays far faster than the notifier it measures: each
connection is an asyncio Protocol and a delayed answer is a timer, not a task.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import random
import signal
import sys
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import orjson
import uvloop

from notifier.devsink_wire import SinkConnection


class DevSink:
    """Start/stop on the running event loop; port 0 picks a free port."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        delay_ms: int = 0,
        fail_share: float = 0.0,
        timeout_share: float = 0.0,
        hang_ms: int = 30_000,
        log_path: Path | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.delay_ms = delay_ms
        self.fail_share = fail_share
        self.timeout_share = timeout_share
        self.hang_ms = hang_ms
        self.requests: list[dict[str, Any]] = []
        self._delivered: dict[str, str] = {}  # idempotency key → message id
        self._random = random.Random(seed)
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._server: asyncio.Server | None = None
        self.connections: set[SinkConnection] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def delivered(self) -> list[dict[str, Any]]:
        """Requests that a real provider would have acted on (one per idempotency key)."""
        return [record for record in self.requests if record["delivered"]]

    async def start(self) -> None:
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("ab")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SinkConnection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for connection in list(self.connections):
                connection.abort()
            await self._server.wait_closed()
            self._server = None
        if self._log is not None:
            self._log.close()
            self._log = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]:
        """The status, the JSON answer and how many seconds to hold it back."""
        if path.startswith("/_"):
            return (*self._control(method, path.split("?", 1)[0], body), 0.0)
        record = self._record(method, path, headers, body)
        status = _forced_status(path)
        draw = self._random.random()
        if status is not None:
            record.update(status=status, mode="forced")
        elif draw < self.fail_share:
            record.update(status=503, mode="fail")
        else:
            self._deliver(record)
            timed_out = draw < self.fail_share + self.timeout_share
            record.update(status=504 if timed_out else 200, mode="timeout" if timed_out else "ok")
        self._write_log(record)
        # A timeout is held past the client's timeout, by design; anything else gets the
        # provider's simulated latency.
        delay_s = (self.hang_ms if record["mode"] == "timeout" else self.delay_ms) / 1000
        if record["status"] == 200:
            replay = not record["delivered"]
            answer = {"id": record["message_id"], "status": "duplicate" if replay else "queued"}
            return 200, answer, delay_s
        return record["status"], {"error": HTTPStatus(record["status"]).phrase}, delay_s

    def _record(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        text = body.decode("utf-8", errors="replace")
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        record: dict[str, Any] = {
            "seq": len(self.requests) + 1,
            "received_at": datetime.now(UTC).isoformat(),
            "method": method,
            "path": path,
            "headers": headers,
            "idempotency_key": headers.get("idempotency-key"),
            "body": text,
            "json": parsed,
            "status": None,
            "mode": None,
            "delivered": False,
            "message_id": None,
        }
        self.requests.append(record)
        return record

    def _deliver(self, record: dict[str, Any]) -> None:
        key = record["idempotency_key"]
        if key is not None and key in self._delivered:
            record["message_id"] = self._delivered[key]  # a replay: same answer, no second send
            return
        seed = key if key is not None else f"seq-{record['seq']}"
        record["message_id"] = "msg-" + hashlib.sha256(seed.encode()).hexdigest()[:20]
        record["delivered"] = True
        if key is not None:
            self._delivered[key] = record["message_id"]

    def _write_log(self, record: dict[str, Any]) -> None:
        if self._log is not None:
            # One flushed line per request: a reader (or a crash) sees whole lines only.
            self._log.write(orjson.dumps(record) + b"\n")
            self._log.flush()

    def _control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if (method, path) == ("GET", "/_requests"):
            return 200, self.requests
        if (method, path) == ("DELETE", "/_requests"):
            self.requests.clear()
            self._delivered.clear()
            return 200, {"cleared": True}
        if (method, path) == ("GET", "/_stats"):
            delivered = self.delivered()
            return 200, {"requests": len(self.requests), "delivered": len(delivered)}
        if (method, path) == ("POST", "/_mode"):
            return self._set_mode(body)
        if (method, path) == ("GET", "/_healthz"):
            return 200, {"ok": True}
        return 404, {"error": f"no control endpoint {method} {path}"}

    def _set_mode(self, body: bytes) -> tuple[int, Any]:
        try:
            mode = orjson.loads(body)
            self.delay_ms = int(mode.get("delay_ms", self.delay_ms))
            self.fail_share = float(mode.get("fail_share", self.fail_share))
            self.timeout_share = float(mode.get("timeout_share", self.timeout_share))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            return 400, {"error": f"bad mode: {exc}"}
        return 200, self.mode()

    def mode(self) -> dict[str, Any]:
        return {
            "delay_ms": self.delay_ms,
            "fail_share": self.fail_share,
            "timeout_share": self.timeout_share,
        }


def _forced_status(path: str) -> int | None:
    parts = path.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "status" and parts[-1].isdigit():
        code = int(parts[-1])
        return code if 100 <= code <= 599 else None
    return None


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sink = DevSink(
        host=args.host,
        port=args.port,
        delay_ms=args.delay_ms,
        fail_share=args.fail_share,
        timeout_share=args.timeout_share,
        hang_ms=args.hang_ms,
        log_path=args.log,
        seed=args.seed,
    )
    async with sink:
        sys.stdout.write(f"devsink listening on {sink.url} {orjson.dumps(sink.mode()).decode()}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m notifier.devsink", description=__doc__.split("\n\n", 1)[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=int, default=0, help="answer after this latency")
    parser.add_argument("--fail-share", type=float, default=0.0, help="share answered 503")
    parser.add_argument("--timeout-share", type=float, default=0.0, help="share never answered")
    parser.add_argument("--hang-ms", type=int, default=30_000, help="how long 'never' lasts")
    parser.add_argument("--log", type=Path, default=None, help="append each request as JSONL")
    parser.add_argument("--seed", type=int, default=None, help="repeatable fail/timeout draws")
    args = parser.parse_args(argv)
    for name in ("fail_share", "timeout_share"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            parser.error(f"--{name.replace('_', '-')} must be within 0..1")
    if args.fail_share + args.timeout_share > 1.0:
        parser.error("--fail-share + --timeout-share must not exceed 1")
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve(args))


if __name__ == "__main__":
    main()
