"""Structured JSON logs on stderr: one object per line, extras included."""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

# Values quoted inside error texts: PostgreSQL and asyncpg name the offending value
# ("invalid input syntax for type integer: \"ann@x.io\"", "Key (user_id)=(u1)
# already exists", "invalid input for query argument $1: 'ann@x.io'"), and those values
# are user ids, emails and phones. Errors are logged with them blanked out.
_QUOTED_VALUE = re.compile(r"""'[^'\n]*'|"[^"\n]*"|(?<=\)=\()[^)\n]*""")
_ERROR_FIELDS = ("error", "first_error")


def redact(text: str) -> str:
    """`text` with every quoted value replaced by '?'."""
    return _QUOTED_VALUE.sub("'?'", text)


# Attributes every LogRecord has; anything else was passed with `extra=` and is logged.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        for name in _ERROR_FIELDS:
            if isinstance(entry.get(name), str):
                entry[name] = redact(entry[name])
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        # Non-string keys (partition numbers, say) become strings rather than losing the line.
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every reconnect attempt at ERROR; keep it, but not its DEBUG chatter.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, root.level))
