"""Policy decisions for one planned action: holdout, consent, quiet hours, caps.

Pure (no I/O): the ledger hands in the user's suppressions and send history,
so these rules are tested by table alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifier.playbook import PlannedAction, Playbook, caps_allow, quiet_hours_release

# Channels that contact the person; consent governs these. A coupon is not a
# message and a webhook informs a downstream system, so opt-outs leave them be
# unless a suppression names them explicitly.
CONTACT_CHANNELS = frozenset({"email", "sms", "push", "call"})
ALL_CHANNELS = "*"

REASON_HOLDOUT = "holdout"
REASON_CONSENT = "consent"
REASON_CAP = "cap"
REASON_QUIET_HOURS = "quiet_hours"

_TRUTHY = {"true", "yes", "1", "y", "on"}


@dataclass(frozen=True, slots=True)
class Decision:
    """Skip with `skip_reason`, or send at `due_at` (deferred when after now)."""

    skip_reason: str | None
    due_at: datetime
    deferred: bool = False


def is_truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUTHY
    return bool(value)


def consent_allows(
    traits: Mapping[str, Any], suppressed_channels: Collection[str], channel: str
) -> bool:
    """False when the user opted out of `channel`, by trait or by POST /suppress."""
    if channel in suppressed_channels:
        return False
    if channel not in CONTACT_CHANNELS:
        return True
    if ALL_CHANNELS in suppressed_channels or is_truthy(traits.get("unsubscribed")):
        return False
    return not is_truthy(traits.get(f"{channel}_opt_out"))


def decide(
    action: PlannedAction,
    *,
    traits: Mapping[str, Any],
    suppressed_channels: Collection[str],
    sent_at: Sequence[datetime],
    now: datetime,
    playbook: Playbook,
) -> Decision:
    """Holdout first (the experiment arm does not depend on consent), then consent,
    then quiet hours (defer), then caps counted at the moment it would go out."""
    if action.in_holdout:
        return Decision(REASON_HOLDOUT, now)
    if not consent_allows(traits, suppressed_channels, action.channel):
        return Decision(REASON_CONSENT, now)
    timezone = traits.get("timezone")
    release = quiet_hours_release(
        now, timezone if isinstance(timezone, str) else None, playbook.quiet_hours, action.channel
    )
    due_at = release or now
    if not caps_allow(sent_at, due_at, playbook.caps, action.channel):
        return Decision(REASON_CAP, due_at)
    return Decision(None, due_at, deferred=release is not None)
