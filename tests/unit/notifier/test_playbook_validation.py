"""A bad playbook is refused at load with an error that names the bad key and value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from notifier.playbook import Playbook, PlaybookError, load_playbook, parse_playbook

ISSUE_EXAMPLES = """
rules:
  - name: silent_7d
    match: {kind: stage_changed, to_stage: silent}
    actions:
      - {name: coupon, channel: coupon, params: {amount: 10, currency: CNY, valid_days: 14}}
      - {name: email, channel: email, params: {template: winback_coupon}}
  - name: churned_recall
    match: {kind: stage_changed, to_stage: churned}
    actions:
      - {name: call, channel: call, params: {template: recall_call, priority: high}}
  - name: first_purchase_thanks
    match: {kind: purchase_level_changed, purchase_level: first_purchase}
    actions:
      - {name: email, channel: email, params: {template: thank_you_first}}
"""


def rule(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "r1",
        "match": {"kind": "stage_changed", "to_stage": "silent"},
        "actions": [{"name": "mail", "channel": "email", "params": {"template": "welcome"}}],
    }
    base.update(overrides)
    return base


def refused(document: Any, base_dir: Path | None = None) -> str:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(document, base_dir=base_dir)
    return str(caught.value)


def test_the_issue_examples_are_expressible() -> None:
    playbook = parse_playbook(yaml.safe_load(ISSUE_EXAMPLES))
    silent = playbook.rules[0]
    assert silent.actions[0].params == {"amount": 10.0, "currency": "CNY", "valid_days": 14}
    assert silent.actions[1].params == {"template": "winback_coupon"}
    assert playbook.rules[1].actions[0].params["priority"] == "high"
    assert playbook.rules[2].match.purchase_level == ("first_purchase",)


def test_the_default_playbook_loads_with_the_documented_defaults() -> None:
    playbook = load_playbook(None)
    assert isinstance(playbook, Playbook)
    assert playbook.holdout_share == 0.10
    assert (playbook.caps.per_day, playbook.caps.per_week) == (1, 3)
    assert (playbook.quiet_hours.start.hour, playbook.quiet_hours.end.hour) == (21, 8)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"rules": [rule(match={"to_stage": "silnt"})]}, "rules[0] (r1).match.to_stage = 'silnt'"),
        ({"rules": [rule(match={"kind": "stage_change"})]}, "match.kind = 'stage_change'"),
        ({"rules": [rule(match={"stage": "new"})]}, "rules[0] (r1).match.stage = 'new'"),
        ({"rules": [rule(match={})]}, "give at least one condition"),
        ({"rules": [rule(match={"milestone_days": "three"})]}, "match.milestone_days"),
        (
            {"rules": [rule(actions=[{"name": "x", "channel": "fax", "params": {}}])]},
            "rules[0] (r1).actions[0] (x).channel = 'fax'",
        ),
        (
            {"rules": [rule(actions=[{"name": "c", "channel": "coupon", "params": {}}])]},
            "actions[0] (c).params = {}: Value error, bad coupon params: amount: Field required",
        ),
        (
            {
                "rules": [
                    rule(
                        actions=[
                            {"name": "c", "channel": "coupon", "params": {"amount": 5, "cur": "X"}}
                        ]
                    )
                ]
            },
            "(c).params = {'amount': 5, 'cur': 'X'}: Value error, bad coupon params: cur = 'X'",
        ),
        (
            {
                "rules": [
                    rule(
                        actions=[
                            {
                                "name": "c",
                                "channel": "coupon",
                                "params": {"amount": 5, "currency": "yuan"},
                            }
                        ]
                    )
                ]
            },
            "bad coupon params: currency = 'yuan': String should match",
        ),
        (
            {
                "rules": [
                    rule(
                        actions=[
                            {
                                "name": "k",
                                "channel": "call",
                                "params": {"template": "recall_call", "priority": "urgent"},
                            }
                        ]
                    )
                ]
            },
            "bad call params: priority = 'urgent'",
        ),
        ({"rules": [rule(actions=[])]}, "a rule needs at least one action"),
        ({"rules": [rule(name="Bad Name")]}, "rules[0] (Bad Name).name = 'Bad Name'"),
        ({"rules": [rule(), rule()]}, "rule names must be unique, repeated: ['r1']"),
        (
            {
                "rules": [
                    rule(
                        actions=[
                            {"name": "a", "channel": "email", "params": {"template": "welcome"}},
                            {"name": "a", "channel": "push", "params": {"template": "welcome"}},
                        ]
                    )
                ]
            },
            "action names must be unique within a rule, repeated: ['a']",
        ),
        ({"rules": [rule(holdout_share=1.5)]}, "rules[0] (r1).holdout_share = 1.5"),
        ({"holdout_share": -0.1, "rules": []}, "holdout_share = -0.1"),
        ({"quiet_hours": {"default_timezone": "Mars/Base"}}, "unknown time zone 'Mars/Base'"),
        ({"quiet_hours": {"start": "25:00"}}, "quiet_hours.start = '25:00'"),
        ({"caps": {"per_day": -1}}, "caps.per_day = -1"),
        ({"caps": {"exempt_channels": ["fax"]}}, "caps.exempt_channels[0] = 'fax'"),
        ({"rulez": []}, "rulez"),
        (["not", "a", "mapping"], "expected a mapping at the top, got list"),
    ],
)
def test_bad_values_are_named(document: Any, expected: str) -> None:
    assert expected in refused(document)


def test_every_problem_is_reported_at_once_and_nothing_else() -> None:
    coupon = {"name": "c", "channel": "coupon", "params": {"amount": 0}}
    message = refused(
        {"rules": [rule(match={"to_stage": "silnt"}, actions=[coupon])], "caps": {"per_day": -1}}
    )
    problems = message.split("; ")
    assert len(problems) == 3, problems
    assert "match.to_stage = 'silnt'" in problems[0]
    assert "bad coupon params: amount = 0: Input should be greater than 0" in problems[1]
    assert "caps.per_day = -1" in problems[2]


def test_an_unknown_template_is_refused_naming_rule_action_and_template() -> None:
    message = refused(
        {
            "rules": [
                rule(actions=[{"name": "m", "channel": "email", "params": {"template": "nope"}}])
            ]
        }
    )
    assert "rule 'r1' action 'm'" in message
    assert "unknown template 'nope'" in message


def test_a_template_using_a_coupon_the_rule_does_not_issue_is_refused() -> None:
    email = {"name": "m", "channel": "email", "params": {"template": "winback_coupon"}}
    message = refused({"rules": [rule(actions=[email])]})
    assert "template 'winback_coupon' cannot render" in message
    assert "no earlier coupon action" in message
    coupon = {"name": "c", "channel": "coupon", "params": {"amount": 10}}
    assert parse_playbook({"rules": [rule(actions=[coupon, email])]}).rules[0].name == "r1"
    # Order matters: the coupon must be issued before the message that shows it.
    assert "no earlier coupon action" in refused({"rules": [rule(actions=[email, coupon])]})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "{% block subject %}S{% endblock %}{% block body %}{{ profile.traits.name }}"
            "{% endblock %}",
            "bare sample",
        ),
        ("{% block body %}Hi {{ profile.nickname }}{% endblock %}", "'nickname'"),
        ("{% block body %}Hi {{ user_id {% endblock %}", "syntax error at line 1"),
        ("{% block subject %}{% endblock %}{% block body %}x{% endblock %}", "non-empty"),
        ("Hi {{ user_id }}", "no {% block body %}"),
        ("{% block body %}{{ ''.__class__.__mro__ }}{% endblock %}", "cannot render"),
    ],
)
def test_a_custom_template_that_cannot_render_is_refused(
    tmp_path: Path, source: str, expected: str
) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "custom.txt.j2").write_text(source)
    document = {
        "templates_dir": "templates",
        "rules": [
            rule(actions=[{"name": "m", "channel": "email", "params": {"template": "custom"}}])
        ],
    }
    assert expected in refused(document, base_dir=tmp_path)


def test_a_custom_templates_dir_is_resolved_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "hello.txt.j2").write_text(
        "{% block subject %}Hello{% endblock %}{% block body %}Hi {{ user_id }}{% endblock %}"
    )
    path = tmp_path / "playbook.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "templates_dir": "mine",
                "rules": [
                    rule(actions=[{"name": "m", "channel": "sms", "params": {"template": "hello"}}])
                ],
            }
        )
    )
    assert load_playbook(path).templates_dir == tmp_path / "mine"


def test_a_file_that_is_not_yaml_or_missing_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules: [\n")
    with pytest.raises(PlaybookError, match=r"broken\.yaml' is not valid YAML"):
        load_playbook(broken)
    with pytest.raises(PlaybookError, match=r"cannot read playbook .*missing\.yaml"):
        load_playbook(tmp_path / "missing.yaml")
