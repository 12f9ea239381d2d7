"""Access tokens of a served repository: ``serve/tokens.json`` (mode 0600) in its store.

A token is ``dsr_<id>_<secret>``: 12 hex digits naming the entry, then 256 random bits. Only a
salted hash of the secret is stored (BLAKE3 keyed by a random 32-byte salt per token: the secret
is random, not a password, so a slow hash would add nothing but latency per request), so a copy
of the file lets nobody in. The token itself is shown once, when it is created. The running
server re-reads the file when it changes: a revoked token stops working at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from blake3 import blake3

from dsrepo.dvcs.errors import ConfigError, RepositoryError
from dsrepo.server.config import locate

SCOPES = ("read", "write")
TOKENS_FILE = "tokens.json"
_TOKEN = re.compile(r"dsr_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never its secret."""

    id: str
    name: str
    scope: str
    created: int

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


@dataclass(frozen=True)
class _Entry:
    info: TokenInfo
    salt: bytes
    digest: bytes


def _digest(secret: str, salt: bytes) -> bytes:
    return blake3(secret.encode("ascii"), key=salt).digest()


class TokenStore:
    """The tokens of one served store, in ``path`` (``.../serve/tokens.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, _Entry] = {}

    # ------------------------------------------------------------ reading

    def _load(self) -> dict[str, _Entry]:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
            out = {}
            for t in data["tokens"]:
                info = TokenInfo(str(t["id"]), str(t["name"]), str(t["scope"]), int(t["created"]))
                if info.scope not in SCOPES:
                    raise ValueError(f"unknown scope {info.scope!r}")
                out[info.id] = _Entry(info, bytes.fromhex(t["salt"]), bytes.fromhex(t["hash"]))
            return out
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path} is damaged: {exc}") from None

    def _current(self) -> dict[str, _Entry]:
        """The entries, re-read whenever the file changed (so revocations apply at once)."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._entries = self._load() if stamp is not None else {}
                self._stamp = stamp
            return self._entries

    def list(self) -> list[TokenInfo]:
        """The tokens, oldest first."""
        return [e.info for e in self._current().values()]

    def verify(self, token: str) -> TokenInfo | None:
        """The token's entry if ``token`` is valid (compared in constant time), else None."""
        m = _TOKEN.fullmatch(token.strip())
        if m is None:
            return None
        entry = self._current().get(m.group(1))
        if entry is None:
            return None
        if not hmac.compare_digest(_digest(m.group(2), entry.salt), entry.digest):
            return None
        return entry.info

    # ------------------------------------------------------------ writing

    def create(self, scope: str, name: str | None = None) -> tuple[str, TokenInfo]:
        """A new token with ``scope``: (the token, shown once; its entry)."""
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope {scope!r} (use read or write)")
        if name is not None and not _NAME.fullmatch(name):
            raise ConfigError(
                f"invalid token name {name!r}: letters, digits, '.', '_', '@', '-' (64 at most)"
            )
        with self._locked() as entries:
            token_id = secrets.token_hex(6)
            while token_id in entries:
                token_id = secrets.token_hex(6)
            name = name or token_id
            if any(e.info.name == name for e in entries.values()):
                raise RepositoryError(f"a token named {name!r} already exists")
            secret = secrets.token_urlsafe(32)
            salt = secrets.token_bytes(32)
            info = TokenInfo(token_id, name, scope, int(time.time()))
            entries[token_id] = _Entry(info, salt, _digest(secret, salt))
        return f"dsr_{token_id}_{secret}", info

    def revoke(self, name_or_id: str) -> TokenInfo:
        with self._locked() as entries:
            for token_id, e in entries.items():
                if name_or_id in (e.info.name, e.info.id):
                    del entries[token_id]
                    return e.info
        raise RepositoryError(f"no token named {name_or_id!r}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, _Entry]]:
        """The entries, under an exclusive lock, written back (mode 0600) on success."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            entries = dict(self._load())
            yield entries
            self._write(entries)
        finally:
            os.close(lock_fd)

    def _write(self, entries: dict[str, _Entry]) -> None:
        doc = {
            "version": 1,
            "tokens": [
                {
                    "id": e.info.id,
                    "name": e.info.name,
                    "scope": e.info.scope,
                    "created": e.info.created,
                    "salt": e.salt.hex(),
                    "hash": e.digest.hex(),
                }
                for e in entries.values()
            ],
        }
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def token_store(path: str | Path) -> TokenStore:
    """The tokens of the repository or remote directory served from ``path``."""
    return TokenStore(locate(path).state_dir / TOKENS_FILE)
