"""POST JSON to a provider with an Idempotency-Key, and classify what went wrong.

Transient (retry with the same key): timeouts, connection errors, 5xx, 408, 429.
Permanent (never retry): every other 4xx, and redirects (a misconfigured URL).
A timeout is ambiguous: the provider may have acted. Retrying with the same
Idempotency-Key is what keeps that from becoming a second message.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import orjson
from pydantic import SecretStr

from notifier.channels.base import (
    Delivery,
    PermanentChannelError,
    TransientChannelError,
)
from notifier.templates import RenderedMessage, TemplateError, render, template_context

_RETRYABLE_4XX = frozenset({408, 425, 429})
_DETAIL_CHARS = 200  # enough of a provider's error body to say why, bounded for logs


class ProviderAnswer(Protocol):
    """What we read of an answer: httpx.Response and lean_http.Answer both fit."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


class PostClient(Protocol):
    async def post(
        self, url: str, *, content: bytes, headers: Mapping[str, str]
    ) -> ProviderAnswer: ...

    async def aclose(self) -> None: ...


class HttpClients:
    """Several small httpx pools used as one, each request on the least busy.

    httpcore 1.0's pool does O(connections²) bookkeeping per request: one client
    with 64 connections spends milliseconds of CPU per request and caps a busy
    notifier near a hundred sends a second. Pools of `per_client` connections
    keep that cost small.
    """

    def __init__(self, *, max_connections: int, timeout_s: float, per_client: int = 8) -> None:
        shards = max(1, -(-max_connections // per_client))
        size = -(-max_connections // shards)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        # One TLS context for all: loading the CA bundle costs ~0.1 s per context.
        tls = httpx.create_ssl_context()
        self._clients = [
            httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s), verify=tls)
            for _ in range(shards)
        ]
        self._in_flight = [0] * shards

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> httpx.Response:
        shard = min(range(len(self._clients)), key=self._in_flight.__getitem__)
        self._in_flight[shard] += 1
        try:
            return await self._clients[shard].post(url, content=content, headers=headers)
        finally:
            self._in_flight[shard] -= 1

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


class HttpProvider:
    """One provider endpoint; owns its HTTP client(s) unless they are passed in.

    A client passed in brings its own timeout; `timeout_s` sizes the one built here.
    """

    def __init__(
        self,
        *,
        url: str,
        timeout_s: float,
        api_key: SecretStr | None = None,
        client: PostClient | None = None,
        max_connections: int = 64,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"provider url must be http(s)://…, got {url!r}")
        self.url = url
        self._api_key = api_key
        self._owns_client = client is None
        self._client: PostClient = client or HttpClients(
            max_connections=max_connections, timeout_s=timeout_s
        )

    async def post_json(
        self,
        payload: Mapping[str, Any],
        *,
        idempotency_key: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> str | None:
        """Send; return the provider's message id (if it gave one) or raise a channel error."""
        body = orjson.dumps(payload)
        return await self.post_bytes(
            body, idempotency_key=idempotency_key, extra_headers=extra_headers
        )

    async def post_bytes(
        self,
        body: bytes,
        *,
        idempotency_key: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> str | None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        headers.update(extra_headers or {})
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientChannelError(
                f"POST {self.url} timed out ({type(exc).__name__}); outcome unknown, "
                "retry with the same Idempotency-Key"
            ) from None
        except httpx.TransportError as exc:
            raise TransientChannelError(
                f"POST {self.url} failed: {type(exc).__name__}: {exc}"
            ) from None
        return _classify(self.url, response)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _classify(url: str, response: ProviderAnswer) -> str | None:
    status = response.status_code
    if 200 <= status < 300:
        return _message_id(response)
    detail = response.text[:_DETAIL_CHARS]
    if status >= 500 or status in _RETRYABLE_4XX:
        raise TransientChannelError(
            f"POST {url} answered {status}: {detail}",
            retry_after_s=retry_after_s(response.headers.get("retry-after")),
        )
    raise PermanentChannelError(f"POST {url} answered {status}: {detail}")


def _message_id(response: ProviderAnswer) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    if isinstance(answer, dict):
        for key in ("id", "message_id", "messageId", "task_id"):
            if isinstance(answer.get(key), str | int):
                return str(answer[key])
    return None


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def render_for(delivery: Delivery, templates_dir: Path | None = None) -> RenderedMessage:
    """The action's template rendered for this delivery; a failure is permanent."""
    params = delivery.action.params
    try:
        return render(
            str(params["template"]),
            template_context(delivery.transition, params, delivery.coupon),
            templates_dir,
        )
    except (TemplateError, KeyError) as exc:
        raise PermanentChannelError(f"{delivery.action.ledger_key}: {exc}") from None


def common_fields(delivery: Delivery) -> dict[str, Any]:
    """What every provider request carries, so a receiver can trace and de-duplicate it."""
    return {
        "user_id": delivery.transition.data.user_id,
        "transition_id": delivery.transition.id,
        "rule": delivery.action.rule,
        "action": delivery.action.action,
        "idempotency_key": delivery.idempotency_key,
    }


def trait(delivery: Delivery, name: str) -> str | None:
    value = delivery.transition.data.profile.traits.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None
