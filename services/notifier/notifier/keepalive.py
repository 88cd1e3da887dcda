"""A lean HTTP/1.1 keep-alive transport for httpx, for the providers' many small POSTs.

httpcore's pool costs milliseconds of CPU per request at our concurrency (it
scans and polls every pooled connection on each request start and finish).
This transport keeps idle connections per host in a deque and speaks plain
HTTP/1.1 with Content-Length or chunked bodies; https:// goes to httpx's own
transport. Failures surface as httpx's exceptions (ConnectError, ReadTimeout,
RemoteProtocolError, ...), so callers classify them as they would with httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass

import httpx

_MAX_HEAD_BYTES = 64 * 1024


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    def __init__(self, *, max_connections: int) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, int], deque[_Connection]] = {}
        self._tls = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            return await self._tls.handle_async_request(request)
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        head = _request_head(request, len(body))
        async with self._slots:
            address = (request.url.host, request.url.port or 80)
            reused = self._take_idle(address)
            connection = reused or await _connect(address, timeouts.get("connect"), request)
            try:
                status, headers, content, keep = await _exchange(
                    connection, head + body, timeouts.get("read"), request
                )
            except (httpx.RemoteProtocolError, httpx.ReadError):
                if reused is None:
                    raise
                # The server closed an idle connection as we reused it: once more, fresh.
                # (Had it acted on the request, the repeat carries the same Idempotency-Key.)
                connection = await _connect(address, timeouts.get("connect"), request)
                status, headers, content, keep = await _exchange(
                    connection, head + body, timeouts.get("read"), request
                )
            if keep:
                self._idle.setdefault(address, deque()).append(connection)
            else:
                connection.close()
        return httpx.Response(
            status, headers=headers, content=content, extensions={"http_version": b"HTTP/1.1"}
        )

    def _take_idle(self, address: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        await self._tls.aclose()


def _request_head(request: httpx.Request, length: int) -> bytes:
    target = request.url.raw_path.decode("ascii")
    lines = [f"{request.method} {target} HTTP/1.1"]
    for name, value in request.headers.multi_items():
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _connect(
    address: tuple[str, int], timeout_s: float | None, request: httpx.Request
) -> _Connection:
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(*address, limit=_MAX_HEAD_BYTES)
    except TimeoutError:
        raise httpx.ConnectTimeout(f"connecting to {address} timed out", request=request) from None
    except OSError as exc:
        raise httpx.ConnectError(f"connecting to {address}: {exc}", request=request) from None
    return _Connection(reader, writer)


async def _exchange_raw(
    connection: _Connection, payload: bytes, timeout_s: float | None, request: httpx.Request
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """Send and read the answer; on any failure the connection is closed, never reused."""
    try:
        async with asyncio.timeout(timeout_s):
            connection.writer.write(payload)
            await connection.writer.drain()
            return await _read_response(connection.reader, request)
    except BaseException:
        connection.close()
        raise


async def _exchange(
    connection: _Connection, payload: bytes, timeout_s: float | None, request: httpx.Request
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """One request and its answer, failures as httpx's exceptions."""
    try:
        return await _exchange_raw(connection, payload, timeout_s, request)
    except TimeoutError:
        raise httpx.ReadTimeout("no complete answer in time", request=request) from None
    except asyncio.IncompleteReadError:
        raise httpx.RemoteProtocolError(
            "connection closed before a complete answer", request=request
        ) from None
    except (OSError, asyncio.LimitOverrunError, ValueError) as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from None


async def _read_response(
    reader: asyncio.StreamReader, request: httpx.Request
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise httpx.RemoteProtocolError(f"not an HTTP/1.x answer: {status_line!r}", request=request)
    headers = []
    for line in header_lines:
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    fields = {name.lower(): value for name, value in headers}
    keep = fields.get(b"connection", b"").lower() != b"close" and parts[0] == b"HTTP/1.1"
    if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
        content = await _read_chunked(reader)
        headers = [h for h in headers if h[0].lower() != b"transfer-encoding"]
    elif b"content-length" in fields:
        content = await reader.readexactly(int(fields[b"content-length"]))
    else:
        content, keep = await reader.read(), False  # body ends when the server closes
    return int(parts[1]), headers, content, keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
        if size == 0:
            with contextlib.suppress(asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n")  # end of the (ignored) trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)
