"""A wrapper that retries transient backend failures with exponential backoff and jitter.

Only errors with ``transient=True`` are retried; KeyNotFound, KeyConflict, InvalidKey and
permanent errors pass through at once.

A retried write may have landed the first time, with only the answer lost:

- ``put_if_absent`` (and ``put_parts_if_absent``) then returns False for a key this call
  created. Harmless for immutable, content-addressed keys: the value there is the one we wanted.
- ``compare_and_swap`` would then see its own write and report a conflict. After a transient
  failure, a KeyConflict on a later attempt is checked: if the key already holds ``new`` (or is
  absent, for ``new=None``) the swap is treated as done. Another writer that set the very same
  value is indistinguishable, and leads to the same state.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from dsrepo.remotes.base import Backend, KeyInfo
from dsrepo.remotes.errors import BackendError, KeyConflict, KeyNotFound
from dsrepo.remotes.mapped import MappedFile
from dsrepo.remotes.wrapper import BackendWrapper

T = TypeVar("T")


class RetryingBackend(BackendWrapper):
    """Retries ``inner``'s transient failures: up to ``attempts`` tries in all per operation.

    The wait before retry ``n`` (1-based) is drawn from ``[d/2, d]`` with
    ``d = min(max_delay, base_delay * 2**(n-1))``. ``on_retry(op, attempt, error, wait)`` is
    called before each wait; ``put_parts_if_absent`` reports its op as ``"put_if_absent"``.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 5,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_retry: Callable[[str, int, BackendError, float], None] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        super().__init__(inner)
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        cap = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        return float(cap / 2 + self._rng.uniform(0, cap / 2))

    def _call(self, op: str, fn: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return fn()
            except BackendError as exc:
                if not exc.transient or attempt >= self.attempts:
                    raise
                wait = self.delay(attempt)
                if self._on_retry is not None:
                    self._on_retry(op, attempt, exc, wait)
                self._sleep(wait)
                attempt += 1

    def stat(self, key: str) -> KeyInfo:
        return self._call("stat", lambda: self.inner.stat(key))

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        return self._call("get", lambda: self.inner.get(key, offset, length))

    def get_mapped(self, key: str) -> bytes | MappedFile:
        return self._call("get", lambda: self.inner.get_mapped(key))

    def put(self, key: str, data: bytes) -> None:
        self._call("put", lambda: self.inner.put(key, data))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self._call("put_if_absent", lambda: self.inner.put_if_absent(key, data))

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        return self._call("put_if_absent", lambda: self.inner.put_parts_if_absent(key, parts))

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        return self._call("list", lambda: self.inner.list(prefix, start_after, limit))

    def delete(self, key: str) -> None:
        self._call("delete", lambda: self.inner.delete(key))

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        failed_transiently = False

        def attempt() -> None:
            nonlocal failed_transiently
            try:
                self.inner.compare_and_swap(key, expected, new)
            except KeyConflict:
                if failed_transiently and self._holds(key, new):
                    return  # an earlier attempt landed; its answer was lost
                raise
            except BackendError as exc:
                failed_transiently = failed_transiently or exc.transient
                raise

        self._call("compare_and_swap", attempt)

    def _holds(self, key: str, value: bytes | None) -> bool:
        try:
            return self.inner.get(key) == value
        except KeyNotFound:
            return value is None
