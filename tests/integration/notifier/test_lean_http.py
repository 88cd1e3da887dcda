"""The providers' lean HTTP client against a real local server: keep-alive, bodies, failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from notifier.lean_http import LeanHttpClient


class Server:
    """A tiny HTTP/1.1 server whose answer depends on the path; counts connections."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.drop_connections()
        await self._server.wait_closed()

    def drop_connections(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *rest = head.decode().split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (h.partition(":") for h in rest if h)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                path = line.split()[1]
                self.requests.append((path, headers, body))
                if path == "/hang":
                    await asyncio.sleep(5)  # the client gives up first
                elif path == "/chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    )
                elif path == "/close":
                    writer.write(b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\nbusy")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    answer = b'{"id": "m-1"}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                        + answer
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server()
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def client() -> AsyncIterator[LeanHttpClient]:
    http = LeanHttpClient(max_connections=4, timeout_s=0.5)
    yield http
    await http.aclose()


async def test_sequential_requests_share_one_connection(
    server: Server, client: LeanHttpClient
) -> None:
    for n in range(20):
        answer = await client.post(
            f"http://127.0.0.1:{server.port}/sms",
            content=b'{"n":%d}' % n,
            headers={"Idempotency-Key": f"k-{n}"},
        )
        assert answer.status_code == 200
        assert answer.json() == {"id": "m-1"}
    assert server.connections == 1
    path, headers, body = server.requests[7]
    assert (path, headers["idempotency-key"], body) == ("/sms", "k-7", b'{"n":7}')
    assert headers["host"] == f"127.0.0.1:{server.port}"


async def test_concurrency_is_bounded_by_max_connections(
    server: Server, client: LeanHttpClient
) -> None:
    url = f"http://127.0.0.1:{server.port}/push"
    answers = await asyncio.gather(
        *(client.post(url, content=b"{}", headers={}) for _ in range(40))
    )
    assert {a.status_code for a in answers} == {200}
    assert server.connections <= 4


async def test_chunked_and_closing_answers(server: Server, client: LeanHttpClient) -> None:
    chunked = await client.post(f"http://127.0.0.1:{server.port}/chunked", content=b"x", headers={})
    assert chunked.text == "hello world"
    closing = await client.post(f"http://127.0.0.1:{server.port}/close", content=b"x", headers={})
    assert (closing.status_code, closing.text) == (503, "busy")
    again = await client.post(f"http://127.0.0.1:{server.port}/sms", content=b"x", headers={})
    assert again.status_code == 200
    assert server.connections == 2  # the closed one was not reused


async def test_a_connection_the_server_dropped_while_idle_is_replaced(
    server: Server, client: LeanHttpClient
) -> None:
    url = f"http://127.0.0.1:{server.port}/sms"
    assert (await client.post(url, content=b"1", headers={})).status_code == 200
    server.drop_connections()
    assert (await client.post(url, content=b"2", headers={})).status_code == 200
    assert server.connections == 2


async def test_failures_surface_as_httpx_errors(server: Server, client: LeanHttpClient) -> None:
    with pytest.raises(httpx.ReadTimeout):
        await client.post(f"http://127.0.0.1:{server.port}/hang", content=b"x", headers={})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{closed_port}/sms", content=b"x", headers={})
    # After a timeout the connection is discarded, the next request gets a fresh one.
    assert (
        await client.post(f"http://127.0.0.1:{server.port}/sms", content=b"x", headers={})
    ).status_code == 200


async def test_answer_headers_are_lower_cased_and_json_parses(
    server: Server, client: LeanHttpClient
) -> None:
    answer = await client.post(f"http://127.0.0.1:{server.port}/sms", content=b"x", headers={})
    assert answer.headers["content-type"] == "application/json"
    assert answer.text == '{"id": "m-1"}'
    closing = await client.post(f"http://127.0.0.1:{server.port}/close", content=b"x", headers={})
    with pytest.raises(ValueError, match="unexpected character"):
        closing.json()  # "busy" is not JSON: callers treat that as "no message id"
