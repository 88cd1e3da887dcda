"""RFM (recency, frequency, monetary) scores 1-5 and the named segment.

Scores come from quantile edges: four ascending cut points per dimension.
The engine refreshes the edges from the population now and then
(compute_rfm_edges) and passes them in the config; DEFAULT_RFM_EDGES serves
until then, so scoring never needs the population on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

SECONDS_PER_DAY = 86_400.0
# Fewer purchasers than this and quantiles say little: keep the defaults.
MIN_POPULATION_FOR_EDGES = 20
# Bounded memory for the quantile sample, whatever the population size.
MAX_SAMPLE_SIZE = 8_192


def _check_edges(name: str, edges: tuple[float, ...]) -> None:
    if len(edges) != 4 or list(edges) != sorted(edges):
        raise ValueError(f"{name}={list(edges)} must be 4 cut points in ascending order")


@dataclass(frozen=True, slots=True)
class RfmEdges:
    """Four ascending cut points per dimension (quintile boundaries)."""

    recency_days: tuple[float, float, float, float]
    frequency_orders: tuple[float, float, float, float]
    monetary_revenue: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        _check_edges("recency_days", self.recency_days)
        _check_edges("frequency_orders", self.frequency_orders)
        _check_edges("monetary_revenue", self.monetary_revenue)


DEFAULT_RFM_EDGES = RfmEdges(
    recency_days=(14.0, 30.0, 60.0, 120.0),
    frequency_orders=(1.0, 2.0, 3.0, 5.0),
    monetary_revenue=(50.0, 100.0, 250.0, 500.0),
)


class RfmScore(NamedTuple):
    recency: int
    frequency: int
    monetary: int
    segment: str


def _above(value: float, edges: Sequence[float]) -> int:
    """How many cut points lie strictly below `value`."""
    return sum(1 for edge in edges if edge < value)


# (segment, recency min..max, frequency min..max, monetary min), first match wins:
# the usual RFM segment map, from best customers to lost ones.
_SEGMENTS: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("champions", 4, 5, 4, 5, 4),
    ("cant_lose", 1, 2, 4, 5, 4),
    ("loyal", 3, 5, 4, 5, 1),
    ("at_risk", 1, 2, 3, 5, 1),
    ("new_customers", 4, 5, 1, 1, 1),
    ("potential_loyalist", 3, 5, 2, 5, 1),
    ("need_attention", 3, 3, 1, 5, 1),
    ("hibernating", 2, 2, 1, 5, 1),
)
SEGMENTS = (*(row[0] for row in _SEGMENTS), "lost")


def segment_of(recency: int, frequency: int, monetary: int) -> str:
    """The named segment of three scores (1-5 each)."""
    for name, r_low, r_high, f_low, f_high, m_low in _SEGMENTS:
        if r_low <= recency <= r_high and f_low <= frequency <= f_high and monetary >= m_low:
            return name
    return "lost"


def score(
    last_order_at: datetime | None, orders: int, revenue: float, edges: RfmEdges, now: datetime
) -> RfmScore | None:
    """Scores at `now`; None for someone who never ordered."""
    if orders <= 0 or last_order_at is None:
        return None
    recency_days = max(0.0, (now - last_order_at).total_seconds() / SECONDS_PER_DAY)
    recency = 5 - _above(recency_days, edges.recency_days)
    frequency = 1 + _above(float(orders), edges.frequency_orders)
    monetary = 1 + _above(revenue, edges.monetary_revenue)
    return RfmScore(recency, frequency, monetary, segment_of(recency, frequency, monetary))


class _Purchaser(Protocol):
    @property
    def last_order_at(self) -> datetime | None: ...
    @property
    def orders(self) -> int: ...
    @property
    def revenue(self) -> float: ...


class _Sample:
    """A deterministic, bounded sample: keep a value when a hash of its position is low.

    The hash (Knuth's multiplicative one) spreads positions evenly, so a
    population listed in some periodic order is not aliased the way keeping
    every k-th value would be. When full, the threshold halves.
    """

    _SPACE = 1 << 32

    def __init__(self) -> None:
        self.kept: list[tuple[int, float]] = []
        self.threshold = self._SPACE
        self.seen = 0

    def add(self, value: float) -> None:
        position_hash = (self.seen * 2_654_435_761) % self._SPACE
        self.seen += 1
        if position_hash >= self.threshold:
            return
        self.kept.append((position_hash, value))
        if len(self.kept) >= MAX_SAMPLE_SIZE:
            self.threshold //= 2
            self.kept = [(h, v) for h, v in self.kept if h < self.threshold]

    def quintile_edges(self) -> tuple[float, float, float, float]:
        ordered = sorted(value for _, value in self.kept)
        last = len(ordered) - 1
        q1, q2, q3, q4 = (ordered[round(last * share)] for share in (0.2, 0.4, 0.6, 0.8))
        return (q1, q2, q3, q4)


def compute_rfm_edges(states: Iterable[_Purchaser], now: datetime) -> RfmEdges:
    """Quintile edges of the purchasers among `states`, in bounded memory.

    Too few purchasers (under MIN_POPULATION_FOR_EDGES) gives DEFAULT_RFM_EDGES.
    """
    recency, frequency, monetary = _Sample(), _Sample(), _Sample()
    purchasers = 0
    for state in states:
        if state.orders <= 0 or state.last_order_at is None:
            continue
        purchasers += 1
        recency.add(max(0.0, (now - state.last_order_at).total_seconds() / SECONDS_PER_DAY))
        frequency.add(float(state.orders))
        monetary.add(state.revenue)
    if purchasers < MIN_POPULATION_FOR_EDGES:
        return DEFAULT_RFM_EDGES
    return RfmEdges(
        recency_days=recency.quintile_edges(),
        frequency_orders=frequency.quintile_edges(),
        monetary_revenue=monetary.quintile_edges(),
    )
