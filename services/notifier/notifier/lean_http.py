"""A lean HTTP/1.1 keep-alive client for the providers' many small JSON POSTs.

httpx builds a Request, a URL, cookie jars and a Response per call, and its
streams wrap every read: at a thousand sends a second that was about a third of
the notifier's CPU. This client keeps idle connections per host as asyncio
Protocols (no StreamReader), writes one buffer per request, parses the answer
as it arrives and fires one timer per request. https:// goes to httpx.

Failures surface as httpx's exceptions (ConnectError, ConnectTimeout,
ReadTimeout, RemoteProtocolError, ReadError), so callers classify them as they
would with httpx, and answers satisfy the small `Answer` shape callers read.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import orjson

_MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer: status, lower-cased headers, body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed; ValueError (orjson's) if it is not JSON."""
        return orjson.loads(self.content)


@dataclass(frozen=True, slots=True)
class _Target:
    address: tuple[str, int]
    head: bytes  # request line and Host header


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answered_bytes = 0  # bytes received for the current request
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, dict[str, str], bytes, bool]] | None = None

    # asyncio.Protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self.answered_bytes += len(data)
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = _parse(self._buffer, eof=False)
        except ValueError as exc:
            waiter.set_exception(httpx.RemoteProtocolError(str(exc)))
            return
        if parsed is not None:
            waiter.set_result(parsed)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            parsed = _parse(self._buffer, eof=True)
        except ValueError:
            parsed = None
        if parsed is not None:
            waiter.set_result(parsed)
        elif exc is not None:
            waiter.set_exception(httpx.ReadError(f"{type(exc).__name__}: {exc}"))
        else:
            waiter.set_exception(
                httpx.RemoteProtocolError("connection closed before a complete answer")
            )

    # the client's side
    def request(self, payload: bytes) -> asyncio.Future[tuple[int, dict[str, str], bytes, bool]]:
        assert self.transport is not None
        self._buffer.clear()
        self.answered_bytes = 0
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanHttpClient:
    """POST with keep-alive connections, at most `max_connections` at once."""

    def __init__(self, *, max_connections: int, timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._timeout_s = timeout_s
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: httpx.AsyncClient | None = None
        self._max_connections = max_connections

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> Answer:
        target = self._targets.get(url) or self._target(url)
        if target is None:
            return await self._post_tls(url, content=content, headers=headers)
        lines = [target.head]
        for name, value in headers.items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines.append(b"Content-Length: %d\r\n\r\n" % len(content))
        lines.append(content)
        payload = b"".join(lines)
        async with self._slots:
            return await self._exchange(target.address, payload)

    async def _exchange(self, address: tuple[str, int], payload: bytes) -> Answer:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        connection = self._take_idle(address)
        reused = connection is not None
        if connection is None:
            connection = await self._connect(address, deadline)
        try:
            answer = await _await_answer(connection, payload, deadline)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if not reused or connection.answered_bytes:
                raise
            # The server closed an idle connection as we reused it: once more, fresh.
            # (Had it acted on the request, the repeat carries the same Idempotency-Key.)
            connection = await self._connect(address, deadline)
            answer = await _await_answer(connection, payload, deadline)
        status, found, body, keep = answer
        if keep and not connection.closed:
            self._idle.setdefault(address, deque()).append(connection)
        else:
            connection.close()
        return Answer(status, found, body)

    def _target(self, url: str) -> _Target | None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            return None  # https (or anything unusual) goes through httpx
        port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        host = parts.netloc.rpartition("@")[2]
        target = _Target(
            address=(parts.hostname, port),
            head=f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1"),
        )
        self._targets[url] = target
        return target

    def _take_idle(self, address: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, address: tuple[str, int], deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(_Connection, *address)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {address} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"connecting to {address}: {exc}") from None
        return connection

    async def _post_tls(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> Answer:
        if self._tls is None:
            limits = httpx.Limits(max_connections=self._max_connections)
            self._tls = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(self._timeout_s))
        response = await self._tls.post(url, content=content, headers=headers)
        found = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status_code, found, response.content)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        if self._tls is not None:
            await self._tls.aclose()


async def _await_answer(
    connection: _Connection, payload: bytes, deadline: float
) -> tuple[int, dict[str, str], bytes, bool]:
    """One request and its answer; on any failure the connection is closed, never reused."""
    if connection.closed:
        raise httpx.ReadError("connection already closed")
    waiter = connection.request(payload)
    loop = asyncio.get_running_loop()
    # One timer per request (cheaper than asyncio.timeout's task bookkeeping).
    timer = loop.call_at(deadline, _expire, waiter)
    try:
        return await waiter
    except BaseException:
        connection.close()
        raise
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("no complete answer in time"))


def _parse(buffer: bytearray, *, eof: bool) -> tuple[int, dict[str, str], bytes, bool] | None:
    """(status, headers, body, keep-alive) once the answer is complete, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD_BYTES:
            raise ValueError("answer head too long")
        return None
    status_line, *header_lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP/1.x answer: {status_line!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
    start = end + 4
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(buffer, start)
        if body is None:
            return None
        del headers["transfer-encoding"]
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
    elif eof:
        body, keep = bytes(buffer[start:]), False  # the body ended when the server closed
    else:
        return None
    return int(parts[1]), headers, body, keep


def _dechunk(buffer: bytearray, start: int) -> bytes | None:
    chunks: list[bytes] = []
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buffer[at:line_end]).split(b";", 1)[0], 16)
        if size == 0:
            # The end of the (ignored) trailers.
            return b"".join(chunks) if buffer.find(b"\r\n", line_end + 2) >= 0 else None
        data_start = line_end + 2
        if len(buffer) < data_start + size + 2:
            return None
        chunks.append(bytes(buffer[data_start : data_start + size]))
        at = data_start + size + 2
