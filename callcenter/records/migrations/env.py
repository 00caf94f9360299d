"""Alembic environment: runs against the records metadata (callcenter.records.models).

Run through ``callcenter migrate`` (callcenter.records.db.migrate), which passes
an open connection in ``config.attributes["connection"]``; a URL in
``sqlalchemy.url`` is used otherwise (``alembic -x`` style runs, autogenerate).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from callcenter.records.db import make_engine
from callcenter.records.models import metadata

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER TABLE needs batch mode
        compare_type=True,
        include_object=_include,
    )
    with context.begin_transaction():
        context.run_migrations()


def _include(obj, name, type_, reflected, compare_to) -> bool:
    """The knowledge base's full-text index tables are raw SQL (0003), not models."""
    from callcenter.kb.store import is_index_table

    return not (type_ == "table" and is_index_table(name))


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
