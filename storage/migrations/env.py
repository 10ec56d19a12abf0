"""Alembic environment: runs migrations on the async engine (aiosqlite or asyncpg)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Base

config = context.config
target_metadata = Base.metadata


#: Several workers starting at once on PostgreSQL migrate one after another (the others then
#: find nothing left to do): a session-level advisory lock around the migrations.
_MIGRATE_LOCK = 0x67_64_6D_67  # "gdmg"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    pg = connection.dialect.name == "postgresql"
    if pg:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATE_LOCK})")
        connection.commit()
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if pg:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATE_LOCK})")
            connection.commit()


async def _online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


def _offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _offline()
else:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(_online())
    else:  # called from a thread while a loop runs elsewhere: give this thread its own loop
        asyncio.new_event_loop().run_until_complete(_online())
