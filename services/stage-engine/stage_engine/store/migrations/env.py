"""Alembic environment: always run on a connection handed in by stage_engine.store.migrate."""

from __future__ import annotations

from alembic import context

from stage_engine.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the stage engine's migrations with `python -m stage_engine migrate` "
        "(stage_engine.store.migrate), which hands Alembic a connection"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=config.attributes["version_table"],
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
