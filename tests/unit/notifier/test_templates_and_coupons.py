"""Templates render in a strict sandbox; coupon codes are unique, well formed and checkable."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from notifier.channels.coupon import (
    ALPHABET,
    CouponChannel,
    check_character,
    is_well_formed,
    new_code,
    new_coupon,
    normalise_code,
)
from notifier.templates import BUILTIN_TEMPLATES_DIR, TemplateError, render, template_context

from shared.clock import ManualClock
from tests.unit.notifier.factories import CONTACT, T0, make_coupon, make_delivery, make_transition

# --- templates -----------------------------------------------------------------------


def context(coupon: bool = True, traits: dict[str, str] | None = None) -> dict[str, object]:
    transition = make_transition(traits=traits)
    return template_context(transition, {"template": "x"}, make_coupon() if coupon else None)


def test_every_builtin_template_renders_against_a_real_transition() -> None:
    names = {path.name.split(".")[0] for path in BUILTIN_TEMPLATES_DIR.glob("*.txt.j2")}
    assert len(names) >= 8
    for name in names:
        rendered = render(name, context())
        assert rendered.text
        assert "{{" not in rendered.text


def test_welcome_shows_the_coupon_only_when_one_was_issued() -> None:
    with_coupon = render("welcome", context(coupon=True))
    without = render("welcome", context(coupon=False, traits={}))
    assert with_coupon.subject == "Welcome aboard, Ada!"
    assert "5" not in without.text
    assert "ABCD-EFGH-JKMNP" in with_coupon.text
    assert "valid until 2026-01-19" in with_coupon.text
    assert "ABCD-EFGH-JKMNP" not in without.text
    assert without.subject == "Welcome aboard!"
    assert without.text.startswith("Hi there,")


def test_html_is_autoescaped_but_text_is_not() -> None:
    rendered = render("winback_coupon", context(traits={**CONTACT, "first_name": "<b>Ada</b>"}))
    assert rendered.html is not None
    assert "&lt;b&gt;Ada&lt;/b&gt;" in rendered.html
    assert "Hi <b>Ada</b>," in rendered.text


def test_a_missing_value_is_a_template_error_naming_the_template() -> None:
    with pytest.raises(TemplateError, match=r"'winback_coupon' cannot render: UndefinedError"):
        render("winback_coupon", context(coupon=False))


def test_an_unknown_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="unknown template 'nope'"):
        render("nope", context())


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ params.__class__ }}",
        "{{ profile.items.__self__ }}",
    ],
)
def test_the_sandbox_refuses_unsafe_attribute_access(tmp_path: Path, source: str) -> None:
    (tmp_path / "evil.txt.j2").write_text("{% block body %}" + source + "{% endblock %}")
    with pytest.raises(TemplateError, match="'evil' cannot render"):
        render("evil", context(), tmp_path)


def test_a_templates_dir_overrides_a_builtin(tmp_path: Path) -> None:
    (tmp_path / "welcome.txt.j2").write_text(
        "{% block subject %}Mine{% endblock %}{% block body %}Hello {{ user_id }}{% endblock %}"
    )
    assert render("welcome", context(), tmp_path).text == "Hello u-1"
    assert render("welcome", context()).subject != "Mine"


# --- coupons -------------------------------------------------------------------------


def test_codes_are_unique_and_well_formed() -> None:
    codes = [new_code() for _ in range(20_000)]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert len(code) == 15
        assert code[4] == "-"
        assert code[9] == "-"
        assert is_well_formed(code)
        assert set(code.replace("-", "")) <= set(ALPHABET)


def test_codes_use_the_whole_alphabet_evenly() -> None:
    counts = dict.fromkeys(ALPHABET, 0)
    for _ in range(5_000):
        for char in new_code().replace("-", "")[:-1]:
            counts[char] += 1
    expected = 5_000 * 12 / len(ALPHABET)
    assert all(0.8 * expected < count < 1.2 * expected for count in counts.values())


def test_the_check_character_catches_every_single_typo() -> None:
    code = normalise_code(new_code())
    for position, wrong in itertools.product(range(len(code)), ALPHABET):
        if wrong != code[position]:
            typo = code[:position] + wrong + code[position + 1 :]
            assert not is_well_formed(typo), typo


def test_the_check_character_catches_most_swapped_neighbours() -> None:
    caught = total = 0
    for _ in range(300):
        code = normalise_code(new_code())
        for position in range(len(code) - 1):
            if code[position] != code[position + 1]:
                swapped = (
                    code[:position] + code[position + 1] + code[position] + code[position + 2 :]
                )
                total += 1
                caught += not is_well_formed(swapped)
    assert caught / total > 0.95


def test_typed_codes_are_forgiven_case_dashes_and_look_alikes() -> None:
    payload = "0123456789AB"
    code = payload + check_character(payload)
    assert is_well_formed(code.lower())
    assert is_well_formed("o123-4567-89AB" + code[-1])  # O read as 0
    assert not is_well_formed("SHORT")
    assert not is_well_formed(code + "0")


def test_a_coupon_has_amount_currency_and_expiry_and_random_bytes_are_injectable() -> None:
    fixed = bytes(range(8))
    coupon = new_coupon(
        {"amount": 10, "currency": "CNY", "valid_days": 14}, "u-1", "t-1", T0, lambda n: fixed[:n]
    )
    again = new_coupon({"amount": 10}, "u-2", "t-2", T0, lambda n: fixed[:n])
    assert (coupon.amount, coupon.currency) == (10, "CNY")
    assert coupon.expires_at == T0 + timedelta(days=14)
    assert coupon.code == again.code  # the code comes from the random bytes alone
    assert is_well_formed(coupon.code)


def test_bad_coupon_params_or_a_naive_time_are_refused() -> None:
    with pytest.raises(ValueError, match="amount"):
        new_coupon({"amount": -1}, "u", "t", T0)
    with pytest.raises(ValueError, match="aware"):
        new_coupon({"amount": 1}, "u", "t", datetime(2026, 1, 1))  # noqa: DTZ001


async def test_the_coupon_channel_issues_a_coupon_at_the_clock_time() -> None:
    clock = ManualClock(datetime(2026, 2, 1, tzinfo=UTC))
    delivery = make_delivery("coupon", {"amount": 20, "currency": "CNY", "valid_days": 7})
    result = await CouponChannel(clock=clock).send(delivery)
    assert result.coupon is not None
    assert result.coupon.expires_at == datetime(2026, 2, 8, tzinfo=UTC)
    assert result.coupon.amount == 20
