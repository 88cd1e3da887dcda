"""Nothing secret in errors or logs (issue 14): database errors carry no bound
parameters, and settings never show the database password."""

from __future__ import annotations

import logging

import pytest
from notifier.settings import NotifierSettings
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from stage_engine.settings import StageEngineSettings

from shared.db import make_engine
from shared.logs import JsonFormatter


async def test_a_logged_database_error_does_not_carry_its_parameters(
    fresh_database_url: str,
) -> None:
    engine = make_engine(fresh_database_url)
    secret = "ann.secret@example.com"
    try:
        with pytest.raises(DBAPIError) as failed:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT CAST(:email AS integer)"), {"email": secret})
    finally:
        await engine.dispose()
    error = failed.value
    # SQLAlchemy leaves the parameters out; the driver's own message still names the value.
    assert "SQL parameters hidden" in str(error)
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, None)
    record.exc_info = (type(error), error, error.__traceback__)
    record.error = str(error)
    line = JsonFormatter("test").format(record)
    assert "invalid input for query argument" in line  # what went wrong is kept
    assert secret not in line


@pytest.mark.parametrize("settings_class", [StageEngineSettings, NotifierSettings])
def test_settings_never_show_the_database_password(
    settings_class: type[StageEngineSettings] | type[NotifierSettings],
) -> None:
    settings = settings_class(database_url="postgresql+asyncpg://app:hunter2@db:5432/lifecycle")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.model_dump())
    assert settings.database_url.get_secret_value().endswith("@db:5432/lifecycle")
