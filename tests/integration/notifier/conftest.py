"""Real dev SMTP and HTTP sinks (C1's), started in-process on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from notifier.devsink import DevSink
from notifier.devsmtp import DevSmtp


@pytest.fixture
async def smtp_sink(tmp_path: Path) -> AsyncIterator[DevSmtp]:
    async with DevSmtp(tmp_path / "mail") as smtp:
        yield smtp


@pytest.fixture
async def http_sink() -> AsyncIterator[DevSink]:
    async with DevSink(seed=7) as sink:
        yield sink
