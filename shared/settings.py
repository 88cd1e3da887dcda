"""Settings common to every service, from environment variables.

Read once, in each service's entry point (`load_settings`), then passed down
as a frozen object: library code never reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db import DbTimeouts
from shared.errors import SettingsError


class CommonSettings(BaseSettings):
    """What every service needs: the broker, the store, topic names."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Secret: it carries the password. Never logged; unwrapped where the engine is built.
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///.local/lifecycle.db")
    topic_events: str = "lifecycle.events.v1"
    topic_transitions: str = "lifecycle.transitions.v1"
    topic_notifications: str = "lifecycle.notifications.v1"
    topic_partitions: int = Field(default=12, ge=1, le=10_000)
    # Durability of the topics the services create (shared/kafka/admin.py): 1/1 for one
    # local broker; 3/2 on a cluster.
    topic_replication_factor: int = Field(default=1, ge=1, le=7)
    topic_min_insync_replicas: int = Field(default=1, ge=1, le=7)
    lifecycle_config: Path | None = None
    playbook_config: Path | None = None
    log_level: str = "INFO"
    # Ports of the three services (ARCHITECTURE.md §7).
    ingest_port: int = Field(default=8000, ge=1, le=65535)
    stage_engine_port: int = Field(default=8001, ge=1, le=65535)
    notifier_port: int = Field(default=8002, ge=1, le=65535)
    http_host: str = "127.0.0.1"
    # PostgreSQL deadlines (shared.db.DbTimeouts): a statement the server runs longer is
    # cancelled, a connection not opened in time is an error; both count as the
    # database being unreachable, never as a hang.
    db_statement_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    db_connect_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)

    @property
    def db_timeouts(self) -> DbTimeouts:
        return DbTimeouts(
            statement_s=self.db_statement_timeout_seconds,
            connect_s=self.db_connect_timeout_seconds,
            pool_checkout_s=self.db_pool_timeout_seconds,
        )

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Self:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                f"TOPIC_MIN_INSYNC_REPLICAS={self.topic_min_insync_replicas} exceeds "
                f"TOPIC_REPLICATION_FACTOR={self.topic_replication_factor}: no write could "
                "ever be acknowledged"
            )
        return self


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT]) -> SettingsT:
    """Build `cls` from the environment, or fail naming each bad variable.

    The message names the variable and what is wrong with it, never its value: the
    value may be a password (DATABASE_URL carries one) and the message reaches logs.
    """
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            variable = "_".join(str(part) for part in err["loc"]).upper() or "settings"
            problems.append(f"{variable}: {err['msg']}")
        raise SettingsError("bad settings: " + "; ".join(problems)) from None
