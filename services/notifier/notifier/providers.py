"""Build every channel from the settings: the one place that knows their constructors."""

from __future__ import annotations

from notifier.channels.base import Channel
from notifier.channels.call import CallChannel
from notifier.channels.coupon import CouponChannel
from notifier.channels.email import EmailChannel
from notifier.channels.push import PushChannel
from notifier.channels.sms import SmsChannel
from notifier.channels.webhook import WebhookChannel
from notifier.lean_http import LeanHttpClient
from notifier.playbook import Playbook
from notifier.settings import NotifierSettings
from shared.clock import Clock


def http_client(settings: NotifierSettings) -> LeanHttpClient:
    """One client for every HTTP provider, with as many connections as senders."""
    return LeanHttpClient(
        max_connections=settings.notifier_concurrency, timeout_s=settings.provider_timeout_s
    )


# Coupons (expiry) and call tasks (their attempt window) follow the policy clock, so a
# simulation's coupons expire in simulated time. Email Date headers and webhook
# signatures stay on wall time: receivers check them against their own clocks.
def build_channels(
    settings: NotifierSettings, playbook: Playbook, *, clock: Clock, client: LeanHttpClient
) -> dict[str, Channel]:
    timeout_s = settings.provider_timeout_s
    templates_dir = playbook.templates_dir
    channels: list[Channel] = [
        CouponChannel(clock=clock),
        EmailChannel(
            host=settings.notifier_smtp_host,
            port=settings.notifier_smtp_port,
            sender=settings.notifier_email_from,
            timeout_s=timeout_s,
            use_tls=settings.notifier_smtp_tls == "tls",
            starttls=settings.notifier_smtp_tls == "starttls",
            username=settings.notifier_smtp_username,
            password=settings.notifier_smtp_password,
            templates_dir=templates_dir,
        ),
        SmsChannel(
            url=settings.notifier_sms_url,
            timeout_s=timeout_s,
            templates_dir=templates_dir,
            client=client,
        ),
        PushChannel(
            url=settings.notifier_push_url,
            timeout_s=timeout_s,
            templates_dir=templates_dir,
            client=client,
        ),
        CallChannel(
            url=settings.notifier_call_url,
            timeout_s=timeout_s,
            templates_dir=templates_dir,
            client=client,
            clock=clock,
        ),
        WebhookChannel(
            url=settings.notifier_webhook_url,
            secret=settings.notifier_webhook_secret,
            timeout_s=timeout_s,
            client=client,
        ),
    ]
    return {channel.name: channel for channel in channels}
