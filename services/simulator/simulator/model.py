"""The simulated world: which Segment calls N users make, day by day, in simulated time.

No I/O and no clock reads: the caller says which day to plan and what users
received, so the same seed and the same inputs give the same calls (the unit
tests rely on it). Answers to messages draw from a generator seeded by the
message's id, so the order in which messages arrive does not change the rest
of the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from simulator.calls import Call
from simulator.population import PopulationShape, SimUser, draw_population

DAY = timedelta(days=1)
PAGES = ("Home", "Catalog", "Deals", "Search", "Product")
PRODUCTS = ("tea", "mug", "kettle", "cookies", "gift card")
COMPLAINTS = ("late delivery", "damaged item", "rude support")
# How likely one message brings a user back (times the user's responsiveness).
IdSource = Callable[[], str]  # returns the next message id
RESPONSE_CHANCE = {"coupon": 0.45, "call": 0.40, "email": 0.20, "sms": 0.18, "push": 0.12}


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a user received: a `sent` notification outcome."""

    notice_id: str
    user_id: str
    channel: str
    sent_at: datetime
    coupon_code: str | None = None


class World:
    def __init__(
        self, *, shape: PopulationShape, seed: int, start: datetime, id_prefix: str = ""
    ) -> None:
        if start.tzinfo is None:
            raise ValueError(f"the simulation start must be timezone-aware, got {start!r}")
        self.shape = shape
        self.start = start
        self._seed = seed
        self._prefix = id_prefix
        self._rng = random.Random(seed)
        self.users = draw_population(shape, rng=self._rng, start=start, id_prefix=id_prefix)
        self._by_user_id = {user.user_id: user for user in self.users}
        self._sequence = 0

    @property
    def end(self) -> datetime:
        return self.start + self.shape.days * DAY

    def plan_day(self, day: int) -> list[Call]:
        """Calls of day `day` (0-based), in time order; arrivals may plan a few hours beyond it."""
        day_start = self.start + day * DAY
        day_end = day_start + DAY
        calls: list[Call] = []
        for user in self.users:
            if user.arrives_at >= day_end:
                continue
            if user.engaged_from is None and user.arrives_at >= day_start:
                calls.extend(self._arrival(user))
                continue
            if user.signed_up_at is None:
                continue  # a prospect: visited on arrival, never signed up
            chance = user.session_chance(day_start, self.shape.natural_return_per_day)
            # Always draw, so one user's state does not shift the others' randomness.
            draw, offset_s = self._rng.random(), self._rng.uniform(0, 86_400)
            at = day_start + timedelta(seconds=offset_s)
            if draw < chance and at > user.signed_up_at + timedelta(hours=1):
                calls.extend(self._session(user, at, self._rng, self._next_id))
        calls.sort(key=lambda call: (call.at, call.message_id))
        return calls

    def respond(self, notice: Notice, now: datetime) -> list[Call]:
        """The calls a user makes in answer to `notice`, if they answer; none otherwise."""
        user = self._by_user_id.get(notice.user_id)
        if user is None or user.signed_up_at is None or notice.notice_id in user.answered:
            return []
        user.answered.add(notice.notice_id)
        rng = random.Random(f"{self._seed}|{notice.notice_id}")
        chance = RESPONSE_CHANCE.get(notice.channel, 0.0) * user.responsiveness
        if rng.random() >= chance:
            return []
        at = max(now, notice.sent_at) + timedelta(hours=rng.uniform(2, 60))
        user.engaged_from = at  # their activity decays again from the moment they came back
        user.engagement = max(0.4, user.engagement * 0.8)
        counter = iter(range(100))

        def answer_id() -> str:
            return f"{self._prefix}answer-{notice.notice_id}-{next(counter)}"

        boost = 0.35 if notice.coupon_code else 0.05
        return self._session(user, at, rng, answer_id, coupon=notice.coupon_code, boost=boost)

    def _next_id(self) -> str:
        self._sequence += 1
        return f"{self._prefix}sim{self._seed}-{self._sequence:09d}"

    def _arrival(self, user: SimUser) -> list[Call]:
        """Anonymous visits; then, for those who sign up, an identify and `Signed Up`."""
        calls: list[Call] = []
        at = user.arrives_at
        for _ in range(user.visits_before_signup):
            calls.append(self._view(user, at, self._rng, self._next_id, anonymous=True))
            calls.append(
                Call(
                    "track",
                    at + timedelta(minutes=2),
                    self._next_id(),
                    anonymous_id=user.anonymous_id,
                    event="Product Viewed",
                    properties={"product": self._rng.choice(PRODUCTS)},
                )
            )
            at += timedelta(hours=user.visit_gap_hours)
        if not user.signs_up:
            user.engaged_from = user.arrives_at  # marks the arrival as planned
            return calls
        signup_at = at
        calls.append(
            Call(
                "identify",
                signup_at,
                self._next_id(),
                user_id=user.user_id,
                anonymous_id=user.anonymous_id,
                traits=user.traits(),
            )
        )
        calls.append(
            Call(
                "track",
                signup_at + timedelta(seconds=5),
                self._next_id(),
                user_id=user.user_id,
                anonymous_id=user.anonymous_id,
                event="Signed Up",
                properties={"method": "email"},
            )
        )
        user.signed_up_at = signup_at
        user.engaged_from = signup_at
        return calls

    def _view(
        self, user: SimUser, at: datetime, rng: random.Random, next_id: IdSource, *, anonymous: bool
    ) -> Call:
        user_id = None if anonymous else user.user_id
        page = rng.choice(PAGES)
        if user.on_app:
            return Call(
                "screen",
                at,
                next_id(),
                user_id=user_id,
                anonymous_id=user.anonymous_id,
                name=page,
                context={"app": {"name": "shop"}},
            )
        return Call(
            "page",
            at,
            next_id(),
            user_id=user_id,
            anonymous_id=user.anonymous_id,
            name=page,
            properties={"path": f"/{page.lower()}"},
        )

    def _session(
        self,
        user: SimUser,
        at: datetime,
        rng: random.Random,
        next_id: IdSource,
        *,
        coupon: str | None = None,
        boost: float = 0.0,
    ) -> list[Call]:
        """One visit of a signed-up user: a view, products, maybe an order or a complaint."""
        calls = [self._view(user, at, rng, next_id, anonymous=False)]
        for _ in range(rng.randint(0, 2)):
            at += timedelta(minutes=rng.uniform(1, 6))
            product = rng.choice(PRODUCTS)
            calls.append(self._track(user, at, next_id, "Product Viewed", {"product": product}))
        if rng.random() < user.purchase_share + boost:
            at += timedelta(minutes=rng.uniform(1, 10))
            revenue = round(
                max(1.0, rng.gauss(user.mean_order_value, user.mean_order_value / 4)), 2
            )
            order = {"order_id": f"o-{next_id()}", "revenue": revenue, "currency": "CNY"}
            if coupon:
                order["coupon"] = coupon
            calls.append(self._track(user, at, next_id, "Order Completed", order))
        if rng.random() < user.complaint_share:
            at += timedelta(minutes=rng.uniform(1, 30))
            reason = rng.choice(COMPLAINTS)
            calls.append(self._track(user, at, next_id, "Complaint Filed", {"reason": reason}))
        return calls

    @staticmethod
    def _track(
        user: SimUser, at: datetime, next_id: IdSource, event: str, properties: dict[str, object]
    ) -> Call:
        return Call(
            "track", at, next_id(), user_id=user.user_id, event=event, properties=properties
        )
