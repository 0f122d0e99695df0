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


def copy_tables(source: Connection, target: Connection, batch: int = _BATCH) -> Mapping[str, int]:
    """Copy every table, parents first, into `target` (checked empty; inside the caller's transaction
    there, which replaces the seeded rows); the number of rows copied per table. Rows are read `batch`
    at a time in primary-key order (a page after the last key read), so a state of any size copies in
    little memory on either engine."""
    blueprint = schema.blueprint()
    for table in reversed(list(blueprint.columns)):
        target.execute(f"DELETE FROM {table}")
    copied: dict[str, int] = {}
    for table, columns in blueprint.columns.items():
        copied[table] = _copy_table(source, target, table, columns, blueprint.keys[table], batch)
    return copied


def _copy_table(source: Connection, target: Connection, table: str, columns: tuple[str, ...],
                key: tuple[str, ...], batch: int) -> int:
    names, order = ", ".join(columns), ", ".join(key)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    after = f"WHERE ({order}) > ({', '.join('?' * len(key))}) "
    positions = [columns.index(k) for k in key]
    last: tuple[object, ...] = ()
    count = 0
    while rows := source.execute(f"SELECT {names} FROM {table} {after if last else ''}ORDER BY {order} "
                                 f"LIMIT {batch}", last).fetchall():
        target.executemany(insert, rows)
        count += len(rows)
        last = tuple(rows[-1][p] for p in positions)
    return count
