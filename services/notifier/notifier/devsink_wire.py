"""The dev sink's HTTP/1.1 wire: one asyncio Protocol per connection, no task per request.

Requests on a connection are answered in order; an answer held back (the
simulated latency, or a "timeout" past the client's patience) is a timer.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any, Protocol, cast

import orjson

_MAX_HEAD_BYTES = 64 * 1024


class Answerer(Protocol):
    """What a connection asks of the sink: the answer to a request, and a registry."""

    connections: set[SinkConnection]

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]: ...


class SinkConnection(asyncio.Protocol):
    """One client connection: requests answered in order, each after its delay."""

    def __init__(self, sink: Answerer) -> None:
        self._sink = sink
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pending: asyncio.TimerHandle | None = None  # an answer being held back

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._sink.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        # The client went away (e.g. it timed out): nothing left to answer.
        del exc
        self._sink.connections.discard(self)
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._next()

    def abort(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        if self._transport is not None:
            self._transport.abort()

    def _next(self) -> None:
        """Answer the next complete request, unless an answer is still held back."""
        if self._pending is not None or self._transport is None:
            return
        try:
            request = parse_request(self._buffer)
        except ValueError:
            self._transport.close()  # e.g. a chunked body: not supported, hang up
            return
        if request is None:
            return
        method, path, headers, body = request
        status, answer, delay_s = self._sink.answer(method, path, headers, body)
        keep_alive = headers.get("connection", "").lower() != "close"
        response = response_bytes(status, answer, keep_alive=keep_alive)
        loop = asyncio.get_running_loop()
        if delay_s > 0:
            self._pending = loop.call_later(delay_s, self._reply, response, keep_alive)
        else:
            self._reply(response, keep_alive)

    def _reply(self, response: bytes, keep_alive: bool) -> None:
        self._pending = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(response)
        if keep_alive:
            self._next()
        else:
            transport.close()


def parse_request(buffer: bytearray) -> tuple[str, str, dict[str, str], bytes] | None:
    """Take one complete request off the front of `buffer`, or None if it is incomplete."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD_BYTES:
            raise ValueError("request head too long")
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        raise ValueError("chunked bodies are not supported: send Content-Length")
    start = end + 4
    length = int(headers.get("content-length", "0"))
    if len(buffer) < start + length:
        return None
    body = bytes(buffer[start : start + length])
    del buffer[: start + length]
    return method, path, headers, body


def response_bytes(status: int, answer: Any, *, keep_alive: bool) -> bytes:
    body = orjson.dumps(answer)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode("latin-1") + body
