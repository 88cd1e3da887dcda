"""Serve a service's FastAPI app with uvicorn (uvloop + httptools), on loopback by default."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, *, host: str, port: int, log_level: str = "info") -> None:
    """Run until SIGINT/SIGTERM; the app's lifespan starts and stops its workers."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,  # our JSON logging (shared.logs) stays in charge
        log_level=log_level.lower(),
        # No handler reads the client address: parsing X-Forwarded-* on every request
        # would be wasted CPU. A proxy in front logs the real client itself.
        proxy_headers=False,
        access_log=False,  # per-request logs would cost more than the request; /metrics counts them
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()
