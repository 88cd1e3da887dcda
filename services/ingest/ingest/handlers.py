"""What a tracking call does: check, read, authenticate, normalise, publish, answer.

Cheap refusals (content type, a bad Basic key, the rate limit, a too-large
Content-Length) come before the body is read; the body is parsed once, by
pydantic's JSON validation. 200 is answered only after Kafka acknowledged
every accepted event (see publish.py for what a crash at any point means).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ingest.body import check_content_type, read_body
from ingest.bounds import DEFAULT_BOUNDS, Bounds
from ingest.keys import WriteKey, WriteKeys, key_from_basic_auth
from ingest.metrics import REASON_OF_CODE, IngestMetrics, RejectReason
from ingest.models import SINGLE_REQUESTS, Rejection, SingleRequest
from ingest.normalise import Envelope, InvalidCallError
from ingest.parse import ParsedBatch, parse_batch, write_key_in
from ingest.publish import Publisher, PublishError
from ingest.rate_limit import RateLimiter, retry_after_header_s
from ingest.record import Record, to_record
from ingest.refusals import RefusedError, bad_request, field_of, reason_of, retry_later
from shared.clock import Clock
from shared.events import EventType

_SUCCESS = b'{"success":true}'
_JSON = "application/json"
# Built once: a Response holds no per-request state, so one instance answers every
# accepted single call (its headers are not rebuilt per request).
_SUCCESS_RESPONSE = Response(_SUCCESS, media_type=_JSON)


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int
    max_body_bytes: int
    retry_after_s: int
    bounds: Bounds = DEFAULT_BOUNDS


class Ingest:
    def __init__(
        self,
        *,
        keys: WriteKeys,
        limiter: RateLimiter,
        publisher: Publisher,
        metrics: IngestMetrics,
        limits: Limits,
        clock: Clock,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._limiter = limiter
        self._publisher = publisher
        self._metrics = metrics
        self._limits = limits
        self._clock = clock
        self._monotonic_s = monotonic_s
        self._single_adapters: dict[EventType, TypeAdapter[SingleRequest]] = {
            name: TypeAdapter(model) for name, model in SINGLE_REQUESTS.items()
        }

    async def single(self, request: Request, call_type: EventType, route: str) -> Response:
        started_s = time.perf_counter()
        try:
            response = await self._single(request, call_type)
        except RefusedError as refused:
            response = self._refusal(refused)
        self._observe(route, response.status_code, started_s)
        return response

    async def batch(self, request: Request, route: str) -> Response:
        started_s = time.perf_counter()
        try:
            response = await self._batch(request)
        except RefusedError as refused:
            response = self._refusal(refused)
        self._observe(route, response.status_code, started_s)
        return response

    async def _single(self, request: Request, call_type: EventType) -> Response:
        received_at = self._clock.now()
        check_content_type(request.headers.get("content-type"))
        header_key = self._authenticate_header(request)
        self._admit()
        body = await read_body(request, limit_bytes=self._limits.max_event_bytes, what="event")
        try:
            call = self._single_adapters[call_type].validate_json(body)
        except ValidationError as exc:
            if header_key is None:  # 401 comes before any word about the body
                self._authenticate_body(write_key_in(body))
            first = exc.errors(include_url=False)[0]
            raise bad_request(field_of(first), reason_of(first)) from None
        write_key = header_key or self._authenticate_body(call.write_key)
        try:
            envelope = Envelope(received_at, write_key.source, bounds=self._limits.bounds)
            key, value = to_record(call, call_type, envelope)
        except InvalidCallError as invalid:
            raise bad_request(invalid.field, invalid.reason) from None
        if len(value) > self._limits.max_event_bytes:
            raise RefusedError(413, "too_large", "body", self._event_too_large(len(value)))
        await self._publish([(key, value)])
        self._metrics.count_accepted(call_type)
        return _SUCCESS_RESPONSE

    async def _batch(self, request: Request) -> Response:
        received_at = self._clock.now()
        check_content_type(request.headers.get("content-type"))
        header_key = self._authenticate_header(request)
        self._admit()
        body = await read_body(request, limit_bytes=self._limits.max_body_bytes, what="batch")
        try:
            parsed = parse_batch(body)
        except RefusedError:
            if header_key is None:  # 401 comes before any word about the body
                self._authenticate_body(write_key_in(body))
            raise
        write_key = header_key or self._authenticate_body(parsed.write_key)
        self._metrics.batch_events.observe(parsed.size)
        envelope = Envelope(
            received_at, write_key.source, parsed.sent_at, parsed.context, self._limits.bounds
        )
        records, types, rejected, too_large = self._records(parsed, envelope)
        self._count_rejected(RejectReason.TOO_LARGE, too_large)
        self._count_rejected(RejectReason.INVALID, len(rejected) - too_large)
        if not records:
            all_too_large = too_large == len(rejected)
            status, code = (413, "too_large") if all_too_large else (400, "invalid_request")
            reason = "no call in the batch is valid"
            raise RefusedError(status, code, "batch", reason, rejected=rejected)
        await self._publish(records)
        for call_type, count in Counter(types).items():
            self._metrics.count_accepted(call_type, count)
        answer = {
            "success": True,
            "accepted": len(records),
            "rejected": [r.model_dump() for r in rejected],
        }
        return Response(orjson.dumps(answer), media_type=_JSON)

    def _records(
        self, parsed: ParsedBatch, envelope: Envelope
    ) -> tuple[list[Record], list[EventType], list[Rejection], int]:
        """Kafka records of the valid calls; a rejection per invalid one (by index)."""
        records: list[Record] = []
        types: list[EventType] = []
        rejected = list(parsed.rejected)
        too_large = 0
        for index, call in parsed.calls:
            try:
                key, value = to_record(call, call.type, envelope)
            except InvalidCallError as invalid:
                rejected.append(Rejection(index=index, field=invalid.field, reason=invalid.reason))
                continue
            if len(value) > self._limits.max_event_bytes:
                too_large += 1
                reason = self._event_too_large(len(value))
                rejected.append(Rejection(index=index, field="item", reason=reason))
                continue
            records.append((key, value))
            types.append(call.type)
        if parsed.rejected and len(rejected) > len(parsed.rejected):
            rejected.sort(key=lambda r: r.index or 0)
        return records, types, rejected, too_large

    def _authenticate_header(self, request: Request) -> WriteKey | None:
        """The key of a Basic Authorization header (rate-limited here); None without one."""
        authorization = request.headers.get("authorization")
        if authorization is None:
            return None
        candidate = key_from_basic_auth(authorization)
        return self._authenticate(candidate, "Authorization")

    def _authenticate_body(self, candidate: str | None) -> WriteKey:
        if candidate is None:
            raise RefusedError(
                401, "unauthorized", "writeKey", "no write key: send HTTP Basic auth or writeKey"
            )
        return self._authenticate(candidate, "writeKey")

    def _authenticate(self, candidate: str | None, field: str) -> WriteKey:
        write_key = None if candidate is None else self._keys.find(candidate)
        if write_key is None:
            raise RefusedError(401, "unauthorized", field, "unknown write key")
        wait_s = self._limiter.take(write_key.key, self._monotonic_s())
        if wait_s > 0:
            raise retry_later(
                "rate_limited",
                f"more requests than allowed for source {write_key.source!r}",
                retry_after_header_s(wait_s),
                status=429,
            )
        return write_key

    def _admit(self) -> None:
        """503 before reading the body when the broker is away or the in-flight bound is full:
        memory stays bounded by what is admitted, not by what clients send."""
        try:
            self._publisher.admit()
        except PublishError as exc:
            raise retry_later(exc.code, str(exc), self._limits.retry_after_s) from None

    async def _publish(self, records: list[Record]) -> None:
        started_s = time.perf_counter()
        try:
            await self._publisher.publish(records)
        except PublishError as exc:
            refused = retry_later(exc.code, str(exc), self._limits.retry_after_s)
            refused.events = len(records)
            raise refused from None
        self._metrics.produce_seconds.observe(time.perf_counter() - started_s)

    def _event_too_large(self, size_bytes: int) -> str:
        return f"the event is {size_bytes} bytes; the limit is {self._limits.max_event_bytes} bytes"

    def _refusal(self, refused: RefusedError) -> Response:
        reason = REASON_OF_CODE.get(refused.code)
        if reason is not None and not refused.rejected:  # item rejections were counted already
            self._count_rejected(reason, refused.events)
        return refused.response()

    def _count_rejected(self, reason: RejectReason, events: int) -> None:
        if events:
            self._metrics.events_rejected.labels(reason.value).inc(events)

    def _observe(self, route: str, status: int, started_s: float) -> None:
        self._metrics.observe_request(route, status, time.perf_counter() - started_s)
