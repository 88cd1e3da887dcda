"""The notifier's settings: environment variables, read once in the entry point."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from shared.settings import CommonSettings


class NotifierSettings(CommonSettings):
    """Names as in NOTIFIER_INTERFACE.md; every one has a default that works locally."""

    # Providers (dev sinks by default: `python -m notifier.devsmtp` / `notifier.devsink`).
    notifier_smtp_host: str = "127.0.0.1"
    notifier_smtp_port: int = Field(default=2525, ge=1, le=65535)
    notifier_smtp_tls: Literal["none", "starttls", "tls"] = "none"
    notifier_smtp_username: str | None = None
    notifier_smtp_password: SecretStr | None = None
    notifier_email_from: str = "Lifecycle <noreply@lifecycle.local>"
    notifier_sms_url: str = "http://127.0.0.1:8025/sms"
    notifier_push_url: str = "http://127.0.0.1:8025/push"
    notifier_call_url: str = "http://127.0.0.1:8025/call"
    notifier_webhook_url: str = "http://127.0.0.1:8025/webhook"
    notifier_webhook_secret: SecretStr = SecretStr("dev-webhook-secret")
    notifier_provider_timeout_ms: int = Field(default=5000, ge=10, le=120_000)

    # Execution: a fixed pool of senders working off the durable actions table.
    notifier_concurrency: int = Field(default=64, ge=1, le=4096)
    notifier_max_attempts: int = Field(default=6, ge=1, le=100)
    notifier_retry_base_ms: int = Field(default=1000, ge=1)
    notifier_retry_max_ms: int = Field(default=300_000, ge=1)
    # A claimed action is invisible to other senders for this long; a sender killed
    # mid-send leaves it to be claimed again (same idempotency key) once it lapses.
    notifier_lease_ms: int = Field(default=30_000, ge=100)
    notifier_poll_interval_ms: int = Field(default=250, ge=1, le=60_000)

    # Consumption of the transitions topic.
    notifier_group: str = "lifecycle-notifier"
    notifier_session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    notifier_clock: Literal["wall", "event"] = "wall"

    # Measurement.
    notifier_recall_window_days: int = Field(default=14, ge=1, le=365)

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> NotifierSettings:
        # A send is cut off before its lease lapses, so no two senders ever hold
        # the same action; that needs room for the provider timeout and a margin.
        if self.notifier_lease_ms < self.notifier_provider_timeout_ms + 500:
            raise ValueError(
                f"NOTIFIER_LEASE_MS={self.notifier_lease_ms} must exceed "
                f"NOTIFIER_PROVIDER_TIMEOUT_MS={self.notifier_provider_timeout_ms} by 500 ms"
            )
        if self.notifier_retry_max_ms < self.notifier_retry_base_ms:
            raise ValueError(
                f"NOTIFIER_RETRY_MAX_MS={self.notifier_retry_max_ms} is below "
                f"NOTIFIER_RETRY_BASE_MS={self.notifier_retry_base_ms}"
            )
        return self

    @property
    def provider_timeout_s(self) -> float:
        return self.notifier_provider_timeout_ms / 1000
