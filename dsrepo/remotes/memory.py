"""An in-memory backend: a dict behind a lock. For tests, and as a twin of a real store."""

from __future__ import annotations

import bisect
import threading
import time

from dsrepo.remotes.base import Backend, Capabilities, KeyInfo
from dsrepo.remotes.errors import KeyConflict, KeyNotFound
from dsrepo.remotes.keys import validate_key, validate_prefix


def check_range(offset: int, length: int | None) -> None:
    """Reject a negative offset or length (a caller bug, not a storage error)."""
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    if length is not None and length < 0:
        raise ValueError(f"negative length {length}")


class MemoryBackend(Backend):
    """Keys and values in a dict; every operation holds one lock, so all of them are atomic."""

    capabilities = Capabilities(conditional_writes=True, range_reads=True, local=False)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}
        self._mtimes: dict[str, float] = {}  # time of each key's last write
        self._clock = 0.0  # the last time given out: mtimes never go backwards
        self._sorted: list[str] = []  # the keys of _data, kept sorted for list()

    def stat(self, key: str) -> KeyInfo:
        validate_key(key)
        with self._lock:
            return KeyInfo(key, len(self._value(key)), self._mtimes[key])

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        validate_key(key)
        check_range(offset, length)
        with self._lock:
            value = self._value(key)
        end = len(value) if length is None else offset + length
        return value[offset:end]

    def put(self, key: str, data: bytes) -> None:
        validate_key(key)
        data = bytes(data)
        with self._lock:
            self._store(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        validate_key(key)
        data = bytes(data)
        with self._lock:
            if key in self._data:
                return False
            self._store(key, data)
            return True

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        validate_prefix(prefix)
        if limit <= 0:
            return []
        lower = prefix if start_after is None or start_after < prefix else start_after
        out: list[KeyInfo] = []
        with self._lock:
            i = bisect.bisect_left(self._sorted, lower)
            while i < len(self._sorted) and len(out) < limit:
                key = self._sorted[i]
                i += 1
                if not key.startswith(prefix):
                    break
                if start_after is not None and key <= start_after:
                    continue
                out.append(KeyInfo(key, len(self._data[key]), self._mtimes[key]))
        return out

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self._remove(key)

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        validate_key(key)
        with self._lock:
            current = self._data.get(key)
            if current != expected:
                state = "is absent" if current is None else "has a different value"
                raise KeyConflict(f"compare-and-swap on {key!r} lost: the key {state}")
            if new is None:
                self._remove(key)
            else:
                self._store(key, bytes(new))

    def describe(self) -> str:
        return "memory://"

    def set_mtime(self, key: str, mtime: float) -> None:
        """For tests: make ``key`` look last written at ``mtime`` (as ``os.utime`` does for a
        directory backend's file). Raises KeyNotFound."""
        with self._lock:
            self._value(key)
            self._mtimes[key] = mtime

    # -- helpers; the caller holds the lock -------------------------------------------------

    def _value(self, key: str) -> bytes:
        try:
            return self._data[key]
        except KeyError:
            raise KeyNotFound(f"key {key!r} not found in memory backend") from None

    def _store(self, key: str, data: bytes) -> None:
        if key not in self._data:
            bisect.insort(self._sorted, key)
        self._data[key] = data
        self._clock = max(self._clock, time.time())
        self._mtimes[key] = self._clock

    def _remove(self, key: str) -> None:
        self._mtimes.pop(key, None)
        if self._data.pop(key, None) is not None:
            del self._sorted[bisect.bisect_left(self._sorted, key)]
