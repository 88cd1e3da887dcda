"""Coupon codes: 60 random bits as 12 Crockford base32 characters, plus a check character.

`secrets` makes codes unguessable (2**60 possibilities per code); the check
character (Luhn mod 32) catches a mistyped character or two swapped
neighbours before a lookup. Persisting the coupon (unique code, user,
transition) is the runtime's job: a code is "issued" only once it is in the
coupons ledger.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from notifier.channels.base import ChannelResult, Delivery, PermanentChannelError
from notifier.channels.params import CouponParams
from shared.clock import Clock, SystemClock
from shared.notifications import Coupon

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_RANDOM_CHARS = 12
_BITS_PER_CHAR = 5
_GROUPS = (4, 4, 5)  # shown as XXXX-XXXX-XXXXC: the last group ends with the check character
_READ_AS = {"O": "0", "I": "1", "L": "1"}  # Crockford's decoding of look-alikes


def check_character(payload: str) -> str:
    """Luhn mod N over the alphabet: the character that makes the whole code check."""
    total = 0
    factor = 2
    for char in reversed(payload):
        addend = factor * ALPHABET.index(char)
        total += addend // len(ALPHABET) + addend % len(ALPHABET)
        factor = 1 if factor == 2 else 2
    return ALPHABET[(len(ALPHABET) - total % len(ALPHABET)) % len(ALPHABET)]


def normalise_code(code: str) -> str:
    """What a user typed → canonical characters: case, dashes, spaces, look-alikes forgiven."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    return "".join(_READ_AS.get(char, char) for char in cleaned)


def is_well_formed(code: str) -> bool:
    chars = normalise_code(code)
    if len(chars) != _RANDOM_CHARS + 1 or any(char not in ALPHABET for char in chars):
        return False
    return check_character(chars[:-1]) == chars[-1]


def new_code(rng_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    number = int.from_bytes(rng_bytes(8), "big") >> (64 - _RANDOM_CHARS * _BITS_PER_CHAR)
    payload = "".join(
        ALPHABET[(number >> (_BITS_PER_CHAR * position)) & 0b11111]
        for position in reversed(range(_RANDOM_CHARS))
    )
    chars = payload + check_character(payload)
    groups, start = [], 0
    for size in _GROUPS:
        groups.append(chars[start : start + size])
        start += size
    return "-".join(groups)


def new_coupon(
    params: Mapping[str, Any],
    user_id: str,
    transition_id: str,
    now: datetime,
    rng_bytes: Callable[[int], bytes] = secrets.token_bytes,
) -> Coupon:
    """A fresh coupon for this user and transition (which the caller stores with it)."""
    del user_id, transition_id  # the code is random on purpose: not derivable from who got it
    if now.tzinfo is None:
        raise ValueError(f"new_coupon needs an aware `now`, got {now!r}")
    spec = CouponParams.model_validate(dict(params))
    return Coupon(
        code=new_code(rng_bytes),
        amount=spec.amount,
        currency=spec.currency,
        expires_at=now + timedelta(days=spec.valid_days),
    )


class CouponChannel:
    """Generates the coupon; the runtime persists it in the coupons ledger before publishing."""

    name = "coupon"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    async def send(self, delivery: Delivery) -> ChannelResult:
        try:
            coupon = new_coupon(
                delivery.action.params,
                delivery.transition.data.user_id,
                delivery.transition.id,
                self._clock.now(),
            )
        except ValueError as exc:
            raise PermanentChannelError(f"coupon action has bad params: {exc}") from None
        return ChannelResult(coupon=coupon)

    async def aclose(self) -> None:
        return None
