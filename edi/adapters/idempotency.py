"""``Idempotency-Key`` bookkeeping for the gateway, shared by every worker process.

Issue 13: with ``--workers 2`` each process kept its own keys, so a key reused with another
payload was accepted whenever the second request reached the other process. The keys now live
in one database every worker opens: the gateway's state file (SQLite, WAL, one writer at a time:
several processes on one host) or PostgreSQL (gateways on several hosts behind one balancer).

Per key it keeps the SHA-256 of the payload, ``running`` or ``done``, and when that was written:
no body, no result (a repeat is recomputed). The key itself is stored as a SHA-256 of the partner
and the key, so whatever a client puts in the header stays out of the table.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

from edi.adapters.databases import is_postgres, open_sqlite, sqlite_path

KEEP_SECONDS = 24 * 3600  # a key answers for the same payload for a day
PRUNE_EVERY = 256  # begins between two deletions of expired keys

_SCHEMA = """CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY, payload TEXT NOT NULL, state TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL)"""


def key_digest(partner: str, key: str) -> str:
    return hashlib.sha256(f"{partner}\x00{key}".encode("utf-8", "surrogateescape")).hexdigest()


class IdempotencyKeys:
    """``begin`` before the work, ``end`` after it; safe from any thread of any process."""

    def __init__(self, url: str, *, running_for_at_most: float, keep_seconds: float = KEEP_SECONDS) -> None:
        self._url = url
        self._postgres = is_postgres(url)
        # A ``running`` entry older than the time limit (plus slack) belongs to a process that
        # died mid-request: it no longer blocks its key.
        self._running_for_at_most = running_for_at_most
        self._keep_seconds = keep_seconds
        self._local = threading.local()  # one connection per thread: sqlite3 and psycopg want that
        self._begins = itertools.count(1)
        self._connection()  # a bad URL fails at start-up, not per request

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self._postgres:
                import psycopg

                connection = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
            else:
                connection = open_sqlite(sqlite_path(self._url))
            connection.execute(_SCHEMA)
            self._local.connection = connection
        return connection

    @contextlib.contextmanager
    def _connected(self) -> Iterator[Any]:
        """This thread's connection; dropped after an error (a restarted database, a broken
        socket) so the next request connects afresh instead of failing for ever."""
        connection = self._connection()
        try:
            yield connection
        except Exception:
            self._local.connection = None
            with contextlib.suppress(Exception):
                connection.close()
            raise

    def begin(self, key: str, payload: str) -> str | None:
        """None to go ahead (the key is now ``running``); "conflict" (another payload) or
        "running" (the same payload still being processed) otherwise."""
        with self._connected() as connection:
            return self._begin(connection, key, payload)

    def _begin(self, connection: Any, key: str, payload: str) -> str | None:
        now = time.time()
        with self._transaction(connection):
            if self._postgres:  # also orders two first uses of one key (no row to lock yet)
                connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
            row = connection.execute(self._sql("SELECT payload, state, updated FROM idempotency_keys WHERE key = ?"),
                                     (key,)).fetchone()
            if row is not None:
                payload_then, state, updated = row
                live = now - updated < (self._running_for_at_most if state == "running" else self._keep_seconds)
                if live and payload_then != payload:
                    return "conflict"
                if live and state == "running":
                    return "running"
            connection.execute(self._sql(
                "INSERT INTO idempotency_keys (key, payload, state, updated) VALUES (?, ?, 'running', ?) "
                "ON CONFLICT (key) DO UPDATE SET payload = excluded.payload, state = 'running', "
                "updated = excluded.updated"), (key, payload, now))
            if next(self._begins) % PRUNE_EVERY == 0:
                connection.execute(self._sql("DELETE FROM idempotency_keys WHERE updated < ?"),
                                   (now - max(self._keep_seconds, self._running_for_at_most),))
        return None

    def end(self, key: str, payload: str, *, keep: bool) -> None:
        """``keep``: the same payload may come again and is recomputed; else the key is free."""
        with self._connected() as connection, self._transaction(connection):
            if keep:
                connection.execute(self._sql("UPDATE idempotency_keys SET state = 'done', updated = ? "
                                             "WHERE key = ? AND payload = ?"), (time.time(), key, payload))
            else:
                connection.execute(self._sql("DELETE FROM idempotency_keys WHERE key = ? AND payload = ? "
                                             "AND state = 'running'"), (key, payload))

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._postgres else statement

    def _transaction(self, connection: Any) -> Any:
        if self._postgres:
            return connection.transaction()
        return _sqlite_write_transaction(connection)


@contextlib.contextmanager
def _sqlite_write_transaction(connection: Any) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: the read and the write of a key are one step for
    every process (the busy timeout queues the others)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
