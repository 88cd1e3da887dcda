"""RFM scores, named segments and population quantile edges."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import pytest
from stage_engine.lifecycle import LifecycleConfig, RfmEdges, compute_rfm_edges, rescore
from stage_engine.lifecycle.rfm import DEFAULT_RFM_EDGES, MAX_SAMPLE_SIZE, score, segment_of

from tests.unit.stage_engine.builders import DAY, T0, order, run_events


class Purchaser(NamedTuple):
    last_order_at: datetime | None
    orders: int
    revenue: float


@pytest.mark.parametrize(
    ("days_ago", "orders", "revenue", "expected"),
    [
        (0, 1, 20.0, (5, 1, 1, "new_customers")),
        (14, 6, 600.0, (5, 5, 5, "champions")),
        (15, 6, 600.0, (4, 5, 5, "champions")),
        (200, 6, 600.0, (1, 5, 5, "cant_lose")),
        (45, 4, 90.0, (3, 4, 2, "loyal")),
        (100, 3, 90.0, (2, 3, 2, "at_risk")),
        (20, 2, 60.0, (4, 2, 2, "potential_loyalist")),
        (45, 1, 60.0, (3, 1, 2, "need_attention")),
        (100, 2, 60.0, (2, 2, 2, "hibernating")),
        (300, 1, 10.0, (1, 1, 1, "lost")),
    ],
)
def test_default_edges_score_and_name_the_segment(
    days_ago: int, orders: int, revenue: float, expected: tuple[int, int, int, str]
) -> None:
    assert score(T0 - days_ago * DAY, orders, revenue, DEFAULT_RFM_EDGES, T0) == expected


def test_every_score_combination_has_a_segment() -> None:
    names = {segment_of(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)}
    assert names == {
        "champions",
        "cant_lose",
        "loyal",
        "at_risk",
        "new_customers",
        "potential_loyalist",
        "need_attention",
        "hibernating",
        "lost",
    }


def test_no_orders_no_rfm() -> None:
    assert score(None, 0, 0.0, DEFAULT_RFM_EDGES, T0) is None


def test_edges_must_be_four_ascending_cut_points() -> None:
    with pytest.raises(ValueError, match="frequency_orders"):
        RfmEdges((1, 2, 3, 4), (3, 2, 1, 0), (1, 2, 3, 4))


def test_a_small_population_keeps_the_default_edges() -> None:
    few = [Purchaser(T0, 1, 10.0)] * 19 + [Purchaser(None, 0, 0.0)] * 100
    assert compute_rfm_edges(few, T0) == DEFAULT_RFM_EDGES


def test_population_edges_are_its_quintiles() -> None:
    people = [Purchaser(T0 - n * DAY, n, 10.0 * n) for n in range(1, 101)]
    edges = compute_rfm_edges(people, T0)
    assert edges.frequency_orders == (21.0, 41.0, 60.0, 80.0)
    assert edges.recency_days == (21.0, 41.0, 60.0, 80.0)
    assert edges.monetary_revenue == (210.0, 410.0, 600.0, 800.0)


def test_a_large_population_is_sampled_in_bounded_memory() -> None:
    # Periodic values (a population listed in some order) must not alias the sample.
    size = 5 * MAX_SAMPLE_SIZE
    people = [Purchaser(T0, 1 + n % 10, float(n % 1000)) for n in range(size)]
    edges = compute_rfm_edges(iter(people), T0)
    exact_orders = sorted(p.orders for p in people)
    exact_revenue = sorted(p.revenue for p in people)
    for got, share in zip(edges.frequency_orders, (0.2, 0.4, 0.6, 0.8), strict=True):
        assert abs(got - exact_orders[round((size - 1) * share)]) <= 1
    for got, share in zip(edges.monetary_revenue, (0.2, 0.4, 0.6, 0.8), strict=True):
        assert abs(got - exact_revenue[round((size - 1) * share)]) <= 30


def test_rescore_moves_recency_with_time_and_uses_the_given_edges() -> None:
    config = LifecycleConfig()
    state, _ = run_events([order(80.0, T0)], config)
    assert state is not None
    assert state.rfm is not None
    assert state.rfm.recency == 5
    later = rescore(state, DEFAULT_RFM_EDGES, T0 + 90 * DAY)
    assert later.rfm is not None
    assert later.rfm.recency == 2
    tight = RfmEdges((1, 2, 3, 4), (0, 0, 0, 0), (1, 2, 3, 4))
    assert rescore(state, tight, T0).rfm == (5, 5, 5, "champions")
    assert later.stage is state.stage
