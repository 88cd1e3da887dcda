"""PURE: which actions answer a transition, and the send policies (holdout, caps, quiet hours).

No I/O but reading the playbook file at load, no clock reads (`now` is an
argument), no randomness: the same transition and playbook always plan the
same actions, so replays plan nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notifier import templates
from notifier.channels.params import PARAMS_BY_CHANNEL, ChannelName
from shared.errors import LifecycleError
from shared.transitions import PurchaseLevel, Stage, Transition, TransitionData, TransitionKind

DEFAULT_PLAYBOOK_PATH = Path(__file__).with_name("default_playbook.yaml")
_NAME_PATTERN = r"^[a-z][a-z0-9_]*$"  # rule and action names build the ledger key "rule/action"


class PlaybookError(LifecycleError):
    """The playbook is unusable; the message names the bad key and value, or the template."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionSpec(_Frozen):
    name: str = Field(pattern=_NAME_PATTERN, max_length=60)
    channel: ChannelName
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("params", mode="after")
    @classmethod
    def _params_fit_channel(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        channel = info.data.get("channel")
        if channel is None:
            return params  # the channel itself is bad; that error is reported
        try:
            validated = PARAMS_BY_CHANNEL[channel].model_validate(params)
        except ValidationError as exc:
            problems = "; ".join(_describe(err, params) for err in exc.errors())
            raise ValueError(f"bad {channel} params: {problems}") from None
        # The validated form (defaults filled in) is what channels and the ledger see.
        return validated.model_dump(mode="json")


def _as_tuple(value: Any) -> Any:
    """A condition may be one value or a list of values (any of them matches)."""
    if value is None or isinstance(value, list | tuple):
        return value
    return (value,)


class Match(_Frozen):
    """All conditions given must hold; a condition that lists values holds if any does.

    `purchase_level` and `flag` compare with the transition's own value when it
    carries one (a purchase-level change, a raised flag), else with the profile's
    current level / flags, so "silent loyal customers" is expressible too.
    """

    kind: tuple[TransitionKind, ...] | None = None
    from_stage: tuple[Stage, ...] | None = None
    to_stage: tuple[Stage, ...] | None = None
    milestone_days: tuple[int, ...] | None = None
    purchase_level: tuple[PurchaseLevel, ...] | None = None
    rfm_segment: tuple[str, ...] | None = None
    flag: tuple[str, ...] | None = None

    _listy = field_validator("*", mode="before")(_as_tuple)

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if all(value is None for value in self.model_dump().values()):
            raise ValueError(f"give at least one condition of {sorted(type(self).model_fields)}")
        return self

    def holds_for(self, data: TransitionData) -> bool:
        profile = data.profile
        level = data.purchase_level or profile.purchase_level
        flags = (data.flag,) if data.flag is not None else profile.risk_flags
        segment = profile.rfm.segment if profile.rfm is not None else None
        return (
            _among(data.kind, self.kind)
            and _among(data.from_stage, self.from_stage)
            and _among(data.to_stage, self.to_stage)
            and _among(data.milestone_days, self.milestone_days)
            and _among(level, self.purchase_level)
            and _among(segment, self.rfm_segment)
            and (self.flag is None or any(flag in self.flag for flag in flags))
        )


def _among(value: object, allowed: tuple[object, ...] | None) -> bool:
    return allowed is None or value in allowed


class Rule(_Frozen):
    name: str = Field(pattern=_NAME_PATTERN, max_length=60)
    match: Match
    actions: tuple[ActionSpec, ...]
    holdout_share: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _unique_actions(self) -> Self:
        if not self.actions:
            raise ValueError("a rule needs at least one action")
        names = [action.name for action in self.actions]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"action names must be unique within a rule, repeated: {duplicates}")
        return self


class CapsConfig(_Frozen):
    """Rolling windows (the last 24 h, the last 7 × 24 h) per user and channel."""

    per_day: int = Field(default=1, ge=0)
    per_week: int = Field(default=3, ge=0)
    exempt_channels: tuple[ChannelName, ...] = ("coupon", "call", "webhook")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name)") from exc


class QuietHours(_Frozen):
    """Local-time window in which messages wait; start > end means it crosses midnight."""

    start: time = time(21, 0)
    end: time = time(8, 0)
    default_timezone: str = "UTC"
    channels: tuple[ChannelName, ...] = ("email", "sms", "push", "call")

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value


class Playbook(_Frozen):
    rules: tuple[Rule, ...] = ()
    holdout_share: float = Field(default=0.10, ge=0.0, le=1.0)
    caps: CapsConfig = CapsConfig()
    quiet_hours: QuietHours = QuietHours()
    templates_dir: Path | None = Field(
        default=None, description="searched before the built-in templates; relative to the file"
    )

    @model_validator(mode="after")
    def _unique_rules(self) -> Self:
        names = [rule.name for rule in self.rules]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"rule names must be unique, repeated: {duplicates}")
        return self

    def share_for(self, rule: Rule) -> float:
        return self.holdout_share if rule.holdout_share is None else rule.holdout_share


