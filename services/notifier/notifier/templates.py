"""Message templates: Jinja2 in a sandbox, strict about undefined names.

A template named `winback_coupon` is the file `winback_coupon.txt.j2` (blocks
`subject` and `body`) plus, optionally, `winback_coupon.html.j2` (an HTML body,
autoescaped). Files in a playbook's `templates_dir` win over the built-in ones
in notifier/templates/.

The context is `{"profile", "user_id", "transition", "coupon", "params"}`
(`template_context`). Templates are test-rendered when the playbook loads,
against a full and a bare sample profile, so a typo or a name that is not
always there (a trait, a coupon the rule does not issue) is refused at start-up.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from shared.errors import LifecycleError
from shared.notifications import Coupon
from shared.transitions import (
    Profile,
    PurchaseLevel,
    Rfm,
    Stage,
    Transition,
    TransitionData,
    TransitionKind,
)

if TYPE_CHECKING:
    from notifier.playbook import Playbook

BUILTIN_TEMPLATES_DIR = Path(__file__).with_name("templates")
_TEMPLATED_CHANNELS = ("email", "sms", "push", "call")


class TemplateError(LifecycleError):
    """A template is missing or cannot render; the runtime treats it as permanent."""


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str | None = None


def _defined(value: object) -> None:
    """Filters see StrictUndefined as a value: raise its own error, naming the missing name."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()


def _date(value: object) -> str:
    """`{{ coupon.expires_at | date }}` → 2026-01-19."""
    _defined(value)
    if isinstance(value, datetime | date):
        return value.strftime("%Y-%m-%d")
    raise TypeError(f"date filter expects a date or datetime, got {type(value).__name__}")


def _money(amount: object, currency: str = "") -> str:
    """`{{ coupon.amount | money(coupon.currency) }}` → 10 CNY (no needless decimals)."""
    _defined(amount)
    if not isinstance(amount, int | float):
        raise TypeError(f"money filter expects a number, got {type(amount).__name__}")
    text = f"{amount:.2f}".removesuffix(".00")
    return f"{text} {currency}".strip()


@functools.lru_cache(maxsize=16)
def _environment(templates_dir: Path | None) -> SandboxedEnvironment:
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES_DIR)))
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default=False),
        keep_trailing_newline=False,
        # Templates are read once per process: no file stat on every render.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["date"] = _date
    env.filters["money"] = _money
    return env


def render(
    template_name: str, context: Mapping[str, Any], templates_dir: Path | None = None
) -> RenderedMessage:
    """Render `template_name` or raise TemplateError naming the template and the problem."""
    env = _environment(templates_dir)
    text_template = _load(env, f"{template_name}.txt.j2", template_name)
    try:
        template_context = _new_context(env, text_template, context)
        subject = _block(text_template, "subject", template_context).strip()
        body = _block(text_template, "body", template_context).strip()
        html = None
        if (html_template := _load_optional(env, f"{template_name}.html.j2")) is not None:
            html = html_template.render(dict(context)).strip()
    except TemplateError:
        raise
    except (jinja2.TemplateError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise TemplateError(
            f"template {template_name!r} cannot render: {type(exc).__name__}: {exc}"
        ) from None
    if not body:
        raise TemplateError(f"template {template_name!r} rendered an empty body")
    return RenderedMessage(subject=" ".join(subject.split()), text=body, html=html)


def _new_context(
    env: SandboxedEnvironment, template: jinja2.Template, context: Mapping[str, Any]
) -> jinja2.runtime.Context:
    """What Template.new_context builds, without iterating the globals' ChainMap per render."""
    flat = _flat_globals(template)
    return jinja2.runtime.new_context(
        env, template.name, template.blocks, {**flat, **context}, shared=True, globals=flat
    )


@functools.lru_cache(maxsize=256)
def _flat_globals(template: jinja2.Template) -> dict[str, Any]:
    # Templates are loaded once (auto_reload off), so their globals never change.
    return dict(template.globals)


def _load(env: SandboxedEnvironment, file_name: str, template_name: str) -> jinja2.Template:
    try:
        return env.get_template(file_name)
    except jinja2.TemplateNotFound:
        raise TemplateError(
            f"unknown template {template_name!r} (no {file_name} in the playbook's "
            "templates_dir or the built-in templates)"
        ) from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"template {template_name!r} has a syntax error at line {exc.lineno}: {exc.message}"
        ) from None


