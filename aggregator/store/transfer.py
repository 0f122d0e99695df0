"""Copying a whole state from one store to another (`aggregator migrate-state`, issue 23): every table the
schema has (schema.blueprint), row for row, keys included, so no item is ever new again and every
schedule, validator and backoff carries over. Works between any two backends."""

from __future__ import annotations

from collections.abc import Mapping

from aggregator.errors import StateError
from aggregator.store import schema
from aggregator.store.connection import Connection

_BATCH = 2000  # rows per read and per executemany


def check_empty(conn: Connection, where: str) -> None:
    """Refuse a target that holds state already: copying into it would mix two states."""
    blueprint = schema.blueprint()
    for table in blueprint.columns:
        count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if count > len(blueprint.seeded.get(table, ())):
            raise StateError(f"state {where}: already holds a state ({count} rows in {table}); "
                             "migrate-state copies only into a new, empty one")


def copy_tables(source: Connection, target: Connection) -> Mapping[str, int]:
    """Copy every table, parents first, into `target` (checked empty; inside the caller's transaction
    there, which replaces the seeded rows); the number of rows copied per table."""
    blueprint = schema.blueprint()
    for table in reversed(list(blueprint.columns)):
        target.execute(f"DELETE FROM {table}")
    copied: dict[str, int] = {}
    for table, columns in blueprint.columns.items():
        names = ", ".join(columns)
        insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
        cursor = source.execute(f"SELECT {names} FROM {table}")
        copied[table] = 0
        while rows := cursor.fetchmany(_BATCH):
            target.executemany(insert, rows)
            copied[table] += len(rows)
    return copied
