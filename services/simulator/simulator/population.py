"""The simulated population: who arrives when, and how each user behaves.

Every user gets fixed propensities drawn once from the seeded generator, so a
seed names one population. Only `engaged_from` and `engagement` move during a
run: a user who answers a message re-engages, and their activity decays again
from then on.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

TIMEZONES = ("UTC", "Asia/Shanghai", "Europe/Paris", "America/New_York", "Asia/Tokyo")
FIRST_NAMES = ("Ana", "Bo", "Chen", "Dana", "Eli", "Fang", "Gus", "Hana", "Ivo", "Jun", "Kai")


@dataclass(frozen=True, slots=True)
class PopulationShape:
    """The knobs of the population, with defaults that make every stage show up."""

    users: int = 2_000
    days: int = 60
    prospect_share: float = 0.2  # never sign up: stay prospects
    present_at_start_share: float = 0.4  # already arriving on day 0
    arrivals_end_share: float = 0.95  # the rest arrive by this share of the period
    app_share: float = 0.4  # use the mobile app (screen calls) rather than the web (page calls)
    unsubscribed_share: float = 0.03  # opted out of messages: the notifier skips them
    natural_return_per_day: float = 0.012  # dormant users come back on their own this often


@dataclass(slots=True)
class SimUser:
    index: int
    user_id: str
    anonymous_id: str
    arrives_at: datetime
    signs_up: bool
    visits_before_signup: int
    visit_gap_hours: float
    base_sessions_per_day: float  # chance of a session on a day, right after engaging
    half_life_days: float  # that chance halves every this many days without a nudge
    purchase_share: float  # chance a session ends in an order
    mean_order_value: float
    complaint_share: float  # chance a session files a complaint
    responsiveness: float  # multiplies how strongly messages bring the user back
    timezone: str
    on_app: bool
    unsubscribed: bool
    first_name: str
    # Moving parts:
    signed_up_at: datetime | None = None
    engaged_from: datetime | None = None
    engagement: float = 1.0  # a re-engaged user starts below their first enthusiasm
    answered: set[str] = field(default_factory=set)  # notices already answered

    def session_chance(self, day_start: datetime, natural_return: float) -> float:
        """The chance of at least one session on the day starting at `day_start`."""
        if self.engaged_from is None or day_start < self.engaged_from - timedelta(days=1):
            return 0.0
        age_days = max(0.0, (day_start - self.engaged_from).total_seconds() / 86_400)
        halvings = age_days / self.half_life_days
        decayed = self.base_sessions_per_day * self.engagement * math.pow(0.5, halvings)
        return min(0.95, decayed + natural_return)

    def traits(self) -> dict[str, object]:
        return {
            "email": f"{self.user_id}@example.test",
            "phone": f"+1555{self.index:07d}",
            "name": f"{self.first_name} {self.index}",
            "first_name": self.first_name,
            "timezone": self.timezone,
            "unsubscribed": self.unsubscribed,
        }


def draw_population(
    shape: PopulationShape, *, rng: random.Random, start: datetime, id_prefix: str
) -> list[SimUser]:
    """`shape.users` users; arrival times spread over the period, the rest drawn per user."""
    period_s = shape.days * 86_400 * shape.arrivals_end_share
    users = []
    for index in range(shape.users):
        present = rng.random() < shape.present_at_start_share
        arrival_s = rng.uniform(0, 86_400) if present else rng.uniform(0, period_s)
        users.append(
            SimUser(
                index=index,
                user_id=f"{id_prefix}u{index:06d}",
                anonymous_id=f"{id_prefix}anon-{index:06d}-{rng.getrandbits(32):08x}",
                arrives_at=start + timedelta(seconds=arrival_s),
                signs_up=rng.random() >= shape.prospect_share,
                visits_before_signup=rng.randint(1, 3),
                visit_gap_hours=rng.uniform(1, 40),
                base_sessions_per_day=rng.uniform(0.3, 0.95),
                # Log-uniform: many users fade within days, a few stay for months.
                half_life_days=math.exp(rng.uniform(math.log(1.5), math.log(60))),
                purchase_share=rng.uniform(0.03, 0.35),
                mean_order_value=round(rng.uniform(15, 180), 2),
                complaint_share=rng.uniform(0.0, 0.03),
                responsiveness=rng.uniform(0.3, 1.2),
                timezone=rng.choice(TIMEZONES),
                on_app=rng.random() < shape.app_share,
                unsubscribed=rng.random() < shape.unsubscribed_share,
                first_name=rng.choice(FIRST_NAMES),
            )
        )
    return users
