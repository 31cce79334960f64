"""The service's audit log: every adapt and predict call, durable before it is answered.

One SQLite file (``DIR/.metamed-service/audit.sqlite``) in WAL mode with
``synchronous=FULL``: a committed entry is on disk (fsync) and survives a killed process,
a crash or a power cut.  Triggers refuse UPDATE and DELETE, so the application can only
append (whoever owns the file can still replace it: this is a log, not a notary).

What is written, and when:

- ``predict``: one ``finished`` entry, committed *before* the answer is sent, so every
  risk a client received is in the log;
- ``adapt``: a ``started`` entry before any work and a ``finished`` entry (with the new
  model's id) after the artifact is committed and before the answer is sent.  If the
  process dies in between, the next start finds the ``started`` entry without an end and
  appends an ``interrupted`` one (:meth:`AuditLog.recover`): an adaptation is never lost
  from the log, even when it never finished;
- refused calls (bad token, bad rows) are ``finished`` entries with their HTTP status.

Each entry: ``seq``, ``time`` (UTC), ``request_id``, ``event``, ``action``, ``token``
(its name: who), ``model``, ``input_sha256`` (of the request body as received),
``output_sha256`` (of the response body sent), ``status``, ``outcome`` (``ok`` or the
error message), ``new_model``, ``rows``, ``seconds``.

fsync costs milliseconds, so concurrent requests share commits: a writer thread commits
every entry waiting at that moment in one transaction (group commit), and each caller
waits until its own entry is durable: a thread in :meth:`AuditLog.append`, a coroutine on
the service's event loop in :meth:`AuditLog.append_async` (which holds no thread while
it waits).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamed.errors import MetamedError

__all__ = ["AUDIT_FIELDS", "AuditError", "AuditLog", "read_entries"]

AUDIT_FIELDS = (
    "time",
    "request_id",
    "event",
    "action",
    "token",
    "model",
    "input_sha256",
    "output_sha256",
    "status",
    "outcome",
    "new_model",
    "rows",
    "seconds",
)

_TYPES = {"status": "INTEGER", "rows": "INTEGER", "seconds": "REAL"}
_REQUIRED = ("time", "request_id", "event", "action")
_COLUMNS = ",\n    ".join(
    f"{name} {_TYPES.get(name, 'TEXT')}{' NOT NULL' if name in _REQUIRED else ''}"
    for name in AUDIT_FIELDS
)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    {_COLUMNS}
);
CREATE INDEX IF NOT EXISTS audit_request ON audit (request_id);
CREATE TRIGGER IF NOT EXISTS audit_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditError(MetamedError, OSError):
    """The audit log cannot be written (disk full, permissions): the call is refused."""


@dataclass
class _Pending:
    values: tuple[Any, ...]
    done: threading.Event = field(default_factory=threading.Event)
    seq: int | None = None
    error: BaseException | None = None
    #: Called by the writer thread once the entry is durable (or failed).
    on_done: Callable[[], None] | None = None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


class AuditLog:
    """Append-only, durable log of service calls (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        self._queue: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="audit-writer", daemon=True)
        self._writer.start()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    # -- writing ---------------------------------------------------------------------------
    def append(self, event: str, action: str, request_id: str, **fields: Any) -> int:
        """Append one entry and return its ``seq`` once it is on disk."""
        item = self._submit(event, action, request_id, fields, None)
        item.done.wait()
        return self._written(item)

    async def append_async(self, event: str, action: str, request_id: str, **fields: Any) -> int:
        """:meth:`append` for a coroutine: waits for the commit without blocking the loop."""
        loop = asyncio.get_running_loop()
        durable = loop.create_future()

        def resolve() -> None:
            if not durable.done():  # the waiting request may have been cancelled
                durable.set_result(None)

        def wake() -> None:  # in the writer thread
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

        item = self._submit(event, action, request_id, fields, wake)
        await durable
        return self._written(item)

    def _submit(
        self,
        event: str,
        action: str,
        request_id: str,
        fields: dict[str, Any],
        on_done: Callable[[], None] | None,
    ) -> _Pending:
        unknown = set(fields) - set(AUDIT_FIELDS)
        if unknown:
            raise TypeError(f"unknown audit fields {sorted(unknown)}")
        row = {**fields, "time": _now(), "event": event, "action": action, "request_id": request_id}
        item = _Pending(tuple(row.get(name) for name in AUDIT_FIELDS), on_done=on_done)
        with self._cond:
            if self._closed:
                raise AuditError("The audit log is closed; the service is shutting down.")
            self._queue.append(item)
            self._cond.notify()
        return item

    def _written(self, item: _Pending) -> int:
        if item.error is not None:
            raise AuditError(
                f"Cannot write the audit log {self.path}: {item.error}; the call was not carried out."
            ) from item.error
        assert item.seq is not None
        return item.seq

    def _write_loop(self) -> None:
        conn = self._connect()
        insert = (
            f"INSERT INTO audit ({', '.join(AUDIT_FIELDS)}) "
            f"VALUES ({', '.join('?' for _ in AUDIT_FIELDS)})"
        )
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    if not self._queue:
                        return
                    batch, self._queue = self._queue, []
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    for item in batch:
                        item.seq = conn.execute(insert, item.values).lastrowid
                    conn.execute("COMMIT")  # one fsync for the whole batch
                except (sqlite3.Error, OSError) as error:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    for item in batch:
                        item.error, item.seq = error, None
                for item in batch:
                    item.done.set()
                    if item.on_done is not None:
                        item.on_done()
        finally:
            conn.close()

    def recover(self) -> list[str]:
        """Append ``interrupted`` for every ``started`` call without an end; return their ids."""
        with closing(self._connect()) as conn:
            open_ids = conn.execute(
                "SELECT request_id, action, token, model, input_sha256 FROM audit AS s "
                "WHERE event = 'started' AND NOT EXISTS (SELECT 1 FROM audit AS e WHERE "
                "e.request_id = s.request_id AND e.event IN ('finished', 'interrupted')) "
                "ORDER BY seq"
            ).fetchall()
        for request_id, action, token, model, input_sha in open_ids:
            self.append(
                "interrupted",
                action,
                request_id,
                token=token,
                model=model,
                input_sha256=input_sha,
                outcome="the service stopped before this call finished (found at restart); "
                "nothing it began was kept",
            )
        return [row[0] for row in open_ids]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._writer.join(timeout=30)

    # -- reading ---------------------------------------------------------------------------
    def entries(self, last: int | None = None) -> list[dict[str, Any]]:
        """The entries in order (the ``last`` ones only, if given)."""
        return list(read_entries(self.path, last))


def read_entries(path: str | Path, last: int | None = None) -> Iterator[dict[str, Any]]:
    """Entries of the audit log at ``path``, oldest first (no writer needed)."""
    path = Path(path)
    if not path.exists():
        return iter(())
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        columns = ("seq", *AUDIT_FIELDS)
        query = f"SELECT {', '.join(columns)} FROM audit ORDER BY seq"
        if last is not None:
            query = (
                f"SELECT * FROM (SELECT {', '.join(columns)} FROM audit ORDER BY seq DESC "
                f"LIMIT {int(last)}) ORDER BY seq"
            )
        rows = conn.execute(query).fetchall()
    return iter([dict(zip(columns, row, strict=True)) for row in rows])
