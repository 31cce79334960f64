"""API tokens of the service: random secrets, stored only as their sha256, each with permissions.

``metamed token create --models DIR --can predict,adapt --name ehr`` prints a token once;
the service keeps ``sha256(token)`` in ``DIR/.metamed-service/tokens.sqlite`` and
compares hashes, so a copy of the folder (a backup, a leaked disk) holds no usable
secret.  A plain sha256 is enough here, unlike for passwords: a token is 32 random
bytes, far beyond any guessing, so a slow hash would only slow every request.

Permissions: ``predict`` (POST .../predict) and ``adapt`` (POST .../adapt); every token
may list and describe models.  A revoked token is refused from its next request on.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from metamed.errors import MetamedValueError, did_you_mean

__all__ = ["PERMISSIONS", "TOKEN_PREFIX", "Token", "TokenStore", "parse_permissions"]

PERMISSIONS = ("predict", "adapt")
#: Tokens start with this, so that one pasted in the wrong place is recognisable.
TOKEN_PREFIX = "mm_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    permissions TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
);
"""


def parse_permissions(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"predict,adapt"`` as a checked tuple of permissions."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    items = [t for t in items if t]
    if not items:
        raise MetamedValueError(f"--can is empty; give one or more of {', '.join(PERMISSIONS)}.")
    for item in items:
        if item not in PERMISSIONS:
            raise MetamedValueError(
                f"Unknown permission '{item}'.{did_you_mean(item, PERMISSIONS)} "
                f"Permissions: {', '.join(PERMISSIONS)}."
            )
    return tuple(p for p in PERMISSIONS if p in items)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Token:
    """What the service knows about a token (never the secret itself)."""

    name: str
    permissions: tuple[str, ...]
    created: str
    revoked: str | None = None

    def can(self, permission: str) -> bool:
        return self.revoked is None and permission in self.permissions


class TokenStore:
    """Tokens in one SQLite file (created on first use, readable by its owner only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # verify() runs on every request: each thread keeps one read connection open
        # instead of opening the file each time (revocations are still seen at once).
        self._readers = threading.local()

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        conn = sqlite3.connect(self.path, timeout=10)
        try:
            if fresh:
                self.path.chmod(0o600)
            conn.executescript(_SCHEMA)
            with conn:
                yield conn
        finally:
            conn.close()

    def create(self, name: str, permissions: Sequence[str]) -> str:
        """Make a token named ``name``; return the secret (shown once, never stored)."""
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise MetamedValueError(
                f"Token name {name!r} is not valid: 1-64 letters, digits, '.', '_', '@' or '-'."
            )
        permissions = parse_permissions(permissions)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                raise MetamedValueError(
                    f"A token named '{name}' exists already; choose another name or revoke it "
                    f"first (metamed token revoke {name})."
                )
            conn.execute(
                "INSERT INTO tokens (name, sha256, permissions, created) VALUES (?, ?, ?, ?)",
                (name, _hash(secret), ",".join(permissions), created),
            )
        return secret

    def verify(self, secret: str | None) -> Token | None:
        """The token whose secret this is, or None (unknown, malformed, revoked)."""
        if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            if not self.path.exists():
                return None
            with self._connect():  # creates the table if the file is new
                pass
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            self._readers.conn = conn
        row = conn.execute(
            "SELECT name, permissions, created, revoked FROM tokens WHERE sha256 = ?",
            (_hash(secret),),
        ).fetchone()
        if row is None or row[3] is not None:
            return None
        return Token(row[0], tuple(row[1].split(",")), row[2], row[3])

    def list(self) -> list[Token]:
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT name, permissions, created, revoked FROM tokens ORDER BY created, name"
            ).fetchall()
        return [Token(r[0], tuple(r[1].split(",")), r[2], r[3]) for r in rows]

    def revoke(self, name: str) -> None:
        names = [t.name for t in self.list() if t.revoked is None]
        if name not in names:
            raise MetamedValueError(
                f"No active token named '{name}'.{did_you_mean(name, names)} "
                f"Active tokens: {', '.join(names) or 'none'}."
            )
        revoked = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        with self._connect() as conn:
            conn.execute("UPDATE tokens SET revoked = ? WHERE name = ?", (revoked, name))
