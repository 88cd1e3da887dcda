"""The ingest app: wiring in one place. Nothing here runs at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ingest.broker import BrokerLink
from ingest.handlers import Ingest, Limits
from ingest.keys import WriteKeys
from ingest.metrics import IngestMetrics
from ingest.openapi import install_openapi
from ingest.publish import InFlight, Publisher
from ingest.rate_limit import RateLimiter
from ingest.routes import Endpoint, request_models, tracking_endpoints, tracking_router
from ingest.settings import IngestSettings
from shared.clock import Clock, SystemClock
from shared.http_ops import ops_router
from shared.kafka.ping import broker_answers
from shared.kafka.producer import ProducerTuning
from shared.metrics import new_registry
from shared.topics import Topics

_READINESS_TIMEOUT_S = 2.0


class IngestApp(FastAPI):
    """FastAPI, with the tracking routes dispatched before FastAPI's own stack.

    FastAPI's per-request layers (routing, dependency solving, telemetry and
    body-limit wrappers) cost more CPU than validating a 100-event batch. The
    tracking endpoints take a Request and return a Response, so they are called
    directly for POSTs to their paths; FastAPI still documents them (they are
    registered as routes too) and serves everything else (/metrics, /openapi.json...).
    """

    fast_routes: dict[str, Endpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.fast_routes.get(scope["path"])
            if endpoint is not None:
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: IngestSettings, *, clock: Clock | None = None) -> FastAPI:
    """Build the app; its lifespan connects the producer and creates the topics.

    Raises SettingsError when no write key is configured (a misconfiguration
    fails at start-up, not at the first request).
    """
    keys = WriteKeys.load(settings.ingest_write_keys, settings.ingest_write_keys_file)
    registry = new_registry()
    metrics = IngestMetrics(registry)
    topics = Topics.from_settings(settings)
    link = BrokerLink(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=topics.all(),
        partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
        min_insync_replicas=settings.topic_min_insync_replicas,
        connect_timeout_s=settings.ingest_kafka_connect_timeout_ms / 1000,
        max_backoff_s=settings.ingest_kafka_reconnect_max_backoff_ms / 1000,
        tuning=ProducerTuning(linger_ms=settings.ingest_linger_ms),
    )
    in_flight = InFlight(settings.ingest_max_in_flight_events)
    # Read at scrape time: setting a gauge takes a lock, twice per request.
    metrics.in_flight_events.set_function(lambda: in_flight.count)
    publisher = Publisher(
        link, topic=topics.events, timeout_s=settings.produce_timeout_s, in_flight=in_flight
    )
    metrics.broker_connected.set_function(lambda: float(publisher.connected))
    ingest = Ingest(
        keys=keys,
        limiter=RateLimiter(
            rate_per_s=settings.ingest_rate_limit_per_s, burst=settings.ingest_rate_burst
        ),
        publisher=publisher,
        metrics=metrics,
        limits=Limits(
            max_event_bytes=settings.ingest_max_event_bytes,
            max_body_bytes=settings.ingest_max_body_bytes,
            retry_after_s=settings.ingest_retry_after_s,
            bounds=settings.bounds,
        ),
        clock=clock or SystemClock(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await link.start()
        try:
            yield
        finally:
            await link.stop()

    async def kafka_answers() -> bool:
        return await broker_answers(
            settings.kafka_bootstrap_servers, timeout_s=_READINESS_TIMEOUT_S
        )

    async def producer_started() -> bool:
        return publisher.connected

    app = IngestApp(
        title="Lifecycle ingest",
        version="1.0.0",
        description="Segment-compatible HTTP tracking API; every accepted event goes to Kafka.",
        lifespan=lifespan,
    )
    app.fast_routes = tracking_endpoints(ingest)
    app.include_router(tracking_router(app.fast_routes))
    app.include_router(ops_router(registry, {"kafka": kafka_answers, "producer": producer_started}))
    install_openapi(app, request_models())
    return app
