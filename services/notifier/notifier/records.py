"""Outbox rows: the outcome of every attempt and the dead letter of an abandoned action.

Both are written in the same transaction as the state change they report, and
published later by the relay, so a kill -9 loses none; ids are deterministic,
so a re-publication after a crash carries the same id and readers de-duplicate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from notifier.store.tables import DEAD_LETTER, OUTCOME
from shared.codec import encode
from shared.kafka.dead_letter import HEADER_ERROR, MAX_ERROR_BYTES
from shared.notifications import Coupon, NotificationOutcome, OutcomeResult, outcome_id

_DEAD_LETTER_NAMESPACE = uuid.UUID("5d0c6f7e-93a1-4c38-b7f2-0e4a9d1c2b33")


@dataclass(frozen=True, slots=True)
class ActionRef:
    """What identifies an action in outcomes and dead letters."""

    transition_id: str
    ledger_key: str
    user_id: str
    rule: str
    action: str
    channel: str


def outcome_row(
    ref: ActionRef,
    result: OutcomeResult,
    *,
    attempt: int,
    occurred_at: datetime,
    reason: str | None = None,
    coupon: Coupon | None = None,
    provider_message_id: str | None = None,
) -> dict[str, Any]:
    outcome = NotificationOutcome(
        id=outcome_id(ref.transition_id, ref.ledger_key, attempt, result),
        transition_id=ref.transition_id,
        user_id=ref.user_id,
        rule=ref.rule,
        action=ref.action,
        channel=ref.channel,
        result=result,
        reason=reason,
        attempt=attempt,
        coupon=coupon,
        provider_message_id=provider_message_id,
        occurred_at=occurred_at,
    )
    return {
        "record_id": outcome.id,
        "kind": OUTCOME,
        "record_key": ref.user_id.encode(),
        "record_value": encode(outcome),
        "headers": None,
    }


def dead_letter_row(
    ref: ActionRef,
    *,
    params: dict[str, Any],
    idempotency_key: str,
    attempts: int,
    error: str,
    transition_payload: bytes,
) -> dict[str, Any]:
    """Everything needed to inspect or re-drive the action by hand."""
    body = {
        "transition_id": ref.transition_id,
        "ledger_key": ref.ledger_key,
        "user_id": ref.user_id,
        "rule": ref.rule,
        "action": ref.action,
        "channel": ref.channel,
        "params": params,
        "idempotency_key": idempotency_key,
        "attempts": attempts,
        "error": error,
        "transition": orjson.Fragment(transition_payload),
    }
    record_id = uuid.uuid5(_DEAD_LETTER_NAMESPACE, f"{ref.transition_id}|{ref.ledger_key}")
    return {
        "record_id": str(record_id),
        "kind": DEAD_LETTER,
        "record_key": ref.user_id.encode(),
        "record_value": orjson.dumps(body),
        "headers": [[HEADER_ERROR, error[:MAX_ERROR_BYTES]]],
    }
