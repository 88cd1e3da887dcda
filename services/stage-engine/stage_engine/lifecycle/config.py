"""The lifecycle rules' configuration (`LIFECYCLE_CONFIG`, YAML), validated by pydantic.

Every field has a default, so the model works with no file. A bad file fails at
start-up with a ConfigError naming the bad key and value, never at the first event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import LifecycleError
from stage_engine.lifecycle.rfm import DEFAULT_RFM_EDGES, RfmEdges

DEFAULT_CONTACT_TRAITS = (
    "email",
    "phone",
    "name",
    "first_name",
    "last_name",
    "timezone",
    "unsubscribed",
    "email_opt_out",
    "sms_opt_out",
    "push_opt_out",
    "push_token",
    "locale",
)


class Spans(NamedTuple):
    """The configured day counts as timedeltas. The timer rules add them to a moment
    several times per fired timer, and `days * timedelta(days=1)` costs 0.35 µs each
    time (about a tenth of expire())."""

    onboarding: timedelta
    silent_after: timedelta
    churn_after: timedelta
    # (days, as a timedelta) of each milestone, in increasing order
    milestones: tuple[tuple[int, timedelta], ...]
    negative_feedback_window: timedelta


class ConfigError(LifecycleError):
    """The lifecycle configuration is unreadable or invalid; the message names the key."""


EventNames = tuple[str, ...]


class LifecycleConfig(BaseModel):
    """Stage thresholds, event mapping, value thresholds and risk windows."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Stages (ARCHITECTURE.md §1).
    onboarding_days: int = Field(default=7, ge=0, le=3650)
    silent_after_days: int = Field(default=7, ge=1, le=3650)
    churn_after_days: int = Field(default=30, ge=1, le=3650)
    # Event mapping (names from Segment's spec; e-commerce spec for orders).
    signup_events: EventNames = ("Signed Up",)
    purchase_events: EventNames = ("Order Completed",)
    purchase_value_properties: EventNames = Field(default=("revenue", "total"), min_length=1)
    activity_excluded_events: EventNames = ()
    negative_feedback_events: EventNames = ("Complaint Filed", "Negative Review")
    # Inactivity milestones, days since last activity, each once per inactivity episode.
    milestone_days: tuple[int, ...] = (3, 7, 14, 30, 60)
    # Value dimension.
    repeat_order_count: int = Field(default=2, ge=2)
    loyal_order_count: int = Field(default=5, ge=3)
    rfm_edges: RfmEdges = DEFAULT_RFM_EDGES
    # Risk flags.
    activity_window_days: int = Field(default=28, ge=1, le=366)
    activity_drop_ratio: float = Field(default=0.5, gt=0.0, lt=1.0)
    activity_drop_min_baseline: int = Field(default=4, ge=1)
    order_value_drop_ratio: float = Field(default=0.5, gt=0.0, lt=1.0)
    negative_feedback_window_days: int = Field(default=30, ge=1, le=3650)
    # Contact traits copied from identify traits into the profile snapshot.
    contact_traits: EventNames = DEFAULT_CONTACT_TRAITS
    max_trait_chars: int = Field(default=256, ge=1, le=10_000)

    @model_validator(mode="after")
    def _check_relations(self) -> LifecycleConfig:
        if self.churn_after_days <= self.silent_after_days:
            raise ValueError(
                f"churn_after_days={self.churn_after_days} must be greater than "
                f"silent_after_days={self.silent_after_days}"
            )
        if self.loyal_order_count <= self.repeat_order_count:
            raise ValueError(
                f"loyal_order_count={self.loyal_order_count} must be greater than "
                f"repeat_order_count={self.repeat_order_count}"
            )
        days = self.milestone_days
        if any(day < 1 for day in days) or list(days) != sorted(set(days)):
            raise ValueError(
                f"milestone_days={list(days)} must be positive whole days in increasing order"
            )
        return self

    @cached_property
    def spans(self) -> Spans:
        day = timedelta(days=1)
        return Spans(
            onboarding=self.onboarding_days * day,
            silent_after=self.silent_after_days * day,
            churn_after=self.churn_after_days * day,
            milestones=tuple((days, days * day) for days in self.milestone_days),
            negative_feedback_window=self.negative_feedback_window_days * day,
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A validated copy. pydantic's own copies the instance dict, with `spans` cached
        from the old values, and does not validate `update`."""
        del deep  # every field is immutable (numbers, tuples, frozen models): nothing to deepen
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return self.model_validate({**fields, **(update or {})})


def load_lifecycle_config(path: Path | None) -> LifecycleConfig:
    """Read and validate the YAML file at `path`; None gives the defaults."""
    if path is None:
        return LifecycleConfig()
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"LIFECYCLE_CONFIG={str(path)!r}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"LIFECYCLE_CONFIG={str(path)!r}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"LIFECYCLE_CONFIG={str(path)!r}: expected a mapping of settings, "
            f"got {type(raw).__name__}"
        )
    return parse_lifecycle_config(raw, source=str(path))


def parse_lifecycle_config(
    raw: dict[str, Any], source: str = "lifecycle config"
) -> LifecycleConfig:
    """Validate an already-parsed mapping, naming each bad key and value on failure."""
    try:
        return LifecycleConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"])
            if key:
                problems.append(f"{key}={err.get('input')!r}: {err['msg']}")
            else:  # a rule across keys: its message names the keys and values
                problems.append(err["msg"].removeprefix("Value error, "))
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None