# Cached because a miss (no HTML variant, the usual case) is a file search and an
# exception on every render; with auto_reload off the answer cannot change.
@functools.lru_cache(maxsize=256)
def _load_optional(env: SandboxedEnvironment, file_name: str) -> jinja2.Template | None:
    try:
        return env.get_template(file_name)
    except jinja2.TemplateNotFound:
        return None


def _block(template: jinja2.Template, name: str, context: Any) -> str:
    if name not in template.blocks:
        if name == "body":
            raise TemplateError(f"template {template.name!r} has no {{% block body %}}")
        return ""
    return "".join(template.blocks[name](context))


def template_context(
    transition: Transition, params: Mapping[str, Any], coupon: Coupon | None
) -> dict[str, Any]:
    data = transition.data
    return {
        "profile": data.profile.model_dump(),
        "user_id": data.user_id,
        "transition": {
            "id": transition.id,
            "time": transition.time,
            "kind": data.kind.value,
            "from_stage": data.from_stage.value if data.from_stage else None,
            "to_stage": data.to_stage.value,
            "reason": data.reason,
            "milestone_days": data.milestone_days,
            "purchase_level": data.purchase_level.value if data.purchase_level else None,
            "flag": data.flag,
        },
        "coupon": coupon.model_dump() if coupon is not None else None,
        "params": dict(params),
    }


def check_playbook_templates(playbook: Playbook) -> None:
    """Test-render every templated action; raise TemplateError naming the first bad one."""
    for rule in playbook.rules:
        issues_coupon = False
        for action in rule.actions:
            if action.channel == "coupon":
                issues_coupon = True
                continue
            if action.channel not in _TEMPLATED_CHANNELS:
                continue
            name = str(action.params["template"])
            for label, context in sample_contexts(action.params, with_coupon=issues_coupon):
                try:
                    rendered = render(name, context, playbook.templates_dir)
                except TemplateError as exc:
                    no_coupon = (
                        "" if issues_coupon else ", without a coupon: no earlier coupon action"
                    )
                    raise TemplateError(
                        f"rule {rule.name!r} action {action.name!r}: {exc} "
                        f"(checked against the {label} sample profile{no_coupon})"
                    ) from None
                if action.channel in ("email", "push") and not rendered.subject:
                    raise TemplateError(
                        f"rule {rule.name!r} action {action.name!r}: template {name!r} needs "
                        f"a non-empty {{% block subject %}} for {action.channel}"
                    )


_SAMPLE_TIME = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def sample_contexts(
    params: Mapping[str, Any], *, with_coupon: bool
) -> tuple[tuple[str, dict[str, Any]], ...]:
    """A full profile (every optional field and common trait set) and a bare one (none)."""
    full = Profile(
        stage=Stage.SILENT,
        stage_since=_SAMPLE_TIME,
        first_seen_at=_SAMPLE_TIME - timedelta(days=90),
        signed_up_at=_SAMPLE_TIME - timedelta(days=89),
        last_active_at=_SAMPLE_TIME - timedelta(days=7),
        orders=3,
        revenue=240.0,
        average_order_value=80.0,
        last_order_at=_SAMPLE_TIME - timedelta(days=20),
        purchase_level=PurchaseLevel.REPEAT,
        rfm=Rfm(recency=2, frequency=3, monetary=4, segment="at_risk"),
        risk_flags=("frequency_drop",),
        traits={
            "email": "sample@example.com",
            "phone": "+8613800000000",
            "name": "Sample User",
            "first_name": "Sample",
            "timezone": "Asia/Shanghai",
        },
    )
    bare = Profile(stage=Stage.NEW, stage_since=_SAMPLE_TIME, first_seen_at=_SAMPLE_TIME)
    coupon = (
        Coupon(code="ABCD-EFGH-JKMNP", amount=10, currency="CNY", expires_at=_SAMPLE_TIME)
        if with_coupon
        else None
    )
    contexts = []
    for label, profile in (("full", full), ("bare", bare)):
        data = TransitionData(
            user_id="sample-user",
            kind=TransitionKind.STAGE_CHANGED,
            from_stage=Stage.ACTIVE,
            to_stage=profile.stage,
            reason="sample",
            profile=profile,
        )
        transition = Transition.build(data, _SAMPLE_TIME, discriminator="sample")
        contexts.append((label, template_context(transition, params, coupon)))
    return tuple(contexts)
