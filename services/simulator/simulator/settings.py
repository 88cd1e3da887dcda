"""Settings of the `lifecycle` commands and of `make run`, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.settings import CommonSettings


class SimulatorSettings(CommonSettings):
    """Where the services are; command-line options override these."""

    lifecycle_write_key: SecretStr | None = None  # LIFECYCLE_WRITE_KEY
    ingest_url: str | None = None  # INGEST_URL; default http://HTTP_HOST:INGEST_PORT
    stage_engine_url: str | None = None
    notifier_url: str | None = None

    def service_url(self, service: str) -> str:
        explicit = {
            "ingest": self.ingest_url,
            "stage_engine": self.stage_engine_url,
            "notifier": self.notifier_url,
        }[service]
        if explicit:
            return explicit.rstrip("/")
        port = {
            "ingest": self.ingest_port,
            "stage_engine": self.stage_engine_port,
            "notifier": self.notifier_port,
        }[service]
        return f"http://{self.http_host}:{port}"


class RunSettings(SimulatorSettings):
    """`make run`: the sinks' ports and where local state lives (RUN_* variables)."""

    run_state_dir: Path = Path(".local/run")
    run_smtp_port: int = Field(default=2525, ge=1, le=65535)
    run_sink_port: int = Field(default=8025, ge=1, le=65535)
    run_ready_timeout_seconds: float = Field(default=120.0, gt=0)
    run_stop_timeout_seconds: float = Field(default=15.0, gt=0)
    # Defaults of `make run`'s options (RUN_ARGS overrides them).
    run_users: int = Field(default=2_000, ge=1)
    run_days: int = Field(default=60, ge=1)
    run_seed: int = 7
    run_seconds_per_day: float = Field(default=1.0, gt=0)
    run_max_lag_days: float = Field(default=1.0, ge=0)
    run_headless: bool = False
    run_duration_seconds: float | None = Field(default=None, gt=0)
    run_fresh: bool = False
    run_exit_when_done: bool = False
