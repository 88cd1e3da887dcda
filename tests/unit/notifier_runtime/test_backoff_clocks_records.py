"""Backoff bounds, the event clock, deterministic ids, the recall arithmetic, settings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from notifier.backoff import Backoff
from notifier.clocks import EventClock, make_clock, observe
from notifier.ledger import idempotency_key
from notifier.recall import _row
from notifier.records import ActionRef, dead_letter_row, outcome_row
from notifier.settings import NotifierSettings

from shared.clock import ManualClock, SystemClock
from shared.codec import decode
from shared.errors import SettingsError
from shared.notifications import NotificationOutcome, OutcomeResult
from shared.settings import load_settings

T0 = datetime(2026, 1, 5, tzinfo=UTC)
REF = ActionRef("tr-1", "wakeup/email", "u-1", "wakeup", "email", "email")


@given(
    attempt=st.integers(min_value=1, max_value=200),
    base_ms=st.integers(min_value=1, max_value=10_000),
    extra_ms=st.integers(min_value=0, max_value=1_000_000),
    seed=st.integers(),
)
def test_backoff_grows_then_caps_and_keeps_half_its_step(
    attempt: int, base_ms: int, extra_ms: int, seed: int
) -> None:
    backoff = Backoff(base_ms=base_ms, max_ms=base_ms + extra_ms)
    step = min(backoff.max_ms, base_ms * 2 ** min(attempt - 1, 30))
    delay = backoff.delay_ms(attempt, random.Random(seed))
    assert step / 2 <= delay <= step


def test_backoff_honours_retry_after_up_to_the_cap() -> None:
    backoff = Backoff(base_ms=100, max_ms=10_000)
    assert backoff.delay_ms(1, random.Random(1), retry_after_ms=5_000) == 5_000
    assert backoff.delay_ms(1, random.Random(1), retry_after_ms=60_000) == 10_000
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        backoff.delay_ms(0, random.Random(1))


def test_event_clock_moves_only_forward_with_observed_transitions() -> None:
    clock = EventClock(T0)
    observe(clock, T0 + timedelta(days=2))
    observe(clock, T0 + timedelta(days=1))  # a late transition does not rewind
    assert clock.now() == T0 + timedelta(days=2)
    manual = ManualClock(T0)
    observe(manual, T0 + timedelta(days=9))  # only an event clock listens
    assert manual.now() == T0
    with pytest.raises(ValueError, match="aware"):
        EventClock(datetime(2026, 1, 5))  # noqa: DTZ001 - the naive value is the point


def test_make_clock() -> None:
    assert isinstance(make_clock("wall", newest_seen=None), SystemClock)
    assert make_clock("event", newest_seen=T0).now() == T0
    assert make_clock("event", newest_seen=None).now().year == 1970
    with pytest.raises(ValueError, match="NOTIFIER_CLOCK='lunar'"):
        make_clock("lunar", newest_seen=None)


def test_ids_are_deterministic_and_distinct() -> None:
    assert idempotency_key("tr-1", "a/b") == idempotency_key("tr-1", "a/b")
    assert idempotency_key("tr-1", "a/b") != idempotency_key("tr-1", "a/c")
    assert idempotency_key("tr-1", "a/b") != idempotency_key("tr-2", "a/b")
    ids = {
        outcome_row(REF, result, attempt=attempt, occurred_at=T0)["record_id"]
        for result in OutcomeResult
        for attempt in (1, 2, 3)
    }
    assert len(ids) == len(OutcomeResult) * 3
    again = outcome_row(REF, OutcomeResult.SENT, attempt=2, occurred_at=T0 + timedelta(hours=1))
    assert again["record_id"] in ids  # the same attempt result keeps its id on re-publication


def test_an_outcome_row_carries_the_contract() -> None:
    row = outcome_row(REF, OutcomeResult.SKIPPED, attempt=1, occurred_at=T0, reason="consent")
    outcome = decode(NotificationOutcome, row["record_value"])
    assert (outcome.rule, outcome.action, outcome.reason) == ("wakeup", "email", "consent")
    assert row["record_key"] == b"u-1"


def test_a_dead_letter_embeds_the_transition_for_re_driving() -> None:
    row = dead_letter_row(
        REF,
        params={"template": "x"},
        idempotency_key="k",
        attempts=6,
        error="gave up",
        transition_payload=b'{"id":"tr-1"}',
    )
    body = orjson.loads(row["record_value"])
    assert body["transition"] == {"id": "tr-1"}
    assert (body["attempts"], body["idempotency_key"]) == (6, "k")
    assert row["headers"] == [["lifecycle.error", "gave up"]]


def test_recall_rates_and_lift() -> None:
    row = _row("r", "email", {False: (100, 30), True: (20, 4)})
    assert (row.treated_rate, row.held_out_rate) == (0.3, 0.2)
    assert row.lift == pytest.approx(0.5)
    assert row.uplift_points == pytest.approx(0.1)
    no_control = _row("r", "email", {False: (10, 1)})
    assert (no_control.held_out, no_control.held_out_rate, no_control.lift) == (0, None, None)
    zero_control = _row("r", "email", {False: (10, 1), True: (10, 0)})
    assert zero_control.lift is None
    assert zero_control.uplift_points == pytest.approx(0.1)


def test_settings_names_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_CONCURRENCY", "12")
    monkeypatch.setenv("NOTIFIER_SMS_URL", "http://sms.example/send")
    monkeypatch.setenv("NOTIFIER_CLOCK", "event")
    settings = load_settings(NotifierSettings)
    assert settings.notifier_concurrency == 12
    assert settings.notifier_sms_url == "http://sms.example/send"
    assert settings.notifier_max_attempts == 6
    assert settings.notifier_group == "lifecycle-notifier"
    monkeypatch.setenv("NOTIFIER_LEASE_MS", "1000")
    with pytest.raises(SettingsError, match="NOTIFIER_LEASE_MS=1000 must exceed"):
        load_settings(NotifierSettings)
    monkeypatch.setenv("NOTIFIER_LEASE_MS", "30000")
    monkeypatch.setenv("NOTIFIER_CLOCK", "lunar")
    with pytest.raises(SettingsError, match="NOTIFIER_CLOCK: Input should be 'wall' or 'event'"):
        load_settings(NotifierSettings)
