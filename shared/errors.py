"""Typed errors shared by the services, one per failure kind."""


class LifecycleError(Exception):
    """Base of every error this project raises on purpose."""


class SettingsError(LifecycleError):
    """A setting (environment variable) has a bad value; the message names it."""


class DecodeError(LifecycleError):
    """Bytes that are not a valid record of the expected contract.

    `field` is the dotted path of the first bad field ("" when the bytes are
    not JSON at all), so a dead-letter record says exactly what was wrong.
    """

    def __init__(self, model: str, field: str, reason: str) -> None:
        self.model = model
        self.field = field
        self.reason = reason
        where = f" field {field!r}" if field else ""
        super().__init__(f"invalid {model}:{where} {reason}")


class UpstreamBrokenError(LifecycleError):
    """The input cannot be processed as it is (say, many undecodable records in a row):
    the loop waits with a backoff and tries again without moving past it, so nothing is
    skipped and no crash loop starts; its restarts are counted and readiness is red
    until an operator repairs the stream or the producer."""