def load_playbook(path: Path | None) -> Playbook:
    """Read, validate and test-render a playbook; None → the built-in default."""
    source = DEFAULT_PLAYBOOK_PATH if path is None else path
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlaybookError(f"cannot read playbook {str(source)!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"playbook {str(source)!r} is not valid YAML: {exc}") from None
    return parse_playbook(raw, origin=str(source), base_dir=source.parent)


def parse_playbook(
    raw: object, *, origin: str = "<playbook>", base_dir: Path | None = None
) -> Playbook:
    """Validate a decoded playbook document; every problem is named in one PlaybookError."""
    if not isinstance(raw, dict):
        raise PlaybookError(f"{origin}: expected a mapping at the top, got {type(raw).__name__}")
    try:
        playbook = Playbook.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, raw) for err in exc.errors()]
        raise PlaybookError(f"{origin}: " + "; ".join(problems)) from None
    if playbook.templates_dir is not None and base_dir is not None:
        playbook = playbook.model_copy(update={"templates_dir": base_dir / playbook.templates_dir})
    try:
        templates.check_playbook_templates(playbook)
    except templates.TemplateError as exc:
        raise PlaybookError(f"{origin}: {exc}") from None
    return playbook


def _describe(err: Any, raw: Mapping[str, Any]) -> str:
    """`rules[2] (silent_wakeup).match.to_stage = 'silnt': Input should be ...`."""
    parts: list[str] = []
    node: Any = raw
    for part in err["loc"]:
        if isinstance(part, int):
            if not isinstance(node, list):
                continue  # a single value the model wrapped in a tuple: no index to show
            label = f"[{part}]"
            node = node[part] if part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                label += f" ({node['name']})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(part))
            node = node.get(part) if isinstance(node, dict) else None
    where = "".join(parts) or "(top)"
    shown = "" if err["type"] == "missing" else f" = {err.get('input')!r}"
    return f"{where}{shown}: {err['msg']}"


@dataclass(frozen=True)
class PlannedAction:
    rule: str
    action: str
    channel: str
    params: Mapping[str, Any]
    in_holdout: bool

    @property
    def ledger_key(self) -> str:
        return f"{self.rule}/{self.action}"


def plan(transition: Transition, playbook: Playbook) -> tuple[PlannedAction, ...]:
    """The actions of every matching rule, in playbook order, each marked held out or not."""
    planned: list[PlannedAction] = []
    for rule in playbook.rules:
        if not rule.match.holds_for(transition.data):
            continue
        held_out = in_holdout(transition.data.user_id, rule.name, playbook.share_for(rule))
        planned.extend(
            PlannedAction(
                rule=rule.name,
                action=action.name,
                channel=action.channel,
                params=dict(action.params),
                in_holdout=held_out,
            )
            for action in rule.actions
        )
    return tuple(planned)


def in_holdout(user_id: str, rule: str, share: float) -> bool:
    """Deterministic: the first 64 bits of sha256(rule, user) as a fraction of 2**64 < share.

    Salting with the rule keeps each rule's control group independent of the others'.
    """
    digest = hashlib.sha256(f"{rule}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def caps_allow(sent_at: Sequence[datetime], now: datetime, caps: CapsConfig, channel: str) -> bool:
    """May one more go to this user on this channel? `sent_at`: their earlier sends there."""
    if channel in caps.exempt_channels:
        return True
    last_day = sum(1 for moment in sent_at if now - timedelta(days=1) < moment <= now)
    last_week = sum(1 for moment in sent_at if now - timedelta(days=7) < moment <= now)
    return last_day < caps.per_day and last_week < caps.per_week


def quiet_hours_release(
    now: datetime, timezone: str | None, quiet: QuietHours, channel: str
) -> datetime | None:
    """None when the message may go now, else the (aware, UTC) end of the quiet window.

    An unknown user time zone falls back to the playbook's default zone rather than
    losing the message.
    """
    if now.tzinfo is None:
        raise ValueError(f"quiet_hours_release needs an aware `now`, got {now!r}")
    if channel not in quiet.channels or quiet.start == quiet.end:
        return None
    try:
        zone = _zone(timezone) if timezone else _zone(quiet.default_timezone)
    except ValueError:
        zone = _zone(quiet.default_timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        if not quiet.start <= clock < quiet.end:
            return None
        release_day = local.date()
    elif clock >= quiet.start:
        release_day = local.date() + timedelta(days=1)
    elif clock < quiet.end:
        release_day = local.date()
    else:
        return None
    release = datetime.combine(release_day, quiet.end, tzinfo=zone).astimezone(now.tzinfo)
    # A DST jump can put the wall-clock end before `now`; never release into the past.
    return max(release, now).astimezone(ZoneInfo("UTC"))
