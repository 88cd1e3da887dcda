"""LIFECYCLE_CONFIG: defaults with no file, YAML overrides, errors that name the key and value."""

from __future__ import annotations

from pathlib import Path

import pytest
from stage_engine.lifecycle import ConfigError, LifecycleConfig, RfmEdges, load_lifecycle_config


def test_no_file_gives_the_documented_defaults() -> None:
    config = load_lifecycle_config(None)
    assert config == LifecycleConfig()
    assert (config.onboarding_days, config.silent_after_days, config.churn_after_days) == (7, 7, 30)
    assert config.signup_events == ("Signed Up",)
    assert config.purchase_events == ("Order Completed",)
    assert config.negative_feedback_events == ("Complaint Filed", "Negative Review")
    assert config.milestone_days == (3, 7, 14, 30, 60)
    assert config.loyal_order_count == 5
    assert "email" in config.contact_traits


def test_a_yaml_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "lifecycle.yaml"
    path.write_text(
        "silent_after_days: 10\n"
        "churn_after_days: 45\n"
        "activity_excluded_events: [Email Opened]\n"
        "milestone_days: [5, 10]\n"
        "rfm_edges:\n"
        "  recency_days: [7, 14, 28, 56]\n"
        "  frequency_orders: [1, 2, 4, 8]\n"
        "  monetary_revenue: [10, 20, 40, 80]\n",
        encoding="utf-8",
    )
    config = load_lifecycle_config(path)
    assert (config.silent_after_days, config.churn_after_days) == (10, 45)
    assert config.activity_excluded_events == ("Email Opened",)
    assert config.milestone_days == (5, 10)
    assert config.rfm_edges == RfmEdges((7, 14, 28, 56), (1, 2, 4, 8), (10, 20, 40, 80))
    assert config.onboarding_days == 7


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_lifecycle_config(path) == LifecycleConfig()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("silent_after_days: soon\n", "silent_after_days='soon'"),
        ("silent_after_days: 0\n", "silent_after_days=0"),
        ("silent_afterdays: 3\n", "silent_afterdays=3"),
        ("churn_after_days: 5\n", "churn_after_days=5 must be greater than silent_after_days=7"),
        ("milestone_days: [7, 3]\n", "milestone_days=[7, 3]"),
        ("loyal_order_count: 2\n", "loyal_order_count=2"),
        ("activity_drop_ratio: 1.5\n", "activity_drop_ratio=1.5"),
        (
            "rfm_edges: {recency_days: [9, 1, 2, 3], frequency_orders: [1, 2, 3, 4],"
            " monetary_revenue: [1, 2, 3, 4]}\n",
            "recency_days=[9.0, 1.0, 2.0, 3.0]",
        ),
    ],
)
def test_a_bad_value_is_named_with_its_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "lifecycle.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_lifecycle_config(path)
    assert named in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping of settings, got list"):
        load_lifecycle_config(path)


def test_broken_yaml_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("silent_after_days: [1,\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_lifecycle_config(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_lifecycle_config(tmp_path / "absent.yaml")
